//! `crisp-gateway sandbox`: the stateful Crisp stand-in on its own port, optionally seeded and
//! with injected faults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

use crate::sandbox::{Faults, Latency, RateLimit, SandboxConfig, Seed};

use super::CliResult;

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// A TOML file fixing the accounts, websites and starting data (default: any credentials
    /// work and websites spring into being on first use).
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Answer 429 beyond this many calls, e.g. `10/s` or `100/min`.
    #[arg(long, value_name = "N/s", value_parser = crate::sandbox::parse_rate_limit)]
    rate_limit: Option<RateLimit>,
    /// Answer rate-limited calls with this status: 429 or 420 (Crisp uses both).
    #[arg(long, default_value_t = 429, value_parser = rate_limit_status)]
    rate_limit_status: u16,
    /// Delay every answer, e.g. `50ms..300ms` (uniform) or `100ms`.
    #[arg(long, value_parser = crate::sandbox::parse_latency)]
    latency: Option<Latency>,
    /// The share of calls answered with a 500, e.g. `0.05`.
    #[arg(long, default_value_t = 0.0, value_parser = crate::sandbox::parse_error_rate)]
    error_rate: f64,
    /// Keep no state: every catalog route answers a well-formed envelope with the least value of
    /// its result type (credentials and tiers are still checked), for client tests that check
    /// shapes rather than data.
    #[arg(long, conflicts_with = "seed")]
    stateless: bool,
    /// Count the calls received per 100 ms and serve the counts at `GET /_sandbox/calls`
    /// (`{"bucket_ms":100,"counts":[[start_unix_ms, calls], …]}`), to check how fast gateways
    /// call Crisp, all replicas together.
    #[arg(long)]
    count_calls: bool,
}

fn rate_limit_status(text: &str) -> Result<u16, String> {
    match text {
        "429" => Ok(429),
        "420" => Ok(420),
        other => Err(format!("`{other}`: Crisp rate-limits with 429 or 420")),
    }
}

pub async fn run(args: SandboxArgs) -> CliResult {
    let seed = args.seed.as_deref().map(Seed::load).transpose()?;
    let seeded = seed.as_ref().map(|s| (s.accounts.len(), s.websites.len()));
    let config = SandboxConfig {
        seed,
        stateless: args.stateless,
        count_calls: args.count_calls,
        faults: Faults {
            rate_limit: args.rate_limit.map(|r| RateLimit {
                status: args.rate_limit_status,
                ..r
            }),
            latency: args.latency,
            error_rate: args.error_rate,
        },
    };
    let listener = super::serve::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    match seeded {
        Some((accounts, websites)) => eprintln!(
            "Crisp sandbox on http://{addr}/v1 with {accounts} seeded account(s) and {websites} website(s)"
        ),
        None => eprintln!(
            "Crisp sandbox on http://{addr}/v1: any identifier/key pair works, websites appear on first use"
        ),
    }
    eprintln!("Point the gateway at it: CRISP_GATEWAY_UPSTREAM=http://{addr}/v1");
    crate::http::server::serve(
        listener,
        crate::sandbox::router(config),
        crate::http::server::ConnectionLimits::default(),
        "sandbox",
        super::shutdown_signal(),
    )
    .await;
    Ok(())
}
