//! `crisp-gateway workspace …`

use std::sync::Arc;

use clap::Subcommand;

use crate::store::Store;

use super::CliResult;

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create a workspace.
    Create { name: String },
    /// List workspaces.
    List,
}

pub async fn run(store: &Arc<dyn Store>, command: WorkspaceCommand) -> CliResult {
    match command {
        WorkspaceCommand::Create { name } => {
            let workspace = crate::admin::create_workspace(store, &name).await?;
            eprintln!(
                "created workspace `{}` ({})",
                workspace.name, workspace.workspace_id
            );
            Ok(())
        }
        WorkspaceCommand::List => {
            let workspaces = store.list_workspaces().await?;
            println!("{:<20} {:<28} CREATED", "ID", "NAME");
            for w in workspaces {
                println!(
                    "{:<20} {:<28} {}",
                    w.workspace_id,
                    w.name,
                    crate::kernel::clock::format(w.created_at)
                );
            }
            Ok(())
        }
    }
}
