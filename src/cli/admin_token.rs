//! `crisp-gateway admin-token …`: tokens for the admin API and console, printed once.

use std::sync::Arc;

use clap::Subcommand;

use crate::admin::tokens::{create_admin_token, revoke_admin_token};
use crate::store::Store;

use super::CliResult;

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token; prints the token alone on standard output.
    Create {
        /// A label to recognise the token by in listings and the audit trail.
        #[arg(long)]
        name: Option<String>,
    },
    /// List admin tokens (never the tokens themselves).
    List,
    /// Revoke an admin token by id; every running gateway stops accepting it within about a
    /// second, and the console sessions signed in with it end.
    Revoke { token_id: String },
}

pub async fn run(store: &Arc<dyn Store>, command: AdminTokenCommand) -> CliResult {
    match command {
        AdminTokenCommand::Create { name } => {
            let (token, record) = create_admin_token(store, name).await?;
            eprintln!(
                "created admin token {}; it is shown once, below — store it now",
                record.admin_token_id
            );
            println!("{}", token.reveal());
            Ok(())
        }
        AdminTokenCommand::List => {
            println!("{:<18} {:<20} {:<8} CREATED", "ID", "NAME", "STATUS");
            for t in store.list_admin_tokens().await? {
                println!(
                    "{:<18} {:<20} {:<8} {}",
                    t.admin_token_id,
                    t.name.as_deref().unwrap_or("-"),
                    if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    },
                    crate::kernel::clock::format(t.created_at)
                );
            }
            Ok(())
        }
        AdminTokenCommand::Revoke { token_id } => {
            revoke_admin_token(store, &token_id).await?;
            eprintln!("revoked admin token {token_id}");
            Ok(())
        }
    }
}
