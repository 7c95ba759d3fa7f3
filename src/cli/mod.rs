//! The `crisp-gateway` command line: the server, the demo, and the admin commands.

mod account;
mod admin_token;
mod audit;
mod demo;
mod doctor;
mod idempotency;
mod key;
mod master_key;
mod openapi;
mod sandbox;
mod serve;
mod usage;
mod workspace;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::admin::tokens::AdminTokenError;
use crate::admin::{AccountError, IdempotencyAdminError, KeyError, WebsitesError, WorkspaceError};
use crate::app::StartError;
use crate::app::config::{Config, ConfigError, DatabaseUrl};
use crate::secret::VaultError;
use crate::store::{self, ConnectError, Store, StoreError, WorkspaceId};

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
    /// Manage admin tokens (`sk_admin_…`) for the admin API and console.
    #[command(subcommand, name = "admin-token")]
    AdminToken(admin_token::AdminTokenCommand),
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
    /// Calls per key, action or UTC day: refusals, failures, Crisp's answers and its time.
    Usage(usage::UsageArgs),
}

/// Why a command failed, as a sentence for people: `main` prints it once as `error: …` and
/// exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{error} ({url})")]
    Connect {
        error: ConnectError,
        url: DatabaseUrl,
    },
    #[error("cannot apply migrations: {0}")]
    Migrate(StoreError),
    #[error(transparent)]
    Lookup(#[from] crate::admin::records::LookupError),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Websites(#[from] WebsitesError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyAdminError),
    #[error(transparent)]
    AdminToken(#[from] AdminTokenError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A sentence a command wrote for its own case.
    #[error("{0}")]
    Message(String),
}

impl From<String> for CliError {
    fn from(message: String) -> Self {
        Self::Message(message)
    }
}

impl From<&str> for CliError {
    fn from(message: &str) -> Self {
        Self::Message(message.to_owned())
    }
}

pub type CliResult = Result<(), CliError>;

pub async fn run(cli: Cli) -> CliResult {
    // Loaded by the commands that need it: `doctor` reports a broken configuration itself, and
    // `sandbox` and `openapi` need none.
    let load = || Config::load(cli.config.as_deref());
    match cli.command {
        Command::Sandbox(args) => sandbox::run(args).await,
        Command::Doctor => doctor::run(cli.config.as_deref()).await,
        Command::Openapi(args) => openapi::run(&args),
        Command::Migrate => {
            let config = load()?;
            drop(open(&config).await?);
            eprintln!("migrations applied ({})", config.database_url);
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
        Command::AdminToken(command) => admin_token::run(&open(&load()?).await?, command).await,
        Command::MasterKey(command) => master_key::run(&load()?, command).await,
        Command::Audit {
            workspace,
            since,
            action,
            limit,
        } => audit::audit(&open(&load()?).await?, workspace, since, action, limit).await,
        Command::Report(command) => audit::report(&open(&load()?).await?, command).await,
        Command::Idempotency(command) => idempotency::run(&open(&load()?).await?, command).await,
        Command::Usage(args) => usage::run(&open(&load()?).await?, args).await,
    }
}

/// Opens the database and brings its schema up to date.
pub async fn open(config: &Config) -> Result<Arc<dyn Store>, CliError> {
    let store = store::connect(config.database_url.expose())
        .await
        .map_err(|error| CliError::Connect {
            error,
            url: config.database_url.clone(),
        })?;
    store.migrate().await.map_err(CliError::Migrate)?;
    Ok(store)
}

async fn workspace_id(store: &Arc<dyn Store>, name: &str) -> Result<WorkspaceId, CliError> {
    Ok(crate::admin::records::workspace_id(store, name).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_failure_names_the_database_without_its_password() {
        let error = CliError::Connect {
            error: ConnectError::Scheme,
            url: DatabaseUrl::from("mysql://gw:hunter2@db:3306/gw"),
        };
        let message = error.to_string();
        assert!(
            message.ends_with("(mysql://gw:***@db:3306/gw)"),
            "{message}"
        );
        assert!(!format!("{error:?}").contains("hunter2"), "{error:?}");
    }
}
