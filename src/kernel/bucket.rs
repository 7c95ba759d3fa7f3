//! A token bucket that can reserve: the one rate primitive under every limiter and log gate.

use std::time::{Duration, Instant};

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

    /// Changes the rate and burst from `now` on: the tokens earned at the old rate are kept
    /// (up to the new burst), and so is any debt of calls already lined up.
    pub fn set_rate(&mut self, now: Instant, rate_per_second: f64, burst: f64) {
        self.refill(now);
        self.rate = rate_per_second;
        self.burst = burst.max(1.0);
        self.tokens = self.tokens.min(self.burst);
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// The tokens there at `now`, after refilling.
    pub fn tokens_at(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
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
    fn a_new_rate_keeps_the_debt_of_calls_lined_up() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 1.0);
        assert_eq!(bucket.reserve(start, Duration::ZERO), Ok(Duration::ZERO));
        assert!(bucket.reserve(start, Duration::from_secs(1)).is_ok());
        bucket.set_rate(start, 5.0, 1.0);
        let wait = bucket
            .reserve(start, Duration::from_secs(1))
            .expect("reserved");
        assert!((wait.as_secs_f64() - 0.4).abs() < 1e-6, "{wait:?}");
    }
}
