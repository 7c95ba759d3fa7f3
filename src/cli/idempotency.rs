//! `crisp-gateway idempotency …`: the records behind `Idempotency-Key`, listed and released.

use std::sync::Arc;

use clap::{Subcommand, ValueEnum};

use crate::admin::{list_idempotency, release_idempotency};
use crate::store::{IdempotencyState, Store};

use super::CliResult;

#[derive(Debug, Subcommand)]
pub enum IdempotencyCommand {
    /// List live idempotency records, newest first (never their stored answers).
    List {
        #[arg(long)]
        workspace: Option<String>,
        /// Only records in this state; a `pending` claim whose lease has passed is `unknown`.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Delete a key's record, so the next request with that key runs as new.
    Release {
        #[arg(long)]
        workspace: String,
        /// The `Idempotency-Key` as the caller sent it.
        key: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// A call is running under the key.
    Pending,
    /// The call left for Crisp and no answer came back; its outcome is unknown.
    Unknown,
    /// The answer is stored and replayed to repeats.
    Done,
}

impl From<StateArg> for IdempotencyState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Pending => Self::Pending,
            StateArg::Unknown => Self::Unknown,
            StateArg::Done => Self::Done,
        }
    }
}

pub async fn run(store: &Arc<dyn Store>, command: IdempotencyCommand) -> CliResult {
    match command {
        IdempotencyCommand::List {
            workspace,
            state,
            limit,
        } => {
            let rows =
                list_idempotency(store, workspace.as_deref(), state.map(Into::into), limit).await?;
            println!(
                "{:<36} {:<16} {:<8} {:<21} {:<21} {:>6}  HELD UNTIL",
                "KEY", "WORKSPACE", "STATE", "CREATED", "LEASE END", "STATUS"
            );
            for row in rows {
                let e = &row.entry;
                println!(
                    "{:<36} {:<16} {:<8} {:<21} {:<21} {:>6}  {}",
                    e.idempotency_key,
                    row.workspace,
                    row.state.as_str(),
                    crate::kernel::clock::format(e.created_at),
                    crate::kernel::clock::format(e.lease_until),
                    e.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                    crate::kernel::clock::format(e.expires_at),
                );
            }
            Ok(())
        }
        IdempotencyCommand::Release { workspace, key } => {
            let released = release_idempotency(store, &workspace, &key).await?;
            let was = match released.state {
                IdempotencyState::Done => format!(
                    "done, status {}; its stored answer is forgotten",
                    released
                        .entry
                        .status
                        .map_or_else(|| "-".to_owned(), |s| s.to_string())
                ),
                IdempotencyState::Unknown => {
                    "unknown; check in Crisp whether the first request took effect".to_owned()
                }
                IdempotencyState::Pending => {
                    "pending; its first request may still be running".to_owned()
                }
            };
            eprintln!(
                "released Idempotency-Key `{key}` of workspace `{}` (it was {was}); the next request with this key runs as new",
                released.workspace
            );
            Ok(())
        }
    }
}
