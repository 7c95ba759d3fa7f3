//! The `crisp-gateway` binary: parse the command line, start logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use crisp_gateway::cli::{self, Cli, Command};
use crisp_gateway::config::{Config, LogFormat};

/// mimalloc rather than the system allocator: a proxied call allocates and frees a few
/// hundred small blocks (headers, futures, buffers), and glibc's malloc and free were about a
/// sixth of the gateway's instructions per request on the benchmark. Built with `no_thp`:
/// with transparent huge pages its arenas grow resident memory 2 MiB at a time, which put the
/// gateway at ~75 MiB instead of ~61 MiB at 256 connections (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The log format lives in the configuration; a broken file is reported by `run` below.
    let format = Config::load(cli.config.as_deref()).map_or(LogFormat::Pretty, |c| c.log_format);
    let default_filter = match cli.command {
        Command::Serve { .. } | Command::Demo { .. } | Command::Sandbox { .. } => "info",
        _ => "warn",
    };
    crisp_gateway::telemetry::init(format, default_filter);
    // Touch the catalog now: a broken embedded catalog stops the process before it serves.
    let _ = crisp_gateway::catalog::CATALOG.actions().len();
    let outcome = cli::run(cli).await;
    crisp_gateway::telemetry::flush();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
