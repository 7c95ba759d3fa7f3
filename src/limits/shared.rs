//! Budgets held across replicas: the ledger of this process's budgets, the port through which
//! their leases are renewed (the store implements it, `app/` wires it), and one renewal.
//!
//! No call waits on the database: each budget spends a local share (a token bucket's rate and a
//! semaphore's permits) that the renewal task resizes from the lease the shared store grants.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::lease::{self, Amount, Demand};

/// How long a lease lasts: a replica that stops renewing loses its share this long after its
/// last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(1);
/// How often leases are renewed: several times per lease, so one slow renewal loses nothing.
pub const RENEW_EVERY: Duration = Duration::from_millis(250);
/// The longest a call waiting for a shared budget's token sleeps before it looks again, so a
/// share raised by a renewal is spent soon after.
pub const HORIZON: Duration = Duration::from_millis(50);
/// A budget unused this long is given back and forgotten.
const IDLE: Duration = Duration::from_secs(10);
/// The heartbeat budget every replica leases: its live leases count the replicas.
pub const REPLICAS: &str = "replicas";

/// One budget's request at a renewal.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    /// `account:<id>`, `key:<id>` or `replicas`.
    pub budget: String,
    pub total: Amount,
    pub want: Amount,
    /// The least this replica must be recorded as holding whatever it is granted: slots in use
    /// cannot be taken back until their calls end.
    pub holding: Amount,
    /// Kept free for each live replica that holds no lease on the budget yet, for its first
    /// calls (`lease::newcomer`; nothing for a budget that keeps an equal part instead, see
    /// `Leased::equal_part_floor`).
    pub newcomer: Amount,
    /// The live replicas as this one last counted them.
    pub live: usize,
}

impl Ask {
    /// The share `replica` is granted against the others' live leases (`lease::grant`), at
    /// `now` (unix milliseconds) in leases lasting `ttl`: what a `LeasePort` decides for each
    /// ask, atomically per budget.
    pub fn grant(
        &self,
        replica: &str,
        peers: &[lease::Peer<'_>],
        now: i64,
        ttl: Duration,
    ) -> Amount {
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        lease::grant(
            self.total,
            replica,
            self.want,
            peers,
            self.newcomer,
            self.live,
            lease::turn(now, ttl),
        )
    }
}

/// One budget's answer: the share granted, and how many replicas hold a live lease on it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Granted {
    pub share: Amount,
    pub replicas: usize,
}

/// Where leases are kept: one shared store for every replica. `renew` grants each ask by
/// `lease::grant` against the other live leases, atomically per budget, records the grant
/// (raised to `holding`) until `ttl` from now, and drops this replica's leases on `released`.
#[async_trait]
pub trait LeasePort: Send + Sync + 'static {
    async fn renew(
        &self,
        replica: &str,
        asks: &[Ask],
        released: &[String],
        ttl: Duration,
    ) -> Result<Vec<Granted>, String>;
}

/// A budget as its limiter spends it; the ledger resizes it.
pub(super) trait Leased: Send + Sync {
    fn total(&self) -> Amount;
    fn tally(&self) -> &Tally;
    /// What is held whatever the grant (slots in use).
    fn holding(&self) -> Amount;
    /// Whether the budget keeps an equal part of the rate (up to its wish) even when the
    /// others still hold more: for limits that refuse rather than queue (a key's rate), so a
    /// replica new to a key does not refuse its first calls while the others give back.
    fn equal_part_floor(&self) -> bool {
        false
    }
    /// Spends `share` from now on.
    fn resize(&self, share: Amount);
}

/// What a budget saw since the last renewal, counted on the hot path with atomics only.
#[derive(Default)]
pub(super) struct Tally {
    asked: AtomicU64,
    peak_slots: AtomicU32,
    starved_rate: AtomicBool,
    starved_slots: AtomicBool,
    in_flight: AtomicUsize,
    /// Milliseconds since the ledger started, of the last call.
    last_used: AtomicU64,
    /// The last grant, from which the next one takes effect (`lease::effective`).
    granted: Mutex<Amount>,
    /// Given back: a limiter that finds its budget retired starts a new one.
    retired: AtomicBool,
}

impl Tally {
    /// A new budget's tally, counted as used now so the next renewal does not take it for idle.
    pub(super) fn new(ledger: &Ledger, granted: Amount) -> Self {
        Self {
            granted: Mutex::new(granted),
            last_used: AtomicU64::new(ledger.millis()),
            ..Self::default()
        }
    }

