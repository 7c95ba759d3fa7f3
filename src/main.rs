//! The `crisp-gateway` binary: parse the command line, start logging, dispatch.

use std::process::ExitCode;

use clap::Parser;
use crisp_gateway::cli::{self, Cli, Command};
use crisp_gateway::config::{Config, LogFormat};

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
    match cli::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
