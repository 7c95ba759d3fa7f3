//! Reading what the gateway holds and did, for the CLI and the admin API alike: workspaces by
//! name, keys with their status, the audit trail with its filters, and callers' reports.

use std::sync::Arc;
use std::time::Duration;

use crate::store::{
    ApiKeyRecord, AuditFilter, AuditRecord, KeyId, ReportRecord, Store, StoreError, WorkspaceId,
};

use super::KeyError;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("no workspace named `{0}`; create it with `crisp-gateway workspace create {0}`")]
    UnknownWorkspace(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn workspace_id(store: &Arc<dyn Store>, name: &str) -> Result<WorkspaceId, LookupError> {
    match store.find_workspace(name).await {
        Ok(w) => Ok(w.workspace_id),
        Err(StoreError::NotFound) => Err(LookupError::UnknownWorkspace(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

/// A workspace filter given by name: `None` is every workspace.
pub async fn workspace_filter(
    store: &Arc<dyn Store>,
    name: Option<&str>,
) -> Result<Option<WorkspaceId>, LookupError> {
    match name {
        Some(name) => Ok(Some(workspace_id(store, name).await?)),
        None => Ok(None),
    }
}

/// A key's status now: `active`, `revoked` or `expired`.
pub fn key_status(key: &ApiKeyRecord, now: i64) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|t| t <= now) {
        "expired"
    } else {
        "active"
    }
}

/// Revokes a key (idempotent); every running gateway stops accepting it within about a second.
pub async fn revoke_key(store: &Arc<dyn Store>, key_id: &KeyId) -> Result<(), KeyError> {
    match store.revoke_key(key_id, crate::kernel::clock::now()).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(KeyError::UnknownKey(key_id.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// Which audit rows to read, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub workspace: Option<String>,
    /// Only rows in this recent window.
    pub since: Option<Duration>,
    /// Only actions matching this glob, such as `send/*`.
    pub action: Option<String>,
    pub limit: i64,
}

pub async fn audit(
    store: &Arc<dyn Store>,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, LookupError> {
    let workspace_id = workspace_filter(store, query.workspace.as_deref()).await?;
    let since = query.since.map(|d| {
        crate::kernel::clock::now().saturating_sub(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    // The action filter is a glob, applied here; read enough rows to fill the page after it.
    let fetch = if query.action.is_some() {
        100_000
    } else {
        query.limit
    };
    let rows = store
        .list_audit(&AuditFilter {
            workspace_id,
            since,
            limit: fetch,
        })
        .await?;
    Ok(rows
        .into_iter()
        .filter(|r| {
            query
                .action
                .as_deref()
                .is_none_or(|glob| crate::auth::glob_matches(glob, &r.action))
        })
        .take(usize::try_from(query.limit).unwrap_or(usize::MAX))
        .collect())
}

pub async fn reports(
    store: &Arc<dyn Store>,
    workspace: Option<&str>,
) -> Result<Vec<ReportRecord>, LookupError> {
    let filter = workspace_filter(store, workspace).await?;
    Ok(store.list_reports(filter.as_ref()).await?)
}
