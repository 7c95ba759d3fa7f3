//! The audit trail and key last-use times, written in batches off the request path.
//!
//! Requests hand records to a bounded channel and move on; one task writes them in batches,
//! keeps them through a database outage, prunes rows past the retention, and is flushed on
//! graceful shutdown so nothing buffered is lost.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::store::{AuditRecord, Store};

const BATCH: usize = 256;
const CHANNEL: usize = 16_384;
/// What the writer keeps in memory while the database is down, before it must drop rows.
const BACKLOG_LIMIT: usize = 100_000;

enum Message {
    Record(AuditRecord),
    Touch(String, i64),
    Flush(oneshot::Sender<()>),
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    tx: mpsc::Sender<Message>,
}

impl Auditor {
    /// Starts the writer task.
    pub fn start(store: Arc<dyn Store>, retention: Duration) -> Self {
        let (tx, rx) = mpsc::channel(CHANNEL);
        tokio::spawn(write_loop(store, rx, retention));
        Self { tx }
    }

    pub fn record(&self, record: AuditRecord) {
        if self.tx.try_send(Message::Record(record)).is_err() {
            tracing::error!("the audit buffer is full; an audit row was dropped");
        }
    }

    /// Notes that a key was used (the caller rate-limits this to once a minute per key).
    pub fn touch(&self, key_id: &str, at: i64) {
        let _ = self.tx.try_send(Message::Touch(key_id.to_owned(), at));
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

async fn write_loop(store: Arc<dyn Store>, mut rx: mpsc::Receiver<Message>, retention: Duration) {
    let mut records: Vec<AuditRecord> = Vec::new();
    let mut touches: Vec<(String, i64)> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_prune = 0_i64;
    loop {
        let mut due = false;
        tokio::select! {
            message = rx.recv() => match message {
                Some(Message::Record(r)) => records.push(r),
                Some(Message::Touch(key, at)) => touches.push((key, at)),
                Some(Message::Flush(done)) => waiting.push(done),
                None => {
                    write(&store, &mut records, &mut touches).await;
                    return;
                }
            },
            _ = tick.tick() => due = true,
        }
        if records.len() >= BATCH || !waiting.is_empty() || due {
            write(&store, &mut records, &mut touches).await;
            if records.is_empty() {
                for done in waiting.drain(..) {
                    let _ = done.send(());
                }
            }
        }
        if records.len() > BACKLOG_LIMIT {
            let excess = records.len() - BACKLOG_LIMIT;
            records.drain(..excess);
            tracing::error!(
                dropped = excess,
                "the database has been unavailable too long; oldest audit rows dropped"
            );
        }
        let now = crate::clock::now();
        if now - last_prune >= 3600 {
            last_prune = now;
            let before = now - i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
            match store.prune_audit(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(rows = n, "pruned audit rows past the retention"),
                Err(e) => tracing::warn!(error = %e, "cannot prune audit rows"),
            }
        }
    }
}

async fn write(
    store: &Arc<dyn Store>,
    records: &mut Vec<AuditRecord>,
    touches: &mut Vec<(String, i64)>,
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