    pub(super) fn asked(&self, ledger: &Ledger) {
        self.asked.fetch_add(1, Ordering::Relaxed);
        self.last_used.store(ledger.millis(), Ordering::Relaxed);
    }

    pub(super) fn starved_rate(&self) {
        self.starved_rate.store(true, Ordering::Relaxed);
    }

    pub(super) fn starved_slots(&self) {
        self.starved_slots.store(true, Ordering::Relaxed);
    }

    /// A call started (`true`) or ended; the peak is what the next lease is sized from.
    pub(super) fn flight(&self, started: bool) {
        if started {
            let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.peak_slots
                .fetch_max(u32::try_from(now).unwrap_or(u32::MAX), Ordering::Relaxed);
        } else {
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub(super) fn retired(&self) -> bool {
        self.retired.load(Ordering::Relaxed)
    }

    fn take(&self, since_last: Duration) -> Demand {
        let asked = self.asked.swap(0, Ordering::Relaxed);
        let in_flight = u32::try_from(self.in_flight.load(Ordering::Relaxed)).unwrap_or(u32::MAX);
        Demand {
            // Over a renewal at least: an early renewal (a new budget) is too short a window to
            // say much, and a replica held back by its share says so by being starved.
            rate: asked as f64 / since_last.max(RENEW_EVERY).as_secs_f64(),
            peak_slots: self.peak_slots.swap(in_flight, Ordering::Relaxed),
            starved_rate: self.starved_rate.swap(false, Ordering::Relaxed),
            starved_slots: self.starved_slots.swap(false, Ordering::Relaxed),
        }
    }
}

/// This process's shared budgets, renewed together.
pub struct Ledger {
    replica: String,
    budgets: Mutex<HashMap<String, Arc<dyn Leased>>>,
    /// Live replicas at the last renewal, for the provisional share of a new budget.
    replicas: AtomicUsize,
    /// A new budget wants its lease now rather than at the next tick.
    wake: tokio::sync::Notify,
    started: Instant,
    last_renewal: Mutex<Instant>,
    /// When the last renewal that succeeded was sent; past `LEASE_TTL` the leases are lost.
    last_success: Mutex<Option<Instant>>,
    released: Mutex<Vec<String>>,
}

impl Ledger {
    pub fn new(replica: String) -> Arc<Self> {
        Arc::new(Self {
            replica,
            budgets: Mutex::new(HashMap::new()),
            replicas: AtomicUsize::new(1),
            wake: tokio::sync::Notify::new(),
            started: Instant::now(),
            last_renewal: Mutex::new(Instant::now()),
            last_success: Mutex::new(None),
            released: Mutex::new(Vec::new()),
        })
    }

    /// A replica id unique to this process: the host's name, the process id and a random tag.
    pub fn replica_id() -> String {
        let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "gateway".into());
        format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
    }

    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn millis(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The share a budget starts with before its first lease: an equal part among the live
    /// replicas (`lease::provisional`), spent for the moment its first renewal takes.
    pub(super) fn provisional(&self, total: Amount) -> Amount {
        lease::provisional(total, self.replicas.load(Ordering::Relaxed))
    }

    /// Registers a new budget and asks for its lease at once.
    pub(super) fn register(&self, name: String, budget: Arc<dyn Leased>) {
        self.budgets.lock().insert(name, budget);
        self.wake.notify_one();
    }

    /// Waits for the next renewal: the tick, or sooner for a new budget (never closer than a
    /// few milliseconds apart, so a stream of new keys does not hammer the database).
    pub async fn next(&self) {
        let since = self.last_renewal.lock().elapsed();
        let wait = RENEW_EVERY.saturating_sub(since);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = self.wake.notified() => {
                tokio::time::sleep(Duration::from_millis(20).saturating_sub(since)).await;
            }
        }
    }

    /// Renews every budget's lease once and resizes each budget to its grant.
    pub async fn renew(&self, port: &dyn LeasePort) {
        let sent = Instant::now();
        let since_last = std::mem::replace(&mut *self.last_renewal.lock(), sent).elapsed();
        let mut entries: Vec<(String, Arc<dyn Leased>)> = {
            let now = self.millis();
            let mut budgets = self.budgets.lock();
            let mut released = self.released.lock();
            budgets.retain(|name, budget| {
                let idle = now.saturating_sub(budget.tally().last_used.load(Ordering::Relaxed));
                let keep = idle < IDLE.as_millis() as u64
                    || budget.tally().in_flight.load(Ordering::Relaxed) > 0;
                if !keep {
                    budget.tally().retired.store(true, Ordering::Relaxed);
                    released.push(name.clone());
                }
                keep
            });
            budgets
                .iter()
                .map(|(name, budget)| (name.clone(), budget.clone()))
                .collect()
        };
        // Every replica locks budgets in the same order, so two renewals never deadlock.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let replicas = self.replicas.load(Ordering::Relaxed);
        let mut asks: Vec<Ask> = entries
            .iter()
            .map(|(name, budget)| {
                let total = budget.total();
                let want = lease::want(total, budget.tally().take(since_last));
                let mut holding = budget.holding();
                let newcomer = if budget.equal_part_floor() {
                    holding.rate = holding.rate.max(lease::equal_part(total, want, replicas));
                    Amount::default()
                } else {
                    lease::newcomer(total, replicas)
                };
                Ask {
                    budget: name.clone(),
                    total,
                    want,
                    holding,
                    newcomer,
                    live: replicas,
                }
            })
            .collect();
        asks.push(Ask {
            budget: REPLICAS.into(),
            total: Amount::default(),
            want: Amount::default(),
            holding: Amount::default(),
            newcomer: Amount::default(),
            live: replicas,
        });
        let released = std::mem::take(&mut *self.released.lock());
        match port.renew(&self.replica, &asks, &released, LEASE_TTL).await {
            Ok(grants) => {
                *self.last_success.lock() = Some(sent);
                if let Some(heartbeat) = grants.last() {
                    self.replicas
                        .store(heartbeat.replicas.max(1), Ordering::Relaxed);
                }
                for ((ask, (_, budget)), granted) in asks.iter().zip(&entries).zip(&grants) {
                    let mut share = granted.share;
                    share.rate = share.rate.max(ask.holding.rate);
                    apply(budget.as_ref(), share);
                }
            }
            Err(e) => {
                self.released.lock().extend(released);
                let lost = self
                    .last_success
                    .lock()
                    .is_none_or(|at| sent.duration_since(at) >= LEASE_TTL);
                tracing::warn!(error = %e, "cannot renew the budget leases; will retry");
                if lost {
                    // The leases have lapsed and the others may take them: without the
                    // database, fall back to an equal part per replica last seen, which
                    // is what each of them falls back to too.
                    for (_, budget) in &entries {
                        apply(budget.as_ref(), self.provisional(budget.total()));
                    }
                }
            }
        }
    }
}

impl Ledger {
    /// Gives every lease back at once (a clean shutdown), so the other replicas need not wait
    /// for them to expire.
    pub async fn release(&self, port: &dyn LeasePort) {
        let mut released: Vec<String> = self.budgets.lock().keys().cloned().collect();
        released.push(REPLICAS.into());
        if let Err(e) = port.renew(&self.replica, &[], &released, LEASE_TTL).await {
            tracing::warn!(error = %e, "cannot give the budget leases back; they expire on their own");
        }
    }
}

fn apply(budget: &dyn Leased, granted: Amount) {
    let share = {
        let mut last = budget.tally().granted.lock();
        let share = lease::effective(*last, granted);
        *last = granted;
        share
    };
    budget.resize(share);
}

/// Calls per second below which a shared bucket counts as empty: a bucket needs a rate above
/// zero to say how long until its next token.
pub(super) const TRICKLE: f64 = 1e-3;

/// The part of a budget's burst that goes with a share of its rate.
pub(super) fn burst_of(total_rate: f64, total_burst: f64, share_rate: f64) -> f64 {
    if total_rate <= 0.0 {
        return total_burst;
    }
    total_burst * (share_rate / total_rate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{AccountLimits, AccountShaper, OwnBudget};

    /// The store's part, in memory: live leases per budget, granted by `lease::grant`.
    #[derive(Default)]
    struct MemoryLeases(Mutex<HashMap<(String, String), (Amount, Amount)>>);

    #[async_trait]
    impl LeasePort for MemoryLeases {
        async fn renew(
            &self,
            replica: &str,
            asks: &[Ask],
            released: &[String],
            ttl: Duration,
        ) -> Result<Vec<Granted>, String> {
            let mut rows = self.0.lock();
            for budget in released {
                rows.remove(&(budget.clone(), replica.to_owned()));
            }
            let mut grants = Vec::new();
            for ask in asks {
                let others: Vec<(String, Amount, Amount)> = rows
                    .iter()
                    .filter(|((b, r), _)| *b == ask.budget && r != replica)
                    .map(|((_, r), (want, held))| (r.clone(), *want, *held))
                    .collect();
                let peers: Vec<lease::Peer<'_>> = others
                    .iter()
                    .map(|(r, want, held)| lease::Peer {
                        replica: r,
                        want: *want,
                        held: *held,
                    })
                    .collect();
                let share = ask.grant(replica, &peers, crate::kernel::clock::now_millis(), ttl);
                rows.insert((ask.budget.clone(), replica.to_owned()), (ask.want, share));
                grants.push(Granted {
                    share,
                    replicas: others.len() + 1,
                });
            }
            Ok(grants)
        }
    }

    fn limits() -> AccountLimits {
        AccountLimits {
            max_concurrency: 8,
            rate: 20.0,
            burst: 1.0,
            queue_timeout: Duration::ZERO,
            max_queue: 64,
        }
    }

    fn held(port: &MemoryLeases, replica: &str) -> Amount {
        port.0.lock()[&("account:acc".to_owned(), replica.to_owned())].1
    }

    #[tokio::test]
    async fn a_busy_replica_takes_most_of_a_budget_and_the_two_never_exceed_it() {
        let port = MemoryLeases::default();
        let (a, b) = (Ledger::new("a".into()), Ledger::new("b".into()));
        let busy = AccountShaper::shared(limits(), a.clone());
        let idle = AccountShaper::shared(limits(), b.clone());
        for round in 0..6 {
            // A renewal's time apart, so the idle replica's share has a token for its call.
            tokio::time::sleep(RENEW_EVERY).await;
            // `a` asks far beyond its share (refused at once: no queueing), `b` once.
            for _ in 0..50 {
                drop(busy.turn("acc", OwnBudget::default()).await);
            }
            drop(idle.turn("acc", OwnBudget::default()).await);
            a.renew(&port).await;
            b.renew(&port).await;
            let (ha, hb) = (held(&port, "a"), held(&port, "b"));
            assert!(
                ha.rate + hb.rate <= 20.0 + 1e-9,
                "round {round}: {ha:?} {hb:?}"
            );
            assert!(ha.slots + hb.slots <= 8, "round {round}: {ha:?} {hb:?}");
        }
        let (ha, hb) = (held(&port, "a"), held(&port, "b"));
        // `b` asks for its call every renewal with headroom (about 6/s); `a` gets the rest.
        assert!(
            ha.rate >= 13.0,
            "the busy replica holds {ha:?}, the idle one {hb:?}"
        );
        assert_eq!(
            a.replicas.load(Ordering::Relaxed),
            2,
            "the heartbeat counts both"
        );
    }

    #[tokio::test]
    async fn a_new_budget_starts_with_an_equal_part_and_an_idle_one_is_given_back() {
        let port = MemoryLeases::default();
        // A ledger that started a while ago, so a budget can have been idle for `IDLE`.
        let ledger = Arc::new(Ledger {
            started: Instant::now() - 2 * IDLE,
            ..Arc::into_inner(Ledger::new("a".into())).expect("sole owner")
        });
        ledger.replicas.store(4, Ordering::Relaxed);
        let shaper = AccountShaper::shared(limits(), ledger.clone());
        let first = shaper.turn("acc", OwnBudget::default()).await;
        assert!(first.is_ok(), "{:?}", first.err());
        drop(first);
        let budget = ledger.budgets.lock()["account:acc"].clone();
        assert_eq!(
            *budget.tally().granted.lock(),
            Amount {
                rate: 5.0,
                slots: 2
            },
            "an equal part among the four replicas last seen"
        );
        ledger.renew(&port).await;
        assert!(
            port.0
                .lock()
                .contains_key(&("account:acc".into(), "a".into()))
        );

        budget.tally().last_used.store(0, Ordering::Relaxed);
        ledger.renew(&port).await;
        assert!(budget.tally().retired(), "idle: given back");
        assert!(
            !port
                .0
                .lock()
                .contains_key(&("account:acc".into(), "a".into())),
            "its lease is released"
        );
        // The next call starts a new budget.
        assert!(shaper.turn("acc", OwnBudget::default()).await.is_ok());
        assert!(!ledger.budgets.lock()["account:acc"].tally().retired());
    }
}
