//! Local rate shaping: token buckets per gateway key, and per Crisp account a ceiling on
//! concurrent upstream calls plus a call rate, with a short bounded queue before `429`.
//!
//! Crisp publishes no rate-limit headers and its daily quotas are per token, so the gateway
//! spends an account's budget deliberately instead of discovering the limit through errors.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A token bucket that can reserve: a caller takes a token now or learns how long until its
/// reserved token is due.
#[derive(Debug)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(rate_per_second: f64, burst: f64) -> Self {
        let burst = burst.max(1.0);
        Self {
            rate: rate_per_second,
            burst,
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Whether a token is there, without taking it; otherwise how long until one is.
    pub fn peek(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }

    /// Reserves a token due within `max_wait`: returns the wait, or `Err` with the time until a
    /// token would be free if that is longer than `max_wait` (nothing is reserved then).
    pub fn reserve(&mut self, now: Instant, max_wait: Duration) -> Result<Duration, Duration> {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            return Ok(Duration::ZERO);
        }
        let wait = Duration::from_secs_f64(-self.tokens / self.rate);
        if wait <= max_wait {
            Ok(wait)
        } else {
            self.tokens += 1.0;
            Err(wait)
        }
    }
}

/// Per-key request rates (`key_rate_limit` per second, `key_burst`); 0 disables.
pub struct KeyLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
}

impl KeyLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when the key is over its rate.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() > 100_000 {
            // Forget idle keys rather than grow without bound; a full bucket is the default.
            buckets.retain(|_, b| b.try_take(now).is_err());
        }
        buckets
            .entry(key_id.to_owned())
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .try_take(now)
    }
}

/// Failed authentications per client address (`auth_failure_rate` per second,
/// `auth_failure_burst`): each failure takes a token, and a client with none left is refused
/// before any costly check.
pub struct FailureLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<std::net::IpAddr, TokenBucket>>,
}

/// Addresses remembered at most; past it, those whose bucket has refilled are forgotten.
const FAILURE_CLIENTS: usize = 100_000;

impl FailureLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate: rate.max(f64::MIN_POSITIVE),
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while the client has no failures left.
    pub fn check(&self, client: std::net::IpAddr) -> Result<(), Duration> {
        match self.buckets.lock().get_mut(&client) {
            Some(bucket) => bucket.peek(Instant::now()),
            None => Ok(()),
        }
    }

    /// Counts one failure against the client.
    pub fn failed(&self, client: std::net::IpAddr) {
        let now = Instant::now();
        let mut buckets = self.buckets.lock();
        if buckets.len() >= FAILURE_CLIENTS && !buckets.contains_key(&client) {
            let burst = self.burst;
            buckets.retain(|_, b| {
                b.refill(now);
                b.tokens < burst
            });
            if buckets.len() >= FAILURE_CLIENTS {
                // Still full of clients failing right now: forget one rather than grow.
                if let Some(any) = buckets.keys().next().copied() {
                    buckets.remove(&any);
                }
            }
        }
        let _ = buckets
            .entry(client)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst))
            .try_take(now);
    }
}

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

    #[test]
    fn bucket_reserves_and_refuses_beyond_the_wait() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2.0);
        assert_eq!(bucket.reserve(start, Duration::ZERO), Ok(Duration::ZERO));
        assert_eq!(bucket.reserve(start, Duration::ZERO), Ok(Duration::ZERO));
        let wait = bucket
            .reserve(start, Duration::from_secs(1))
            .expect("reserved");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(
            bucket.reserve(start, Duration::from_millis(150)).is_err(),
            "the next is 200 ms away"
        );
        assert!(bucket.try_take(start + Duration::from_millis(300)).is_ok());
    }

    #[test]
    fn key_limiter_limits_per_key() {
        let limiter = KeyLimiter::new(1.0, 2.0);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok(), "keys do not share a bucket");
        assert!(KeyLimiter::new(0.0, 0.0).check("a").is_ok(), "0 disables");
    }

    #[test]
    fn failure_limiter_refuses_a_client_out_of_failures() {
        let a: std::net::IpAddr = [127, 0, 0, 2].into();
        let b: std::net::IpAddr = [127, 0, 0, 1].into();
        let limiter = FailureLimiter::new(0.001, 3.0);
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
            limiter.failed(a);
        }
        let wait = limiter.check(a).expect_err("out of failures");
        assert!(wait > Duration::from_secs(100), "{wait:?}");
        assert!(limiter.check(b).is_ok(), "clients do not share a bucket");
    }

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
