//! The `crisp-gateway` command line: the server, the demo, and the admin commands.

mod account;
mod audit;
mod demo;
mod doctor;
mod idempotency;
mod key;
mod master_key;
mod openapi;
mod sandbox;
mod serve;
mod workspace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::config::Config;
use crate::store::{self, Store};

pub use serve::{serve_on, shutdown_signal};

/// A self-hosted gateway that puts the whole Crisp REST API v1 behind one workspace key.
#[derive(Debug, Parser)]
#[command(name = "crisp-gateway", version, about)]
pub struct Cli {
    /// A TOML file with settings (environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply database migrations and exit.
    Migrate,
    /// Run the gateway.
    Serve {
        /// Address to listen on (overrides CRISP_GATEWAY_LISTEN).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run the gateway against a built-in Crisp sandbox, with a demo workspace, key and account.
    Demo {
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run only the Crisp sandbox (a stateful stand-in for api.crisp.chat/v1).
    Sandbox(sandbox::SandboxArgs),
    /// Check the configuration, the database, the master key and every account.
    Doctor,
    /// Write the OpenAPI document and the Postman collection (or check them with --check).
    Openapi(openapi::OpenapiArgs),
    /// Manage workspaces.
    #[command(subcommand)]
    Workspace(workspace::WorkspaceCommand),
    /// Manage gateway keys.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Manage the Crisp accounts linked to a workspace.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// Make or rotate the master key that encrypts Crisp keys at rest.
    #[command(subcommand, name = "master-key")]
    MasterKey(master_key::MasterKeyCommand),
    /// List audited calls (writes and refused calls), newest first.
    Audit {
        #[arg(long)]
        workspace: Option<String>,
        /// Only calls in this recent window: 30m, 1h, 7d.
        #[arg(long, value_name = "DURATION")]
        since: Option<String>,
        /// Only actions matching this glob, e.g. 'send/*'.
        #[arg(long, value_name = "GLOB")]
        action: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Read what callers reported with `POST /api/crisp/report`.
    #[command(subcommand)]
    Report(audit::ReportCommand),
    /// List or release the records behind `Idempotency-Key` (never their stored answers).
    #[command(subcommand)]
    Idempotency(idempotency::IdempotencyCommand),
}

/// Admin errors are sentences for people; `main` prints them and exits non-zero.
pub type CliResult = Result<(), String>;

pub async fn run(cli: Cli) -> CliResult {
    // Loaded by the commands that need it: `doctor` reports a broken configuration itself, and
    // `sandbox` and `openapi` need none.
    let load = || Config::load(cli.config.as_deref()).map_err(|e| e.to_string());
    match cli.command {
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Doctor => doctor::run(cli.config.as_deref()).await,
        Command::Openapi(args) => openapi::run(&args),
        Command::Migrate => {
            let config = load()?;
            drop(open(&config).await?);
            eprintln!("migrations applied ({})", redact_url(&config.database_url));
            Ok(())
        }
        Command::Serve { listen } => serve::serve(load()?, listen).await,
        Command::Demo { listen } => demo::demo(load()?, listen).await,
        Command::Workspace(command) => workspace::run(&open(&load()?).await?, command).await,
        Command::Key(command) => key::run(&open(&load()?).await?, command).await,
        Command::Account(command) => {
            let config = load()?;
            account::run(&config, &open(&config).await?, command).await
        }
        Command::MasterKey(command) => master_key::run(&load()?, command).await,
        Command::Audit {
            workspace,
            since,
            action,
            limit,
        } => audit::audit(&open(&load()?).await?, workspace, since, action, limit).await,
        Command::Report(command) => audit::report(&open(&load()?).await?, command).await,
        Command::Idempotency(command) => idempotency::run(&open(&load()?).await?, command).await,
    }
}

/// Opens the database and brings its schema up to date.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, String> {
    let store = store::connect(&config.database_url)
        .await
        .map_err(|e| format!("{e} ({})", redact_url(&config.database_url)))?;
    store
        .migrate()
        .await
        .map_err(|e| format!("cannot apply migrations: {e}"))?;
    Ok(store)
}

/// A database URL without its password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

async fn workspace_id(store: &Arc<dyn Store>, name: &str) -> Result<String, String> {
    match store.find_workspace(name).await {
        Ok(w) => Ok(w.workspace_id),
        Err(store::StoreError::NotFound) => Err(format!(
            "no workspace named `{name}`; create it with `crisp-gateway workspace create {name}`"
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_redacted_from_urls() {
        assert_eq!(
            super::redact_url("postgres://gw:hunter2@db:5432/gw"),
            "postgres://gw:***@db:5432/gw"
        );
        assert_eq!(
            super::redact_url("sqlite://crisp-gateway.db"),
            "sqlite://crisp-gateway.db"
        );
    }
}
