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

use super::lease::Amount;
use super::shared::{HORIZON, Leased, Ledger, TRICKLE, Tally, burst_of};
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

/// An account's own budget, where the operator set one (`account update --rate
/// --concurrency`); `None` keeps the configured default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OwnBudget {
    pub rate: Option<f64>,
    pub max_concurrency: Option<usize>,
}

/// Permits that can be resized while some are held: a cut forgets free permits at once and
/// the rest as their calls end (at the next resize).
struct Slots {
    semaphore: Arc<Semaphore>,
    /// Permits in existence, free or held.
    owned: Mutex<usize>,
}

impl Slots {
    fn new(permits: usize) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(permits)),
            owned: Mutex::new(permits),
        }
    }

    fn resize(&self, target: usize) {
        let mut owned = self.owned.lock();
        if target > *owned {
            self.semaphore.add_permits(target - *owned);
            *owned = target;
        } else if target < *owned {
            *owned -= self.semaphore.forget_permits(*owned - target);
        }
    }

    fn owned(&self) -> usize {
        *self.owned.lock()
    }
}

struct Gate {
    /// The account's whole budget (across replicas when shared).
    total: Amount,
    burst: f64,
    own: OwnBudget,
    slots: Option<Slots>,
    bucket: Mutex<TokenBucket>,
    waiting: AtomicUsize,
    /// Shared budgets only: one waiter at a time lines its call up, in arrival order.
    head: tokio::sync::Mutex<()>,
    tally: Tally,
}

impl Gate {
    fn new(total: Amount, burst: f64, own: OwnBudget, share: Amount, tally: Tally) -> Self {
        Self {
            total,
            burst,
            own,
            slots: (total.slots > 0).then(|| Slots::new(share.slots as usize)),
            bucket: Mutex::new(TokenBucket::new(
                share.rate.max(TRICKLE),
                burst_of(total.rate, burst, share.rate),
            )),
            waiting: AtomicUsize::new(0),
            head: tokio::sync::Mutex::new(()),
            tally,
        }
    }
}

impl Leased for Gate {
    fn total(&self) -> Amount {
        self.total
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn holding(&self) -> Amount {
        Amount {
            rate: 0.0,
            slots: self
                .slots
                .as_ref()
                .map_or(0, |s| u32::try_from(s.owned()).unwrap_or(u32::MAX)),
        }
    }

    fn resize(&self, share: Amount) {
        if self.total.rate > 0.0 {
            self.bucket.lock().set_rate(
                Instant::now(),
                share.rate.max(TRICKLE),
                burst_of(self.total.rate, self.burst, share.rate),
            );
        }
        if let Some(slots) = &self.slots {
            slots.resize(share.slots as usize);
        }
    }
}

/// The right to make one upstream call for an account; dropping it frees the slot.
pub struct Turn {
    _slot: Option<OwnedSemaphorePermit>,
    _flight: Option<Flight>,
}

/// A call in flight on a shared budget, counted for the size of the next lease.
struct Flight(Arc<Gate>);

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.tally.flight(false);
    }
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
    /// Set when the budgets are shared with other replicas through leases.
    ledger: Option<Arc<Ledger>>,
}

impl AccountShaper {
    /// Budgets kept in this process alone.
    pub fn new(limits: AccountLimits) -> Self {
        Self {
            limits,
            gates: Mutex::new(HashMap::new()),
            queued: AtomicUsize::new(0),
            ledger: None,
        }
    }

    /// Budgets shared with every replica that renews its leases through the same store: each
    /// account spends the share its lease grants this process.
    pub fn shared(limits: AccountLimits, ledger: Arc<Ledger>) -> Self {
        Self {
            ledger: Some(ledger),
            ..Self::new(limits)
        }
    }

    /// Calls waiting for their turn right now, over all accounts (a metrics gauge).
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    fn total(&self, own: OwnBudget) -> Amount {
        Amount {
            rate: own.rate.unwrap_or(self.limits.rate).max(0.0),
            slots: u32::try_from(own.max_concurrency.unwrap_or(self.limits.max_concurrency))
                .unwrap_or(u32::MAX),
        }
    }

    fn gate(&self, account_id: &str, own: OwnBudget) -> Arc<Gate> {
        let mut gates = self.gates.lock();
        if let Some(gate) = gates.get(account_id)
            && gate.own == own
            && !gate.tally.retired()
        {
            return gate.clone();
        }
        // New, given back while idle, or its budget changed: a fresh gate (calls holding the
        // old one finish under it).
        let total = self.total(own);
        let (share, tally) = match &self.ledger {
            Some(ledger) => {
                let share = ledger.provisional(total);
                (share, Tally::new(ledger, share))
            }
            None => (total, Tally::default()),
        };
        let gate = Arc::new(Gate::new(total, self.limits.burst, own, share, tally));
        gates.insert(account_id.to_owned(), gate.clone());
        if let Some(ledger) = &self.ledger {
            ledger.register(format!("account:{account_id}"), gate.clone());
        }
        gate
    }

