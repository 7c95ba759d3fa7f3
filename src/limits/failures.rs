//! Failed authentications per client address, so a client out of failures is refused early.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::kernel::bucket::TokenBucket;

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
            buckets.retain(|_, b| b.tokens_at(now) < burst);
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
