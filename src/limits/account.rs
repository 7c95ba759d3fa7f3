//! Per Crisp account: a ceiling on concurrent upstream calls plus a call rate, with a short
//! bounded queue before `429`.
//!
//! Crisp publishes no rate-limit headers and its daily quotas are per token, so the gateway
//! spends an account's budget deliberately instead of discovering the limit through errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::kernel::bucket::TokenBucket;

#[derive(Debug, Clone, Copy)]
pub struct AccountLimits {
    /// Concurrent upstream calls per account; 0 disables.
    pub max_concurrency: usize,
    /// Upstream calls per second per account; 0 disables.
    pub rate: f64,
    pub burst: f64,
    /// How long a call may wait for its turn before `429 account_busy`.
    pub queue_timeout: Duration,
    /// How many calls may wait at once per account before the rest are refused outright.
    pub max_queue: usize,
}

struct Gate {
    slots: Option<Arc<Semaphore>>,
    bucket: Mutex<TokenBucket>,
    waiting: AtomicUsize,
}

/// The right to make one upstream call for an account; dropping it frees the slot.
pub struct Turn {
    _slot: Option<OwnedSemaphorePermit>,
}

/// Refused: the account's budget is taken for longer than the queue allows.
#[derive(Debug, Clone, Copy)]
pub struct Busy {
    pub retry_after: Duration,
}

pub struct AccountShaper {
    limits: AccountLimits,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    queued: AtomicUsize,
}

impl AccountShaper {
    pub fn new(limits: AccountLimits) -> Self {
        Self {
            limits,
            gates: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// Calls waiting for their turn right now, over all accounts (a metrics gauge).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn gate(&self, account_id: &str) -> Arc<Gate> {
        let mut gates = self.gates.lock();
        gates
            .entry(account_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Gate {
                    slots: (self.limits.max_concurrency > 0)
                        .then(|| Arc::new(Semaphore::new(self.limits.max_concurrency))),
                    bucket: Mutex::new(TokenBucket::new(self.limits.rate, self.limits.burst)),
                    waiting: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Waits (briefly, boundedly) for the account's next turn.
    pub async fn turn(&self, account_id: &str) -> Result<Turn, Busy> {
        let limits = self.limits;
        if limits.max_concurrency == 0 && limits.rate <= 0.0 {
            return Ok(Turn { _slot: None });
        }
        let gate = self.gate(account_id);
        let busy = |retry_after: Duration| Busy {
            retry_after: retry_after.max(Duration::from_secs(1)),
        };
        let deadline = Instant::now() + limits.queue_timeout;
        if gate.waiting.load(Ordering::Relaxed) >= limits.max_queue {
            return Err(busy(limits.queue_timeout));
        }
        gate.waiting.fetch_add(1, Ordering::Relaxed);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let result = async {
            if limits.rate > 0.0 {
                let wait = gate
                    .bucket
                    .lock()
                    .reserve(Instant::now(), limits.queue_timeout)
                    .map_err(busy)?;
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let slot = match &gate.slots {
                Some(slots) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, slots.clone().acquire_owned()).await {
                        Ok(Ok(permit)) => Some(permit),
                        _ => return Err(busy(limits.queue_timeout)),
                    }
                }
                None => None,
            };
            Ok(Turn { _slot: slot })
        }
        .await;
        gate.waiting.fetch_sub(1, Ordering::Relaxed);
        self.queued.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shaper_queues_briefly_then_refuses() {
        let shaper = AccountShaper::new(AccountLimits {
            max_concurrency: 1,
            rate: 0.0,
            burst: 0.0,
            queue_timeout: Duration::from_millis(50),
            max_queue: 4,
        });
        let first = shaper.turn("acc").await.expect("free");
        let refused = shaper.turn("acc").await.err().expect("busy");
        assert!(refused.retry_after >= Duration::from_secs(1));
        assert!(
            shaper.turn("other").await.is_ok(),
            "accounts do not share slots"
        );
        drop(first);
        assert!(shaper.turn("acc").await.is_ok());
        assert_eq!(shaper.queue_depth(), 0);
    }
}
