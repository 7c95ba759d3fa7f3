//! Usage reports: the calls counted per workspace, key, action and UTC day, summed the way an
//! operator asks (`crisp-gateway usage`, and the admin API).

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::store::UsageCounts;
use crate::store::{KeyId, Store, StoreError, UsageFilter};

/// What a report's lines add up by (always within a workspace).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageBy {
    #[default]
    Key,
    Action,
    Day,
}

impl FromStr for UsageBy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "key" => Ok(Self::Key),
            "action" => Ok(Self::Action),
            "day" => Ok(Self::Day),
            other => Err(format!(
                "`{other}` is not a grouping: use key, action or day"
            )),
        }
    }
}

/// Which usage to report: one workspace's (by name) or every one's, over the UTC days that
/// overlap the last `since`, added up by `by`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub workspace: Option<String>,
    pub since: Duration,
    pub by: UsageBy,
}

impl Default for UsageQuery {
    fn default() -> Self {
        Self {
            workspace: None,
            since: Duration::from_secs(7 * 86_400),
            by: UsageBy::Key,
        }
    }
}

/// One line of a report: the group it adds up (the fields `by` names; the others are absent)
/// and its counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageLine {
    /// The workspace's name.
    pub workspace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<KeyId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The UTC day, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub day: Option<String>,
    #[serde(flatten)]
    pub counts: UsageCounts,
}

#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("no workspace named `{0}`; see `crisp-gateway workspace list`")]
    UnknownWorkspace(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The report: one line per group, days oldest first, keys and actions busiest first.
pub async fn report(
    store: &Arc<dyn Store>,
    query: &UsageQuery,
) -> Result<Vec<UsageLine>, UsageError> {
    let workspace_id = match &query.workspace {
        Some(name) => match store.find_workspace(name).await {
            Ok(w) => Some(w.workspace_id),
            Err(StoreError::NotFound) => return Err(UsageError::UnknownWorkspace(name.clone())),
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    let now = crate::kernel::clock::now();
    let since = now.saturating_sub(i64::try_from(query.since.as_secs()).unwrap_or(i64::MAX));
    let rows = store
        .list_usage(&UsageFilter {
            workspace_id: workspace_id.clone(),
            since,
        })
        .await?;
    let workspaces = store.list_workspaces().await?;
    let keys = if query.by == UsageBy::Key {
        store.list_keys(workspace_id.as_ref()).await?
    } else {
        Vec::new()
    };
    // Grouped by (workspace id, group value): a BTreeMap keeps a stable order before sorting.
    let mut groups: BTreeMap<(String, String), UsageCounts> = BTreeMap::new();
    for row in &rows {
        let group = match query.by {
            UsageBy::Key => row.api_key_id.to_string(),
            UsageBy::Action => row.action.clone(),
            UsageBy::Day => day_label(row.day),
        };
        *groups
            .entry((row.workspace_id.to_string(), group))
            .or_default() += row.counts;
    }
    let mut lines: Vec<UsageLine> = groups
        .into_iter()
        .map(|((workspace_id, group), counts)| {
            let workspace = workspaces
                .iter()
                .find(|w| w.workspace_id == workspace_id)
                .map_or_else(|| workspace_id.clone(), |w| w.name.clone());
            let mut line = UsageLine {
                workspace,
                counts,
                ..UsageLine::default()
            };
            match query.by {
                UsageBy::Key => {
                    line.key_name = keys
                        .iter()
                        .find(|k| k.api_key_id == group)
                        .and_then(|k| k.name.clone());
                    line.key_id = Some(KeyId::from(group));
                }
                UsageBy::Action => line.action = Some(group),
                UsageBy::Day => line.day = Some(group),
            }
            line
        })
        .collect();
    if query.by != UsageBy::Day {
        lines.sort_by(|a, b| {
            b.counts
                .calls
                .cmp(&a.counts.calls)
                .then_with(|| a.workspace.cmp(&b.workspace))
        });
    }
    Ok(lines)
}

/// `YYYY-MM-DD` of a day's unix midnight.
fn day_label(day: i64) -> String {
    let mut text = crate::kernel::clock::format(day);
    text.truncate(10);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groupings_read_as_their_words_and_lines_serialise_flat() {
        assert_eq!("action".parse::<UsageBy>(), Ok(UsageBy::Action));
        assert!("week".parse::<UsageBy>().is_err());
        assert_eq!(day_label(1_796_169_600), "2026-12-02");
        let line = UsageLine {
            workspace: "acme".into(),
            action: Some("list/conversations".into()),
            counts: UsageCounts {
                calls: 3,
                crisp_2xx: 3,
                ..UsageCounts::default()
            },
            ..UsageLine::default()
        };
        let json = serde_json::to_value(&line).expect("json");
        assert_eq!(json["calls"], 3);
        assert_eq!(json["action"], "list/conversations");
        assert!(json.get("key_id").is_none());
        assert_eq!(
            serde_json::from_value::<UsageLine>(json).expect("back"),
            line
        );
    }
}
