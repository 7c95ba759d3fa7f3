//! Fault injection for testing clients: a rate limit (429 or 420 beyond it), added latency, and
//! a random share of 500s. Parsed from the `sandbox` command's flags.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use crate::kernel::clock::parse_duration;

use super::answer::Answer;

#[derive(Debug, Clone, Default)]
pub struct Faults {
    pub rate_limit: Option<RateLimit>,
    pub latency: Option<Latency>,
    /// The share of calls (0.0–1.0) answered with a 500.
    pub error_rate: f64,
}

/// `N/s` or `N/min`: at most `calls` per `per`, as a token bucket shared by all callers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub calls: u32,
    pub per: Duration,
    /// 429 (Too Many Requests) or 420 (Enhance Your Calm): Crisp documents both.
    pub status: u16,
}

/// `50ms..300ms` (uniform in the range) or `100ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub min: Duration,
    pub max: Duration,
}

pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (n, unit) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: write the rate limit as N/s or N/min, e.g. 10/s"))?;
    let calls: u32 = n
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("`{n}` is not a positive number of calls"))?;
    let per = match unit.trim() {
        "s" | "sec" => Duration::from_secs(1),
        "m" | "min" => Duration::from_secs(60),
        other => return Err(format!("`{other}`: the rate limit unit is `s` or `min`")),
    };
    Ok(RateLimit {
        calls,
        per,
        status: 429,
    })
}

pub fn parse_latency(text: &str) -> Result<Latency, String> {
    // Each end is an ordinary duration; only the range form belongs to the sandbox.
    let end = |part: &str| {
        parse_duration(part).map_err(|e| {
            format!(
                "{e}; a latency is one duration (100ms) or a range from low to high (50ms..300ms)"
            )
        })
    };
    let (min, max) = match text.split_once("..") {
        Some((a, b)) => (end(a)?, end(b)?),
        None => {
            let d = end(text)?;
            (d, d)
        }
    };
    if min > max {
        return Err(format!("`{text}`: the range must go from low to high"));
    }
    Ok(Latency { min, max })
}

pub fn parse_error_rate(text: &str) -> Result<f64, String> {
    text.trim()
        .parse::<f64>()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| format!("`{text}`: the error rate is a share between 0 and 1, e.g. 0.05"))
}

/// The running state of the faults: the rate limit's bucket.
#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    bucket: Mutex<(f64, Instant)>,
}

impl Injector {
    pub fn new(faults: Faults) -> Self {
        let full = faults.rate_limit.map_or(0.0, |r| f64::from(r.calls));
        Self {
            faults,
            bucket: Mutex::new((full, Instant::now())),
        }
    }

    /// The added delay for this call, if any.
    pub fn delay(&self) -> Option<Duration> {
        let Latency { min, max } = self.faults.latency?;
        let spread = u64::try_from((max - min).as_millis()).unwrap_or(0);
        let extra = if spread == 0 {
            0
        } else {
            random() % (spread + 1)
        };
        Some(min + Duration::from_millis(extra))
    }

    /// A fault to answer instead of the real answer, if this call draws one.
    pub fn fault(&self) -> Option<Answer> {
        if let Some(limit) = self.faults.rate_limit
            && !self.take(limit)
        {
            let status =
                StatusCode::from_u16(limit.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            return Some(Answer::error(
                status,
                "rate_limited",
                "too many requests, slow down",
            ));
        }
        let rate = self.faults.error_rate;
        // Compare in integers: `random()` is uniform over u64.
        let threshold = (rate * u64::MAX as f64) as u64;
        if rate > 0.0 && (rate >= 1.0 || random() < threshold) {
            return Some(Answer::error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the sandbox injected this error (--error-rate)",
            ));
        }
        None
    }

    fn take(&self, limit: RateLimit) -> bool {
        let capacity = f64::from(limit.calls);
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        let refill =
            now.duration_since(bucket.1).as_secs_f64() / limit.per.as_secs_f64() * capacity;
        bucket.0 = (bucket.0 + refill).min(capacity);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

fn random() -> u64 {
    u64::from_le_bytes(crate::secret::random_bytes::<8>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse() {
        assert_eq!(parse_rate_limit("10/s").map(|r| r.calls), Ok(10));
        assert_eq!(
            parse_rate_limit("3/min").map(|r| r.per),
            Ok(Duration::from_secs(60))
        );
        assert!(parse_rate_limit("0/s").is_err());
        assert!(parse_rate_limit("10").is_err());
        assert_eq!(
            parse_latency("50ms..300ms"),
            Ok(Latency {
                min: Duration::from_millis(50),
                max: Duration::from_millis(300)
            })
        );
        assert_eq!(
            parse_latency("1s").map(|l| l.max),
            Ok(Duration::from_secs(1))
        );
        assert!(parse_latency("300ms..50ms").is_err());
        assert!(parse_latency("50").is_err());
        assert_eq!(
            parse_latency("1 s..2s").map(|l| (l.min, l.max)),
            Ok((Duration::from_secs(1), Duration::from_secs(2)))
        );
        let missing_unit = parse_latency("50ms..300").expect_err("no unit");
        assert!(missing_unit.contains("`300`"), "{missing_unit}");
        assert!(missing_unit.contains("50ms..300ms"), "{missing_unit}");
        assert_eq!(parse_error_rate("0.05"), Ok(0.05));
        assert!(parse_error_rate("1.5").is_err());
    }

    #[test]
    fn the_bucket_refuses_beyond_the_limit() {
        let injector = Injector::new(Faults {
            rate_limit: Some(RateLimit {
                calls: 2,
                per: Duration::from_secs(3600),
                status: 420,
            }),
            ..Faults::default()
        });
        assert!(injector.fault().is_none());
        assert!(injector.fault().is_none());
        let refused = injector.fault().expect("third call is limited");
        assert_eq!(refused.status.as_u16(), 420);
    }
}
