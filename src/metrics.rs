//! Prometheus metrics: requests by action and status, latency, upstream calls and retries,
//! cache hits, argon2 runs and the accounts' queue depth, rendered at `GET /metrics`.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::forward::{Reply, UpstreamError};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder once; later calls reuse it.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics are disabled"))
                .ok()
        })
        .as_ref()
}

/// Drains recorded histogram samples into their buckets every few seconds. A recorder made
/// with `install_recorder` has no upkeep task of its own and keeps every sample until upkeep
/// or a scrape runs, so without this a gateway nobody scrapes grows by 8 bytes per request.
pub fn spawn_upkeep() -> Option<tokio::task::JoinHandle<()>> {
    let handle = install()?;
    Some(tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    }))
}

const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

pub fn render(queue_depth: usize) -> String {
    gauge!("crisp_gateway_account_queue_depth").set(queue_depth as f64);
    install().map(PrometheusHandle::render).unwrap_or_default()
}

/// Status codes as static labels, so recording a request allocates nothing.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        422 => "422",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        s if s < 300 => "2xx",
        s if s < 500 => "4xx",
        _ => "5xx",
    }
}

pub fn request(action: &'static str, status: u16, elapsed: Duration) {
    counter!("crisp_gateway_requests_total", "action" => action, "status" => status_label(status))
        .increment(1);
    histogram!("crisp_gateway_request_duration_seconds", "action" => action)
        .record(elapsed.as_secs_f64());
}

pub fn upstream_call(outcome: &Result<Reply, UpstreamError>) {
    let status = match outcome {
        Ok(reply) => status_label(reply.status()),
        Err(UpstreamError::Timeout) => "timeout",
        Err(UpstreamError::Unreachable(_)) => "unreachable",
        Err(e) => e.upstream_status().map_or("none", status_label),
    };
    counter!("crisp_gateway_upstream_calls_total", "status" => status).increment(1);
}

pub fn upstream_retry() {
    counter!("crisp_gateway_upstream_retries_total").increment(1);
}

pub fn cache(cache: &'static str, hit: bool) {
    counter!("crisp_gateway_cache_lookups_total", "cache" => cache, "result" => if hit { "hit" } else { "miss" })
        .increment(1);
}

pub fn argon2_run() {
    counter!("crisp_gateway_argon2_verifications_total").increment(1);
}
