//! `crisp-gateway audit` and `crisp-gateway report list`: what happened, and what callers reported.

use std::sync::Arc;

use clap::Subcommand;

use crate::store::{AccountId, AuditFilter, KeyId, Store, WorkspaceId};

use super::{CliResult, workspace_id};

pub async fn audit(
    store: &Arc<dyn Store>,
    workspace: Option<String>,
    since: Option<String>,
    action: Option<String>,
    limit: i64,
) -> CliResult {
    let workspace_id = match &workspace {
        Some(name) => Some(workspace_id(store, name).await?),
        None => None,
    };
    let since = since
        .as_deref()
        .map(crate::kernel::clock::parse_duration)
        .transpose()?
        .map(|d| {
            crate::kernel::clock::now()
                .saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        });
    // The action filter is a glob, applied here; read enough rows to fill the page after it.
    let fetch = if action.is_some() { 100_000 } else { limit };
    let rows = store
        .list_audit(&AuditFilter {
            workspace_id,
            since,
            limit: fetch,
        })
        .await?;
    println!(
        "{:<21} {:<16} {:<18} {:<18} {:<44} {:>6} {:>8} {:>7} {:>7}  REQUEST ID",
        "TIME", "WORKSPACE", "KEY/CLIENT", "ACCOUNT", "ACTION", "STATUS", "UPSTREAM", "MS", "COUNT"
    );
    let workspaces = store.list_workspaces().await?;
    let shown = rows
        .into_iter()
        .filter(|r| {
            action
                .as_deref()
                .is_none_or(|glob| crate::auth::glob_matches(glob, &r.action))
        })
        .take(usize::try_from(limit).unwrap_or(usize::MAX));
    for r in shown {
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
    let filter = match &workspace {
        Some(name) => Some(workspace_id(store, name).await?),
        None => None,
    };
    let reports = store.list_reports(filter.as_ref()).await?;
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
