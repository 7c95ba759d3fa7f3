//! When a Crisp call is retried, and how long to wait: a small validated policy, with the
//! decision of what is safe to retry kept apart from the retry loop.

use std::time::Duration;

use super::{Reply, TransportError, UpstreamError};
use crate::catalog::Method;

/// Capped exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    base: Duration,
    cap: Duration,
    retry_after_cap: Duration,
}

impl RetryPolicy {
    pub fn new(
        max_attempts: u32,
        base: Duration,
        cap: Duration,
        retry_after_cap: Duration,
    ) -> Result<Self, String> {
        if !(1..=10).contains(&max_attempts) {
            return Err(format!(
                "retry_max_attempts must be 1 to 10, not {max_attempts}"
            ));
        }
        if base.is_zero() || cap < base {
            return Err("retry delays need 0 < retry_base_delay <= retry_max_delay".into());
        }
        Ok(Self {
            max_attempts,
            base,
            cap,
            retry_after_cap,
        })
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The wait before attempt `attempt + 1` (after `attempt` failures). A `Retry-After` from
    /// Crisp wins, within its cap; otherwise a random share of the exponential step.
    pub fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(after) = retry_after {
            return after.min(self.retry_after_cap);
        }
        let step = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.cap);
        let [a, b, c, d] = crate::secret::random_bytes::<4>();
        let fraction = f64::from(u32::from_le_bytes([a, b, c, d])) / f64::from(u32::MAX);
        // Never zero: a minimum spacing keeps a burst of retries from landing together.
        step.mul_f64(fraction).max(self.base / 2)
    }
}

/// How safe it is to send a call twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Safety {
    /// GET, HEAD, PUT, DELETE: repeating them changes nothing more.
    Idempotent,
    /// POST or PATCH whose caller sent an `Idempotency-Key`: the gateway answers repeats from
    /// its record, so it may retry the upstream call.
    Keyed,
    /// POST or PATCH without a key: sent exactly once.
    Once,
}

impl Safety {
    pub fn of(method: Method, has_idempotency_key: bool) -> Self {
        match method {
            Method::Get | Method::Head | Method::Put | Method::Delete => Self::Idempotent,
            Method::Post | Method::Patch if has_idempotency_key => Self::Keyed,
            Method::Post | Method::Patch => Self::Once,
        }
    }
}

/// Whether this outcome is worth another attempt: connect errors, timeouts, 5xx, 420 and 429.
/// A call sent at most once is tried again only when it never left: no connection took it.
/// A certificate refused, or a TLS handshake that picked the HTTP version the configuration
/// rules out (`upstream_http`; under `auto` the transport has already tried the other), is
/// Crisp's standing answer, not a passing failure: it is reported at once.
pub fn is_retryable(outcome: &Result<Reply, UpstreamError>, safety: Safety) -> bool {
    match outcome {
        Ok(_) => false,
        Err(UpstreamError::Unreachable(
            TransportError::Untrusted(_) | TransportError::OtherVersion(_),
        )) => false,
        Err(UpstreamError::Unreachable(TransportError::Connect(_))) => true,
        Err(_) if safety == Safety::Once => false,
        Err(e) => matches!(
            e,
            UpstreamError::Timeout
                | UpstreamError::Unreachable(_)
                | UpstreamError::ServerError { .. }
                | UpstreamError::RateLimited { .. }
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_is_validated() {
        let ms = Duration::from_millis;
        assert!(RetryPolicy::new(0, ms(100), ms(200), ms(1)).is_err());
        assert!(RetryPolicy::new(3, ms(0), ms(200), ms(1)).is_err());
        assert!(RetryPolicy::new(3, ms(300), ms(200), ms(1)).is_err());
        assert!(RetryPolicy::new(3, ms(100), ms(2000), ms(5000)).is_ok());
    }

    #[test]
    fn backoff_is_capped_jittered_and_honours_retry_after() {
        let ms = Duration::from_millis;
        let policy = RetryPolicy::new(5, ms(100), ms(400), ms(5000)).expect("valid");
        for attempt in 1..8 {
            let wait = policy.backoff(attempt, None);
            assert!(
                wait >= ms(50) && wait <= ms(400),
                "attempt {attempt}: {wait:?}"
            );
        }
        assert_eq!(policy.backoff(1, Some(ms(2000))), ms(2000));
        assert_eq!(
            policy.backoff(1, Some(Duration::from_secs(60))),
            ms(5000),
            "capped"
        );
    }

    #[test]
    fn only_safe_calls_are_retried() {
        let timeout: Result<Reply, UpstreamError> = Err(UpstreamError::Timeout);
        assert!(is_retryable(&timeout, Safety::of(Method::Get, false)));
        assert!(is_retryable(&timeout, Safety::of(Method::Delete, false)));
        assert!(is_retryable(&timeout, Safety::of(Method::Post, true)));
        assert!(!is_retryable(&timeout, Safety::of(Method::Post, false)));
        assert!(!is_retryable(&timeout, Safety::of(Method::Patch, false)));
        let rejected: Result<Reply, UpstreamError> = Err(UpstreamError::Rejected {
            status: 400,
            reason: "invalid_data".into(),
            message: String::new(),
        });
        assert!(!is_retryable(&rejected, Safety::Idempotent));
        let limited: Result<Reply, UpstreamError> = Err(UpstreamError::RateLimited {
            status: 420,
            retry_after: None,
        });
        assert!(is_retryable(&limited, Safety::Idempotent));
        assert!(!is_retryable(&limited, Safety::Once));
        // Never sent: a write without a key is as safe to try again as a read.
        let unsent: Result<Reply, UpstreamError> = Err(UpstreamError::Unreachable(
            TransportError::Connect("connection refused".into()),
        ));
        assert!(is_retryable(&unsent, Safety::Once));
        let broken: Result<Reply, UpstreamError> = Err(UpstreamError::Unreachable(
            TransportError::Broken("reset".into()),
        ));
        assert!(!is_retryable(&broken, Safety::Once));
        assert!(is_retryable(&broken, Safety::Idempotent));
        // The server's pick of version stands: trying again would only pick it again.
        let other_version: Result<Reply, UpstreamError> = Err(UpstreamError::Unreachable(
            TransportError::OtherVersion("picked HTTP/1.1 where HTTP/2 was wanted".into()),
        ));
        assert!(!is_retryable(&other_version, Safety::Idempotent));
        assert!(!is_retryable(&other_version, Safety::Once));
    }
}