    /// Waits (briefly, boundedly) for the account's next turn.
    pub async fn turn(&self, account_id: &str, own: OwnBudget) -> Result<Turn, Busy> {
        let limits = self.limits;
        let total = self.total(own);
        if total.slots == 0 && total.rate <= 0.0 {
            return Ok(Turn {
                _slot: None,
                _flight: None,
            });
        }
        let gate = self.gate(account_id, own);
        let busy = |retry_after: Duration| Busy {
            retry_after: retry_after.max(Duration::from_secs(1)),
        };
        let deadline = Instant::now() + limits.queue_timeout;
        if gate.waiting.load(Ordering::Relaxed) >= limits.max_queue {
            gate.tally.starved_rate();
            return Err(busy(limits.queue_timeout));
        }
        if let Some(ledger) = &self.ledger {
            gate.tally.asked(ledger);
        }
        gate.waiting.fetch_add(1, Ordering::Relaxed);
        self.queued.fetch_add(1, Ordering::Relaxed);
        let result = async {
            if total.rate > 0.0 {
                let wait = match &self.ledger {
                    None => gate
                        .bucket
                        .lock()
                        .reserve(Instant::now(), limits.queue_timeout)
                        .map_err(busy)?,
                    Some(_) => line_up(&gate, total.rate, deadline).await.map_err(busy)?,
                };
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
            let slot = match &gate.slots {
                Some(slots) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let semaphore = slots.semaphore.clone();
                    let permit = match semaphore.clone().try_acquire_owned() {
                        Ok(permit) => Ok(permit),
                        Err(_) => {
                            gate.tally.starved_slots();
                            tokio::time::timeout(left, semaphore.acquire_owned())
                                .await
                                .map_err(|_| ())
                                .and_then(|p| p.map_err(|_| ()))
                        }
                    };
                    Some(permit.map_err(|()| busy(limits.queue_timeout))?)
                }
                None => None,
            };
            let flight = self.ledger.as_ref().map(|_| {
                gate.tally.flight(true);
                Flight(gate.clone())
            });
            Ok(Turn {
                _slot: slot,
                _flight: flight,
            })
        }
        .await;
        gate.waiting.fetch_sub(1, Ordering::Relaxed);
        self.queued.fetch_sub(1, Ordering::Relaxed);
        result
    }
}

/// A shared budget's rate: calls line up one at a time, in arrival order, and the first takes
/// a token when one is there, at the share's rate of that moment. Nothing is reserved ahead, so
/// a share cut by a renewal holds back every call from then on, and a replica whose timers fire
/// late (a busy machine) sends at most its burst at once, never a backlog of reserved calls.
/// Returns how long the caller still waits: always zero, the waiting is done here.
async fn line_up(gate: &Gate, total_rate: f64, deadline: Instant) -> Result<Duration, Duration> {
    let ahead = gate.waiting.load(Ordering::Relaxed).saturating_sub(1);
    // Not even the whole budget across every replica would serve this call in time.
    let at_best = Duration::from_secs_f64(ahead as f64 / total_rate);
    let now = Instant::now();
    if ahead > 0 && now + at_best > deadline {
        gate.tally.starved_rate();
        return Err(at_best);
    }
    let Ok(_head) = tokio::time::timeout_at(deadline.into(), gate.head.lock()).await else {
        gate.tally.starved_rate();
        return Err(deadline.saturating_duration_since(now));
    };
    loop {
        let now = Instant::now();
        let taken = gate.bucket.lock().try_take(now);
        match taken {
            Ok(()) => return Ok(Duration::ZERO),
            Err(until) => {
                gate.tally.starved_rate();
                // Look again often: a renewal may raise the share meanwhile.
                let nap = until.min(HORIZON);
                if now + nap > deadline {
                    return Err(until);
                }
                tokio::time::sleep(nap).await;
            }
        }
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
        let first = shaper
            .turn("acc", OwnBudget::default())
            .await
            .expect("free");
        let refused = shaper
            .turn("acc", OwnBudget::default())
            .await
            .err()
            .expect("busy");
        assert!(refused.retry_after >= Duration::from_secs(1));
        assert!(
            shaper.turn("other", OwnBudget::default()).await.is_ok(),
            "accounts do not share slots"
        );
        drop(first);
        assert!(shaper.turn("acc", OwnBudget::default()).await.is_ok());
        assert_eq!(shaper.queue_depth(), 0);
    }
}
