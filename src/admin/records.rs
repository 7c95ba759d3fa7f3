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

/// Calls per UTC day, one series per key or action, for a chart.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct UsageSeries {
    /// The UTC days, `YYYY-MM-DD`, oldest first.
    pub days: Vec<String>,
    /// Busiest first.
    pub series: Vec<Series>,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Series {
    /// A key id (with its name, if any) or an action.
    pub name: String,
    /// Calls on each of `days`.
    pub calls: Vec<i64>,
}

/// The usage of `query.since` as series per key (or per action, with `by: action`).
pub async fn usage_series(
    store: &Arc<dyn Store>,
    query: &crate::admin::usage::UsageQuery,
) -> Result<UsageSeries, LookupError> {
    use crate::admin::usage::UsageBy;
    use std::collections::BTreeMap;
    let workspace_id = workspace_filter(store, query.workspace.as_deref()).await?;
    let now = crate::kernel::clock::now();
    let since = now.saturating_sub(i64::try_from(query.since.as_secs()).unwrap_or(i64::MAX));
    let rows = store
        .list_usage(&crate::store::UsageFilter {
            workspace_id: workspace_id.clone(),
            since,
        })
        .await?;
    let names: BTreeMap<String, String> = if query.by == UsageBy::Action {
        BTreeMap::new()
    } else {
        store
            .list_keys(workspace_id.as_ref())
            .await?
            .into_iter()
            .map(|k| {
                let id = k.api_key_id.to_string();
                let name = k.name.map_or_else(|| id.clone(), |n| format!("{n} ({id})"));
                (id, name)
            })
            .collect()
    };
    // Every day of the window, quiet ones too, so the chart's axis is time and a gap shows.
    const DAY: i64 = 86_400;
    let days: Vec<i64> = {
        let first = since - since.rem_euclid(DAY);
        let mut days: Vec<i64> = (first..=now).step_by(DAY as usize).collect();
        days.extend(rows.iter().map(|r| r.day));
        days.sort_unstable();
        days.dedup();
        days
    };
    let mut by_group: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for row in &rows {
        let group = match query.by {
            UsageBy::Action => row.action.clone(),
            _ => names
                .get(row.api_key_id.as_str())
                .cloned()
                .unwrap_or_else(|| row.api_key_id.to_string()),
        };
        let calls = by_group.entry(group).or_insert_with(|| vec![0; days.len()]);
        if let Ok(at) = days.binary_search(&row.day) {
            calls[at] += row.counts.calls;
        }
    }
    let mut series: Vec<Series> = by_group
        .into_iter()
        .map(|(name, calls)| Series { name, calls })
        .collect();
    series.sort_by_key(|s| std::cmp::Reverse(s.calls.iter().sum::<i64>()));
    Ok(UsageSeries {
        days: days
            .into_iter()
            .map(|d| crate::kernel::clock::format(d)[..10].to_owned())
            .collect(),
        series,
    })
}
