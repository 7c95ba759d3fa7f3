//! `crisp-gateway audit` and `crisp-gateway report list`: what happened, and what callers reported.

use std::sync::Arc;

use clap::Subcommand;

use crate::store::{AccountId, KeyId, Store, WorkspaceId};

use super::CliResult;

pub async fn audit(
    store: &Arc<dyn Store>,
    workspace: Option<String>,
    since: Option<String>,
    action: Option<String>,
    limit: i64,
) -> CliResult {
    let since = since
        .as_deref()
        .map(crate::kernel::clock::parse_duration)
        .transpose()?;
    let rows = crate::admin::records::audit(
        store,
        &crate::admin::records::AuditQuery {
            workspace,
            since,
            action,
            limit,
        },
    )
    .await?;
    println!(
        "{:<21} {:<16} {:<18} {:<18} {:<44} {:>6} {:>8} {:>7} {:>7}  REQUEST ID",
        "TIME", "WORKSPACE", "KEY/CLIENT", "ACCOUNT", "ACTION", "STATUS", "UPSTREAM", "MS", "COUNT"
    );
    let workspaces = store.list_workspaces().await?;
    for r in rows {
        let workspace = r
            .workspace_id
            .as_ref()
            .map(WorkspaceId::as_str)
            .map_or("-", |id| {
                workspaces
                    .iter()
                    .find(|w| w.workspace_id == id)
                    .map_or(id, |w| w.name.as_str())
            });
        // A refusal row without a key id names the client's address instead.
        let who = r
            .api_key_id
            .as_ref()
            .map(KeyId::as_str)
            .or(r.client.as_deref())
            .unwrap_or("-");
        println!(
            "{:<21} {:<16} {:<18} {:<18} {:<44} {:>6} {:>8} {:>7} {:>7}  {}{}",
            crate::kernel::clock::format(r.at),
            workspace,
            who,
            r.crisp_account_id.as_ref().map_or("-", AccountId::as_str),
            r.action,
            r.status,
            r.upstream_status
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            r.duration_ms,
            r.count,
            r.request_id,
            r.reason
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// List reports sent to `POST /api/crisp/report`, newest first.
    List {
        #[arg(long)]
        workspace: Option<String>,
    },
}

pub async fn report(store: &Arc<dyn Store>, command: ReportCommand) -> CliResult {
    let ReportCommand::List { workspace } = command;
    let reports = crate::admin::records::reports(store, workspace.as_deref()).await?;
    let workspaces = store.list_workspaces().await?;
    for r in reports {
        let workspace = workspaces
            .iter()
            .find(|w| w.workspace_id == r.workspace_id)
            .map_or(r.workspace_id.as_str(), |w| w.name.as_str());
        println!(
            "{} {} workspace `{workspace}` key {}",
            r.report_id,
            crate::kernel::clock::format(r.at),
            r.api_key_id
        );
        println!("  message: {}", r.message);
        if let Some(context) = &r.context {
            println!("  context: {context}");
        }
        if let Some(conversation) = &r.conversation {
            println!("  conversation: {conversation}");
        }
    }
    Ok(())
}
