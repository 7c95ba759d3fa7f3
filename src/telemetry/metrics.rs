//! Prometheus metrics: requests by action and status, latency, upstream calls and retries,
//! cache hits, argon2 runs, the accounts' queue depth and open and closed connections, rendered
//! at `GET /metrics`.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

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

/// A series' handle, made once. Recording through `counter!(name, labels)` hashes the name
/// and labels and looks the series up on every call; the series every successful request
/// touches are kept as handles instead. They are made after the recorder is installed, or
/// they would be no-ops forever.
fn handle<T>(make: impl FnOnce() -> T) -> T {
    install();
    make()
}

/// The series a successful call of one action records.
struct ActionSeries {
    ok: Counter,
    duration: Histogram,
}

/// The success series of each action, by the action's index, made on first use; the caller
/// (which knows the catalog) owns one for the whole process.
pub struct PerAction(Vec<OnceLock<ActionSeries>>);

impl PerAction {
    pub fn new(actions: usize) -> Self {
        Self((0..actions).map(|_| OnceLock::new()).collect())
    }

    /// One request: `action` is the index of the catalog action it called, if any, and `label`
    /// the action label (`-` for other endpoints).
    pub fn request(
        &self,
        action: Option<usize>,
        label: &'static str,
        status: u16,
        elapsed: Duration,
    ) {
        let seconds = elapsed.as_secs_f64();
        if status == 200
            && let Some(series) = action.and_then(|index| self.0.get(index))
        {
            let series = series.get_or_init(|| {
                handle(|| ActionSeries {
                    ok: counter!("crisp_gateway_requests_total", "action" => label, "status" => "200"),
                    duration: histogram!("crisp_gateway_request_duration_seconds", "action" => label),
                })
            });
            series.ok.increment(1);
            series.duration.record(seconds);
            return;
        }
        counter!("crisp_gateway_requests_total", "action" => label, "status" => status_label(status))
            .increment(1);
        histogram!("crisp_gateway_request_duration_seconds", "action" => label).record(seconds);
    }
}

/// How one attempt at Crisp ended, as the upstream-call series labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamOutcome {
    /// Crisp answered with this status.
    Status(u16),
    /// No status: `timeout`, `unreachable`, `too_large` or `none`.
    Failed(&'static str),
}

pub fn upstream_call(outcome: UpstreamOutcome) {
    static OK: LazyLock<Counter> = LazyLock::new(|| {
        handle(|| counter!("crisp_gateway_upstream_calls_total", "status" => "200"))
    });
    let status = match outcome {
        UpstreamOutcome::Status(200) => return OK.increment(1),
        UpstreamOutcome::Status(status) => status_label(status),
        UpstreamOutcome::Failed(label) => label,
    };
    counter!("crisp_gateway_upstream_calls_total", "status" => status).increment(1);
}

pub fn upstream_retry() {
    counter!("crisp_gateway_upstream_retries_total").increment(1);
}

/// The caches whose lookups are counted.
#[derive(Debug, Clone, Copy)]
pub enum Cache {
    Key,
    Accounts,
}

pub fn cache(cache: Cache, hit: bool) {
    static KEY_HIT: LazyLock<Counter> = LazyLock::new(|| lookups("key", "hit"));
    static KEY_MISS: LazyLock<Counter> = LazyLock::new(|| lookups("key", "miss"));
    static ACCOUNTS_HIT: LazyLock<Counter> = LazyLock::new(|| lookups("accounts", "hit"));
    static ACCOUNTS_MISS: LazyLock<Counter> = LazyLock::new(|| lookups("accounts", "miss"));
    let counter = match (cache, hit) {
        (Cache::Key, true) => &KEY_HIT,
        (Cache::Key, false) => &KEY_MISS,
        (Cache::Accounts, true) => &ACCOUNTS_HIT,
        (Cache::Accounts, false) => &ACCOUNTS_MISS,
    };
    counter.increment(1);
}

fn lookups(cache: &'static str, result: &'static str) -> Counter {
    handle(|| counter!("crisp_gateway_cache_lookups_total", "cache" => cache, "result" => result))
}

pub fn argon2_run() {
    counter!("crisp_gateway_argon2_verifications_total").increment(1);
}

/// A connection accepted on `listener` (`main`, `metrics`, `sandbox`).
pub fn connection_opened(listener: &'static str) {
    gauge!("crisp_gateway_connections_open", "listener" => listener).increment(1.0);
}

/// A connection's socket closed, whatever the reason.
pub fn connection_released(listener: &'static str) {
    gauge!("crisp_gateway_connections_open", "listener" => listener).decrement(1.0);
}

/// A connection the gateway closed itself: `header_timeout`, `idle_timeout`, `evicted` (at
/// `max_connections`, to make room), or `refused` (at `max_connections`, none idle).
pub fn connection_closed(listener: &'static str, reason: &'static str) {
    counter!("crisp_gateway_connections_closed_total", "listener" => listener, "reason" => reason)
        .increment(1);
}

/// An accept that failed for the listener rather than for one connection (out of descriptors).
pub fn accept_error(listener: &'static str) {
    counter!("crisp_gateway_accept_errors_total", "listener" => listener).increment(1);
}
