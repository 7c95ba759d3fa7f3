//! Key quotas (`10000/day`), held across every replica on one database without a database
//! round trip per call.
//!
//! Each process claims a chunk of a key's quota from the key's counter row (one conditional
//! update that never takes the counter past the quota), spends it from memory, and claims
//! again when it runs out. Chunks grow while calls come fast and shrink as the quota runs out
//! (down to one call), so the last calls are claimed one by one and the total is exact. A chunk
//! left idle is given back, as is everything held when the process stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::store::{KeyId, Quota, Store, StoreError};

/// The first chunk a process claims for a key.
const FIRST_CHUNK: i64 = 4;
/// The largest chunk: what one process may hold out of the others' reach.
const MAX_CHUNK: i64 = 1_000;
/// A chunk is at most this share of what remains, so several replicas each find some.
const SHARE_OF_REMAINING: i64 = 16;
/// A chunk spent faster than this is followed by a bigger one (and slower, a smaller one).
const FAST_CHUNK: Duration = Duration::from_secs(1);
/// Held calls unused this long go back to the counter for the other replicas.
pub const IDLE_RETURN: Duration = Duration::from_secs(3);
/// How long an exhausted quota is answered from memory before the counter is read again
/// (another replica may have given calls back, or an operator raised the quota).
const EXHAUSTED_RECHECK: Duration = Duration::from_secs(1);

/// The size of the next chunk to claim: double the last while it went fast, half while slow,
/// and never more than a share of what remains (so the last calls go one by one).
pub fn next_chunk(last: i64, lasted: Option<Duration>, limit: i64, used: i64) -> i64 {
    let wanted = match lasted {
        None => FIRST_CHUNK,
        Some(d) if d < FAST_CHUNK => last.saturating_mul(2),
        Some(d) if d > FAST_CHUNK * 5 => last / 2,
        Some(_) => last,
    };
    let remaining = (limit - used).max(0);
    wanted
        .min(MAX_CHUNK)
        .min(remaining / SHARE_OF_REMAINING)
        .max(1)
}

/// A call refused because the key's quota for this period is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub quota: Quota,
    /// When the period ends (unix seconds).
    pub resets_at: i64,
}

/// Why a call may not spend its key's quota.
#[derive(Debug, thiserror::Error)]
pub enum QuotaError {
    #[error("the key's quota is spent until {}", crate::kernel::clock::format(.0.resets_at))]
    Exceeded(Exceeded),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a key has left, as this process knows it, for the rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaView {
    pub limit: i64,
    /// The period's length in seconds.
    pub window: i64,
    /// Calls left: what no replica has claimed, plus what this one holds.
    pub remaining: i64,
    /// Seconds until the period ends.
    pub reset: i64,
}

/// This process's part of one key's quota.
#[derive(Debug, Default)]
struct Held {
    period_start: i64,
    limit: i64,
    /// Claimed and not yet spent.
    calls: i64,
    /// The counter's value after this process's last claim (every replica's claims).
    used: i64,
    last_chunk: i64,
    claimed_at: Option<Instant>,
    last_spent: Option<Instant>,
    exhausted_until: Option<Instant>,
}

struct Slot {
    held: Mutex<Held>,
    /// One claim at a time per key and process; calls that find nothing held wait for it.
    claiming: tokio::sync::Mutex<()>,
}

/// The quotas of every key this process serves.
pub struct QuotaBook {
    store: Arc<dyn Store>,
    slots: Mutex<HashMap<KeyId, Arc<Slot>>>,
}

impl QuotaBook {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, key_id: &KeyId) -> Arc<Slot> {
        let mut slots = self.slots.lock();
        if let Some(slot) = slots.get(key_id.as_str()) {
            return slot.clone();
        }
        let slot = Arc::new(Slot {
            held: Mutex::new(Held::default()),
            claiming: tokio::sync::Mutex::new(()),
        });
        slots.insert(key_id.clone(), slot.clone());
        slot
    }

