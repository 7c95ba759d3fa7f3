//! The audit trail and key last-use times, written in batches off the request path.
//!
//! Requests hand records to a bounded channel and move on; one task writes them in batches,
//! keeps them through a database outage, prunes rows past the retention, and is flushed on
//! graceful shutdown so nothing buffered is lost.
//!
//! Usage counts (every call of a valid key, per key, action and UTC day) are kept in memory
//! too and added to the database's rows every `USAGE_FLUSH`, on a flush and at shutdown, so
//! replicas add up.
//!
//! Refusals (a bad key, a call outside the key's scope, a rate limit) are not a row each: a
//! flood of them would fill the disk. They are counted per reason, client and minute, in a
//! table of bounded size, and written as one row per entry with its count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRecord, KeyId, Store, UsageRecord, WorkspaceId};

mod usage;

pub use usage::CallCount;
use usage::UsageTable;

/// How often the usage counts are added to the database's.
pub const USAGE_FLUSH: Duration = Duration::from_secs(2);

const BATCH: usize = 256;
const CHANNEL: usize = 16_384;
/// What the writer keeps in memory while the database is down, before it must drop rows.
const BACKLOG_LIMIT: usize = 100_000;

enum Message {
    Record(AuditRecord),
    Touch(KeyId, i64),
    Flush(oneshot::Sender<()>),
}

/// Distinct refusal rows kept per minute; past it, refusals fold into one row per reason.
const REFUSAL_ENTRIES: usize = 256;
/// Distinct key ids counted apart per client address and minute; past it, that address's
/// refusals fold into one row without a key id (a flood of random key ids is one row).
const KEY_IDS_PER_CLIENT: usize = 8;

/// A refused call, as the aggregation sees it. `action` is a catalog slug or a fixed word,
/// never the caller's path.
#[derive(Debug, Clone, Copy)]
pub struct Refusal<'a> {
    pub reason: &'a str,
    pub status: u16,
    pub workspace_id: Option<&'a str>,
    pub key_id: Option<&'a str>,
    pub client: Option<IpAddr>,
    pub action: &'static str,
    pub request_id: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RefusalKey {
    reason: String,
    status: u16,
    workspace_id: Option<WorkspaceId>,
    key_id: Option<KeyId>,
    /// Set when no key id identifies the client (and for a client's folded rows).
    client: Option<IpAddr>,
    action: &'static str,
}

#[derive(Default)]
struct Refusals {
    minute: i64,
    rows: HashMap<RefusalKey, AuditRecord>,
    key_ids_per_client: HashMap<IpAddr, usize>,
}

impl Refusals {
    fn add(&mut self, refusal: &Refusal<'_>, now: i64) {
        // Crisp's reasons never reach here, but bound whatever does.
        let reason = crate::kernel::text::truncate(refusal.reason, 64);
        let mut key = RefusalKey {
            reason: reason.to_owned(),
            status: refusal.status,
            workspace_id: refusal.workspace_id.map(WorkspaceId::from),
            key_id: refusal
                .key_id
                .map(|k| KeyId::from(crate::kernel::text::truncate(k, 64))),
            client: refusal.key_id.is_none().then_some(refusal.client).flatten(),
            action: refusal.action,
        };
        if !self.rows.contains_key(&key) {
            if self.rows.len() >= REFUSAL_ENTRIES {
                key = RefusalKey {
                    reason: key.reason,
                    status: key.status,
                    workspace_id: None,
                    key_id: None,
                    client: None,
                    action: "unknown",
                };
            } else if let (Some(_), Some(ip)) = (&key.key_id, refusal.client) {
                // Tracked only while the table has room, so this map is bounded with it.
                let seen = self.key_ids_per_client.entry(ip).or_default();
                if *seen >= KEY_IDS_PER_CLIENT {
                    key.key_id = None;
                    key.client = Some(ip);
                    key.action = "unknown";
                } else {
                    *seen += 1;
                }
            }
        }
        let row = self.rows.entry(key).or_insert_with_key(|key| AuditRecord {
            at: now,
            workspace_id: key.workspace_id.clone(),
            api_key_id: key.key_id.clone(),
            crisp_account_id: None,
            action: key.action.to_owned(),
            status: i32::from(key.status),
            upstream_status: None,
            duration_ms: 0,
            request_id: refusal.request_id.to_owned(),
            reason: Some(key.reason.clone()),
            count: 0,
            client: key.client.map(|ip| ip.to_string()),
        });
        row.count += 1;
    }

    /// The rows counted so far; the table starts over.
    fn take(&mut self) -> Vec<AuditRecord> {
        self.key_ids_per_client.clear();
        self.rows.drain().map(|(_, row)| row).collect()
    }
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Message>,
    refusals: Arc<Mutex<Refusals>>,
    usage: Arc<Mutex<UsageTable>>,
}

impl Auditor {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>, retention: Duration) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL);
        let refusals = Arc::new(Mutex::new(Refusals::default()));
        let usage = Arc::new(Mutex::new(UsageTable::default()));
        tokio::spawn(write_loop(
            store,
            rx,
            retention,
            refusals.clone(),
            usage.clone(),
        ));
        Self {
            tx,
            refusals,
            usage,
        }
    }

    /// Counts a call of a valid key into its day's usage (one hash-map update).
    pub fn count(&self, call: &CallCount<'_>) {
        self.usage.lock().add(call);
    }

    pub fn record(&self, record: AuditRecord) {
        if self.tx.try_send(Message::Record(record)).is_err()
            && crate::telemetry::gate::allow(crate::telemetry::gate::Kind::AuditDropped, 0)
        {
            tracing::error!("the audit buffer is full; an audit row was dropped");
        }
    }

    /// Counts a refusal into its minute's row (one hash-map update; written once a minute).
    pub fn refused(&self, refusal: &Refusal<'_>) {
        let now = crate::kernel::clock::now();
        let mut refusals = self.refusals.lock();
        if refusals.minute != now / 60 && !refusals.rows.is_empty() {
            // A new minute: hand the last one's rows to the writer now rather than mix them.
            let rows = refusals.take();
            for row in rows {
                let _ = self.tx.try_send(Message::Record(row));
            }
        }
        refusals.minute = now / 60;
        refusals.add(refusal, now);
    }

    /// Notes that a key was used (the caller rate-limits this to once a minute per key).
    pub fn touch(&self, key_id: &str, at: i64) {
        let _ = self.tx.try_send(Message::Touch(KeyId::from(key_id), at));
    }

    /// Writes everything buffered so far; returns when it is in the database (or the
    /// database refused it for `timeout`).
    pub async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }
}

