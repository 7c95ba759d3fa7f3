//! Per-key request rates: one token bucket per gateway key.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kernel::bucket::TokenBucket;

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

    /// The key's bucket as it stands, for the rate-limit headers; `None` when disabled.
    pub fn view(&self, key_id: &str) -> Option<RateView> {
        if self.rate <= 0.0 {
            return None;
        }
        let burst = self.burst.max(1.0);
        let tokens = self
            .buckets
            .lock()
            .get_mut(key_id)
            .map_or(burst, |b| b.tokens_at(Instant::now()));
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