    /// Spends one call of the key's quota: from memory when this process holds some, else
    /// by claiming a chunk from the counter.
    pub async fn spend(&self, key_id: &KeyId, quota: Quota) -> Result<(), QuotaError> {
        let now = crate::kernel::clock::now();
        let period_start = quota.period.start(now);
        let exceeded = Exceeded {
            quota,
            resets_at: quota.period.end(now),
        };
        let slot = self.slot(key_id);
        if let Some(answer) = take_held(&slot.held, period_start, quota.limit) {
            return if answer {
                Ok(())
            } else {
                Err(QuotaError::Exceeded(exceeded))
            };
        }
        let _claiming = slot.claiming.lock().await;
        // Another call may have claimed while this one waited.
        if let Some(answer) = take_held(&slot.held, period_start, quota.limit) {
            return if answer {
                Ok(())
            } else {
                Err(QuotaError::Exceeded(exceeded))
            };
        }
        // What is still held belongs to another period or another limit: the old period's
        // counter no longer matters; under a changed limit, it goes back before claiming anew.
        let (stale, want) = {
            let mut held = slot.held.lock();
            if held.period_start != period_start || held.limit != quota.limit {
                let stale =
                    (held.period_start == period_start && held.calls > 0).then_some(held.calls);
                *held = Held {
                    period_start,
                    limit: quota.limit,
                    ..Held::default()
                };
                (stale, next_chunk(0, None, quota.limit, 0))
            } else {
                let lasted = held.claimed_at.map(|at| at.elapsed());
                (
                    None,
                    next_chunk(held.last_chunk, lasted, held.limit, held.used),
                )
            }
        };
        if let Some(calls) = stale {
            self.store.return_quota(key_id, period_start, calls).await?;
        }
        let claim = self
            .store
            .claim_quota(key_id, period_start, want, quota.limit)
            .await?;
        let mut held = slot.held.lock();
        held.used = claim.used;
        held.claimed_at = Some(Instant::now());
        if claim.granted == 0 {
            held.exhausted_until = Some(Instant::now() + EXHAUSTED_RECHECK);
            return Err(QuotaError::Exceeded(exceeded));
        }
        held.last_chunk = claim.granted;
        held.exhausted_until = None;
        held.calls += claim.granted - 1;
        held.last_spent = Some(Instant::now());
        Ok(())
    }

    /// Gives back one call spent by a call that was then refused before it reached Crisp (the
    /// account's budget was busy, say): it is held again, for this process's next call.
    pub fn refund(&self, key_id: &str, quota: Quota) {
        let Some(slot) = self.slots.lock().get(key_id).cloned() else {
            return;
        };
        let mut held = slot.held.lock();
        let now = crate::kernel::clock::now();
        if held.period_start == quota.period.start(now) && held.limit == quota.limit {
            held.calls += 1;
            held.exhausted_until = None;
        }
    }

    /// What the key has left as this process knows it; `None` before its first claim here.
    pub fn view(&self, key_id: &str, quota: Quota) -> Option<QuotaView> {
        let now = crate::kernel::clock::now();
        let slot = self.slots.lock().get(key_id).cloned()?;
        let held = slot.held.lock();
        if held.period_start != quota.period.start(now) || held.limit != quota.limit {
            return None;
        }
        let end = quota.period.end(now);
        Some(QuotaView {
            limit: quota.limit,
            window: end - held.period_start,
            remaining: (quota.limit - held.used).max(0) + held.calls,
            reset: end - now,
        })
    }

    /// Gives back the calls held unused for `idle` (every held call, with `Duration::ZERO`),
    /// so the other replicas can spend them.
    pub async fn give_back(&self, idle: Duration) {
        let slots: Vec<(KeyId, Arc<Slot>)> = self
            .slots
            .lock()
            .iter()
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key_id, slot) in slots {
            // Never while a claim runs: it would race the claim's own bookkeeping.
            let Ok(_claiming) = slot.claiming.try_lock() else {
                continue;
            };
            let (period_start, calls) = {
                let mut held = slot.held.lock();
                let idle_enough = held.last_spent.is_none_or(|at| at.elapsed() >= idle);
                if held.calls == 0 || !idle_enough {
                    continue;
                }
                let calls = std::mem::take(&mut held.calls);
                held.used -= calls;
                (held.period_start, calls)
            };
            if let Err(e) = self.store.return_quota(&key_id, period_start, calls).await {
                tracing::warn!(error = %e, key_id = %key_id, calls, "cannot give back unused quota; it counts as used this period");
            }
        }
    }

    /// Gives back idle calls every second, until the process stops.
    pub fn spawn_returns(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let book = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                book.give_back(IDLE_RETURN).await;
            }
        })
    }
}