async fn write_loop(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Message>,
    retention: Duration,
    refusals: Arc<Mutex<Refusals>>,
    usage: Arc<Mutex<UsageTable>>,
) {
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut counts: Vec<UsageRecord> = Vec::new();
    let mut last_usage = tokio::time::Instant::now();
    let mut touches: Vec<(KeyId, i64)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_prune = 0_i64;
    loop {
        let mut due = false;
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Record(r)) => records.push(r),
                Some(Message::Touch(key, at)) => touches.push((key, at)),
                Some(Message::Flush(done)) => {
                    records.extend(refusals.lock().take());
                    counts.extend(usage.lock().take());
                    waiting.push(done);
                }
                None => {
                    records.extend(refusals.lock().take());
                    counts.extend(usage.lock().take());
                    write(&store, &mut records, &mut touches).await;
                    write_usage(&store, &mut counts).await;
                    return;
                }
            },
            _ = tick.tick() => {
                due = true;
                let mut refusals = refusals.lock();
                if refusals.minute != crate::kernel::clock::now() / 60 {
                    records.extend(refusals.take());
                }
            }
        }
        if last_usage.elapsed() >= USAGE_FLUSH || !waiting.is_empty() {
            last_usage = tokio::time::Instant::now();
            counts.extend(usage.lock().take());
            if !counts.is_empty() {
                write_usage(&store, &mut counts).await;
            }
        }
        if records.len() >= BATCH || !waiting.is_empty() || due {
            write(&store, &mut records, &mut touches).await;
            if records.is_empty() && counts.is_empty() {
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        if records.len() > BACKLOG_LIMIT {
            let excess = records.len() - BACKLOG_LIMIT;
            records.drain(..excess);
            tracing::warn!(
                dropped = excess,
                "the database has been unavailable too long; oldest audit rows dropped"
            );
        }
        let now = crate::kernel::clock::now();
        if now - last_prune >= 3600 {
            last_prune = now;
            let before = now - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            match store.prune_audit(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned audit rows past the retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune audit rows"),
            }
            match store.prune_idempotency(now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned expired idempotency records"),
                Err(e) => tracing::warn!(error = %e, "cannot prune idempotency records"),
            }
        }
    }
}

/// Adds the counted usage to the database's rows; kept for the next try if it cannot.
async fn write_usage(store: &Arc<dyn Store>, counts: &mut Vec<UsageRecord>) {
    match store.add_usage(counts).await {
        Ok(()) => counts.clear(),
        Err(e) => {
            tracing::warn!(error = %e, buffered = counts.len(), "cannot write usage counts; keeping them");
            if counts.len() > BACKLOG_LIMIT {
                let excess = counts.len() - BACKLOG_LIMIT;
                counts.drain(..excess);
            }
        }
    }
}

async fn write(
    store: &Arc<dyn Store>,
    records: &mut Vec<AuditRecord>,
    touches: &mut Vec<(KeyId, i64)>,
) {
    if !records.is_empty() {
        match store.insert_audit(records).await {
            Ok(()) => records.clear(),
            Err(e) => {
                tracing::warn!(error = %e, buffered = records.len(), "cannot write audit rows; keeping them")
            }
        }
    }
    if !touches.is_empty() {
        match store.touch_keys(touches).await {
            Ok(()) => touches.clear(),
            Err(e) => tracing::warn!(error = %e, "cannot record key use; will retry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<'a>(key_id: Option<&'a str>, client: IpAddr) -> Refusal<'a> {
        Refusal {
            reason: "unauthorized",
            status: 401,
            workspace_id: None,
            key_id,
            client: Some(client),
            action: "unknown",
            request_id: "r",
        }
    }

    #[test]
    fn floods_fold_into_a_bounded_number_of_rows() {
        let mut refusals = Refusals::default();
        let one: IpAddr = [127, 0, 0, 2].into();
        let ids: Vec<String> = (0..10_000).map(|n| format!("key{n}")).collect();
        for id in &ids {
            refusals.add(&refusal(Some(id), one), 60);
        }
        let rows = refusals.take();
        assert_eq!(rows.len(), KEY_IDS_PER_CLIENT + 1, "{rows:#?}");
        assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 10_000);
        let folded = rows.iter().find(|r| r.api_key_id.is_none()).expect("fold");
        assert_eq!(folded.client.as_deref(), Some("127.0.0.2"));

        for n in 0..10_000_u32 {
            let ip = IpAddr::from(n.to_be_bytes());
            refusals.add(&refusal(None, ip), 60);
            refusals.add(&refusal(Some("k"), ip), 60);
        }
        let rows = refusals.take();
        assert!(rows.len() <= REFUSAL_ENTRIES + 1, "{}", rows.len());
        assert_eq!(rows.iter().map(|r| r.count).sum::<i64>(), 20_000);
        assert!(refusals.key_ids_per_client.is_empty());
    }
}
