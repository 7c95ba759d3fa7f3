//! `crisp-gateway key …`: keys are printed once, on standard output, and never again.

use std::sync::Arc;

use clap::Subcommand;

use crate::store::{Store, StoreError};

use super::{CliResult, workspace_id};

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create a key; prints the key alone on standard output.
    Create {
        #[arg(long)]
        workspace: String,
        /// A label to recognise the key by in listings.
        #[arg(long)]
        name: Option<String>,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
    /// Revoke a key by id; every running gateway stops accepting it within about a second.
    Revoke { key_id: String },
}

pub async fn run(store: &Arc<dyn Store>, command: KeyCommand) -> CliResult {
    match command {
        KeyCommand::Create { workspace, name } => {
            let workspace_id = workspace_id(store, &workspace).await?;
            let key = crate::admin::create_key(store, &workspace_id, name).await?;
            eprintln!(
                "created key {} for workspace `{workspace}`; it is shown once, below — store it now",
                key.id()
            );
            println!("{}", key.reveal());
            Ok(())
        }
        KeyCommand::List { workspace } => {
            let filter = match &workspace {
                Some(name) => Some(workspace_id(store, name).await?),
                None => None,
            };
            let workspaces = store.list_workspaces().await.map_err(|e| e.to_string())?;
            let keys = store
                .list_keys(filter.as_deref())
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "{:<18} {:<16} {:<16} {:<10} CREATED",
                "ID", "WORKSPACE", "NAME", "STATUS"
            );
            let now = crate::clock::now();
            for k in keys {
                let workspace = workspaces
                    .iter()
                    .find(|w| w.workspace_id == k.workspace_id)
                    .map_or(k.workspace_id.as_str(), |w| w.name.as_str());
                let status = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.expires_at.is_some_and(|t| t <= now) {
                    "expired"
                } else {
                    "active"
                };
                println!(
                    "{:<18} {:<16} {:<16} {:<10} {}",
                    k.api_key_id,
                    workspace,
                    k.name.as_deref().unwrap_or("-"),
                    status,
                    crate::clock::format(k.created_at)
                );
            }
            Ok(())
        }
        KeyCommand::Revoke { key_id } => match store.revoke_key(&key_id, crate::clock::now()).await
        {
            Ok(()) => {
                eprintln!("revoked key {key_id}");
                Ok(())
            }
            Err(StoreError::NotFound) => Err(format!(
                "no key with id `{key_id}`; see `crisp-gateway key list`"
            )),
            Err(e) => Err(e.to_string()),
        },
    }
}
