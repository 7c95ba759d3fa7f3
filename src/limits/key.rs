//! Per-key request rates: one token bucket per gateway key.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::lease::Amount;
use super::shared::{Leased, Ledger, TRICKLE, Tally, burst_of};
use crate::kernel::bucket::TokenBucket;

/// Per-key request rates (`key_rate_limit` per second, `key_burst`); 0 disables.
pub struct KeyLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    /// Set when the rates are shared with other replicas through leases.
    shared: Option<(Arc<Ledger>, SharedKeys)>,
}

/// The keys whose rates are shared, by key id.
type SharedKeys = Mutex<HashMap<String, Arc<SharedKey>>>;

/// A key's rate shared across replicas: the share of it this process may spend.
struct SharedKey {
    total: Amount,
    burst: f64,
    bucket: Mutex<TokenBucket>,
    tally: Tally,
}

impl Leased for SharedKey {
    fn total(&self) -> Amount {
        self.total
    }

    fn tally(&self) -> &Tally {
        &self.tally
    }

    fn holding(&self) -> Amount {
        Amount::default()
    }

    fn equal_part_floor(&self) -> bool {
        true
    }

    fn resize(&self, share: Amount) {
        self.bucket.lock().set_rate(
            Instant::now(),
            share.rate.max(TRICKLE),
            burst_of(self.total.rate, self.burst, share.rate),
        );
    }
}

impl KeyLimiter {
    pub fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Rates shared with every replica that renews its leases through the same store.
    pub fn shared(rate: f64, burst: f64, ledger: Arc<Ledger>) -> Self {
        Self {
            shared: Some((ledger, Mutex::new(HashMap::new()))),
            ..Self::new(rate, burst)
        }
    }

    /// `Err(retry_after)` when the key is over its rate.
    pub fn check(&self, key_id: &str) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        if let Some((ledger, keys)) = &self.shared {
            return self.check_shared(ledger, keys, key_id);
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

    fn check_shared(
        &self,
        ledger: &Arc<Ledger>,
        keys: &SharedKeys,
        key_id: &str,
    ) -> Result<(), Duration> {
        let key = {
            let mut keys = keys.lock();
            match keys.get(key_id) {
                Some(key) if !key.tally.retired() => key.clone(),
                // New, or given back while idle (the ledger forgets it, so this map does too).
                _ => {
                    let total = Amount {
                        rate: self.rate,
                        slots: 0,
                    };
                    let share = ledger.provisional(total);
                    let key = Arc::new(SharedKey {
                        total,
                        burst: self.burst,
                        bucket: Mutex::new(TokenBucket::new(
                            share.rate.max(TRICKLE),
                            burst_of(total.rate, self.burst, share.rate),
                        )),
                        tally: Tally::new(ledger, share),
                    });
                    keys.retain(|_, k| !k.tally.retired());
                    keys.insert(key_id.to_owned(), key.clone());
                    ledger.register(format!("key:{key_id}"), key.clone());
                    key
                }
            }
        };
        key.tally.asked(ledger);
        key.bucket.lock().try_take(Instant::now()).map_err(|wait| {
            key.tally.starved_rate();
            // A share near zero grows at the next renewal, not when its trickle refills: say
            // the wait at the key's whole rate at most.
            wait.min(Duration::from_secs_f64(1.0 / self.rate))
        })
    }

    /// The key's bucket as it stands, for the rate-limit headers; `None` when disabled. With
    /// shared rates, what remains is what this replica may still admit of its share.
    pub fn view(&self, key_id: &str) -> Option<RateView> {
        if self.rate <= 0.0 {
            return None;
        }
        let burst = self.burst.max(1.0);
        let now = Instant::now();
        let tokens = match &self.shared {
            Some((_, keys)) => keys
                .lock()
                .get(key_id)
                .map(|key| key.bucket.lock().tokens_at(now)),
            None => self
                .buckets
                .lock()
                .get_mut(key_id)
                .map(|bucket| bucket.tokens_at(now)),
        }
        .map_or(burst, |tokens| tokens.min(burst));
        Some(RateView {
            burst: burst as i64,
            window: (burst / self.rate).ceil().max(1.0) as i64,
            remaining: tokens.floor().max(0.0) as i64,
            reset: ((burst - tokens) / self.rate).ceil().max(0.0) as i64,
        })
    }
}

/// A key's rate limit as `RateLimit-Policy`/`RateLimit` describe it: `burst` calls per
/// `window` seconds, `remaining` now, full again in `reset` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateView {
    pub burst: i64,
    pub window: i64,
    pub remaining: i64,
    pub reset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_limiter_limits_per_key() {
        let limiter = KeyLimiter::new(1.0, 2.0);
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_err());
        assert!(limiter.check("b").is_ok(), "keys do not share a bucket");
        assert!(KeyLimiter::new(0.0, 0.0).check("a").is_ok(), "0 disables");
    }
}
