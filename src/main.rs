//! The `crisp-gateway` binary: parse the command line, start logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use crisp_gateway::app::config::{Config, LogFormat};
use crisp_gateway::cli::{self, Cli, Command};

/// mimalloc rather than the system allocator: a proxied call allocates and frees a few
/// hundred small blocks (headers, futures, buffers), and glibc's malloc and free were about a
/// sixth of the gateway's instructions per request on the benchmark. Built with `no_thp`:
/// with transparent huge pages its arenas grow resident memory 2 MiB at a time, which put the
/// gateway at ~75 MiB instead of ~61 MiB at 256 connections (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A broken configuration file is reported by `cli::run`, which stops the process at once:
    // until then the defaults serve (one thread is plenty for that).
    let config = Config::load(cli.config.as_deref()).ok();
    let threads = config.as_ref().map_or(1, Config::serving_threads);
    let format = config.map_or(LogFormat::Pretty, |c| c.log_format);
    // On one core a single-threaded scheduler: no work-stealing queues, no atomic hand-offs
    // between workers. It served 25 % more small reads than a one-worker multi-threaded
    // runtime on the benchmark (bench/README.md). Blocking work (argon2, SQLite) still runs on
    // tokio's blocking pool either way.
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    match runtime {
        Ok(runtime) => runtime.block_on(run(cli, format)),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, format: LogFormat) -> ExitCode {
    let default_filter = match cli.command {
        Command::Serve { .. } | Command::Demo { .. } | Command::Sandbox { .. } => "info",
        _ => "warn",
    };
    crisp_gateway::telemetry::init(format == LogFormat::Json, default_filter);
    // Touch the catalog now: a broken embedded catalog stops the process before it serves.
    let _ = crisp_gateway::catalog::CATALOG.actions().len();
    let outcome = cli::run(cli).await;
    crisp_gateway::telemetry::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
