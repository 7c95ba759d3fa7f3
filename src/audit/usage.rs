//! Usage counters: every call of a valid key, counted in memory per key, action and UTC day,
//! and handed to the audit writer as rows to add to the database's.

use std::collections::HashMap;

use crate::store::{KeyId, UsageRecord, WorkspaceId};

/// One call, as the counters see it.
#[derive(Debug, Clone, Copy)]
pub struct CallCount<'a> {
    pub workspace_id: &'a WorkspaceId,
    pub key_id: &'a KeyId,
    pub action: &'static str,
    /// What the caller got.
    pub status: u16,
    /// What Crisp answered last, if it was asked and answered.
    pub upstream_status: Option<u16>,
    /// Time spent on Crisp's side of the call.
    pub upstream_ms: u64,
    /// Unix seconds, for the day.
    pub at: i64,
}

/// The counts since the last write; keyed by key id first so a call allocates nothing once
/// its key and action were counted in the day. foldhash: counted on every call, where SipHash
/// was a visible part of a call's cost, and the keys are the gateway's own ids and actions.
#[derive(Default)]
pub(super) struct UsageTable {
    keys: HashMap<KeyId, KeyUsage, foldhash::fast::RandomState>,
}

struct KeyUsage {
    workspace_id: WorkspaceId,
    rows: HashMap<(&'static str, i64), UsageRecord, foldhash::fast::RandomState>,
}

impl UsageTable {
    pub(super) fn add(&mut self, call: &CallCount<'_>) {
        if !self.keys.contains_key(call.key_id.as_str()) {
            self.keys.insert(
                call.key_id.clone(),
                KeyUsage {
                    workspace_id: call.workspace_id.clone(),
                    rows: HashMap::default(),
                },
            );
        }
        let Some(key) = self.keys.get_mut(call.key_id.as_str()) else {
            return;
        };
        let day = call.at.div_euclid(86_400) * 86_400;
        let row = &mut key.rows.entry((call.action, day)).or_default().counts;
        row.calls += 1;
        let gateway_answered = call.upstream_status.is_none();
        if gateway_answered && (400..500).contains(&call.status) {
            row.refused += 1;
        }
        if gateway_answered && call.status >= 500 {
            row.failed += 1;
        }
        match call.upstream_status {
            Some(200..=299) => row.crisp_2xx += 1,
            Some(400..=499) => row.crisp_4xx += 1,
            Some(500..=599) => row.crisp_5xx += 1,
            // Crisp answers nothing else the forwarder passes on; a 1xx or 3xx is counted as
            // no usable answer.
            _ => row.crisp_none += 1,
        }
        row.upstream_ms += i64::try_from(call.upstream_ms).unwrap_or(i64::MAX);
    }

    /// The rows counted so far, ready to add to the database's; the table starts over.
    pub(super) fn take(&mut self) -> Vec<UsageRecord> {
        let mut rows = Vec::new();
        for (key_id, key) in self.keys.drain() {
            for ((action, day), mut row) in key.rows {
                row.workspace_id = key.workspace_id.clone();
                row.api_key_id = key_id.clone();
                row.action = action.to_owned();
                row.day = day;
                rows.push(row);
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_by_key_action_and_day_in_their_classes() {
        let (ws, k1, k2) = (
            WorkspaceId::from("ws"),
            KeyId::from("k1"),
            KeyId::from("k2"),
        );
        let call = |key_id, status, upstream_status, at| CallCount {
            workspace_id: &ws,
            key_id,
            action: "list/conversations",
            status,
            upstream_status,
            upstream_ms: 10,
            at,
        };
        let mut table = UsageTable::default();
        table.add(&call(&k1, 200, Some(200), 86_400 + 5));
        table.add(&call(&k1, 404, Some(404), 86_400 + 6));
        table.add(&call(&k1, 429, None, 86_400 + 7));
        table.add(&call(&k1, 504, None, 86_400 + 8));
        table.add(&call(&k1, 502, Some(503), 86_400 + 9));
        table.add(&call(&k1, 200, Some(200), 2 * 86_400));
        table.add(&call(&k2, 200, Some(201), 86_400));
        let mut rows = table.take();
        rows.sort_by_key(|r| (r.api_key_id.clone(), r.day));
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].api_key_id.as_str(), rows[0].day), ("k1", 86_400));
        let first = &rows[0].counts;
        assert_eq!(
            (first.calls, first.refused, first.failed),
            (5, 1, 1),
            "{first:?}"
        );
        assert_eq!(
            (
                first.crisp_2xx,
                first.crisp_4xx,
                first.crisp_5xx,
                first.crisp_none
            ),
            (1, 1, 1, 2)
        );
        assert_eq!(first.upstream_ms, 50);
        assert_eq!(rows[1].day, 2 * 86_400);
        assert_eq!(rows[2].workspace_id, "ws");
        assert!(table.take().is_empty(), "the table starts over");
    }
}