/// Spends a held call: `Some(true)` spent, `Some(false)` the quota is known to be exhausted,
/// `None` nothing held (claim).
fn take_held(held: &Mutex<Held>, period_start: i64, limit: i64) -> Option<bool> {
    let mut held = held.lock();
    if held.period_start != period_start || held.limit != limit {
        return None;
    }
    if held.calls > 0 {
        held.calls -= 1;
        held.last_spent = Some(Instant::now());
        return Some(true);
    }
    match held.exhausted_until {
        Some(until) if Instant::now() < until => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_grow_with_demand_and_shrink_to_one_near_the_end() {
        assert_eq!(next_chunk(0, None, 10_000, 0), FIRST_CHUNK);
        assert_eq!(
            next_chunk(4, Some(Duration::from_millis(100)), 10_000, 100),
            8
        );
        assert_eq!(next_chunk(8, Some(Duration::from_secs(2)), 10_000, 100), 8);
        assert_eq!(next_chunk(8, Some(Duration::from_secs(60)), 10_000, 100), 4);
        assert_eq!(
            next_chunk(800, Some(Duration::from_millis(1)), 1_000_000, 0),
            MAX_CHUNK
        );
        // Near the end a chunk is a share of what remains, and never below one.
        assert_eq!(next_chunk(64, Some(Duration::from_millis(1)), 500, 400), 6);
        assert_eq!(next_chunk(64, Some(Duration::from_millis(1)), 500, 490), 1);
        assert_eq!(next_chunk(64, Some(Duration::from_millis(1)), 500, 499), 1);
        assert_eq!(next_chunk(64, None, 1, 0), 1);
        assert_eq!(next_chunk(1, Some(Duration::from_secs(60)), 500, 0), 1);
    }

    #[tokio::test]
    async fn two_books_on_one_database_spend_exactly_the_quota_and_give_back_what_they_hold() {
        let dir = tempfile::tempdir().expect("dir");
        let url = format!("sqlite://{}/q.db", dir.path().display());
        let store = crate::store::connect(&url).await.expect("store");
        store.migrate().await.expect("migrate");
        let (one, two) = (QuotaBook::new(store.clone()), QuotaBook::new(store.clone()));
        let key = KeyId::from("k");
        let quota = Quota {
            limit: 100,
            period: crate::store::QuotaPeriod::Day,
        };
        let start = quota.period.start(crate::kernel::clock::now());
        assert!(one.spend(&key, quota).await.is_ok());
        let held = store.quota_used(&key, start).await.expect("used");
        assert_eq!(
            held, FIRST_CHUNK,
            "the first claim is a chunk, spent from memory"
        );
        let view = one.view("k", quota).expect("view");
        assert_eq!((view.limit, view.remaining, view.window), (100, 99, 86_400));
        // Calls alternate between the two until both refuse: exactly the quota in total.
        let mut admitted = 1;
        for n in 0..300 {
            let book = if n % 2 == 0 { &one } else { &two };
            match book.spend(&key, quota).await {
                Ok(()) => admitted += 1,
                Err(QuotaError::Exceeded(e)) => {
                    assert_eq!(e.resets_at, quota.period.end(e.resets_at - 1))
                }
                Err(QuotaError::Store(e)) => panic!("{e}"),
            }
        }
        assert_eq!(admitted, 100);
        assert_eq!(store.quota_used(&key, start).await.expect("used"), 100);

        // What a book holds unused goes back (idle, or all of it when the process stops).
        let other = KeyId::from("other");
        assert!(one.spend(&other, quota).await.is_ok());
        assert_eq!(
            store.quota_used(&other, start).await.expect("used"),
            FIRST_CHUNK
        );
        one.give_back(Duration::from_secs(60)).await;
        assert_eq!(
            store.quota_used(&other, start).await.expect("used"),
            FIRST_CHUNK,
            "not idle yet"
        );
        one.give_back(Duration::ZERO).await;
        assert_eq!(store.quota_used(&other, start).await.expect("used"), 1);
        assert_eq!(one.view("other", quota).expect("view").remaining, 99);
        // A refund is held again, for this book's next call.
        one.refund("other", quota);
        assert!(one.spend(&other, quota).await.is_ok());
        assert_eq!(store.quota_used(&other, start).await.expect("used"), 1);
    }
}
