//! The rate-limit fields of draft-ietf-httpapi-ratelimit-headers on every authenticated
//! answer: `RateLimit-Policy` (the limit) and `RateLimit` (what is left, and when it resets).
//!
//! They describe the key's quota when it has one (policy `"quota"`), else its per-key rate
//! (policy `"rate"`). Each value is one short string, formatted without any parsing.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{KeyLimiter, QuotaBook};
use crate::store::Quota;

pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// Adds the fields for a key to an answer's headers.
pub fn add(
    headers: &mut HeaderMap,
    quotas: &QuotaBook,
    rates: &KeyLimiter,
    key_id: &str,
    quota: Option<Quota>,
) {
    let (policy, current) = match quota {
        Some(quota) => match quotas.view(key_id, quota) {
            Some(view) => (
                policy("quota", view.limit, view.window),
                Some(state("quota", view.remaining, view.reset)),
            ),
            // Nothing claimed here yet this period: the limit is known, what is left is not.
            None => {
                let now = crate::kernel::clock::now();
                let window = quota.period.end(now) - quota.period.start(now);
                (policy("quota", quota.limit, window), None)
            }
        },
        None => match rates.view(key_id) {
            Some(view) => (
                policy("rate", view.burst, view.window),
                Some(state("rate", view.remaining, view.reset)),
            ),
            None => return,
        },
    };
    if let Ok(value) = HeaderValue::try_from(policy) {
        headers.insert(RATELIMIT_POLICY.clone(), value);
    }
    if let Some(Ok(value)) = current.map(HeaderValue::try_from) {
        headers.insert(RATELIMIT.clone(), value);
    }
}

fn policy(name: &str, quota: i64, window: i64) -> String {
    format!("\"{name}\";q={quota};w={window}")
}

fn state(name: &str, remaining: i64, reset: i64) -> String {
    format!("\"{name}\";r={remaining};t={reset}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fields_follow_the_draft_syntax() {
        let rates = KeyLimiter::new(10.0, 20.0);
        assert!(rates.check("k").is_ok());
        let mut headers = HeaderMap::new();
        let store = crate::store::connect("sqlite::memory:")
            .await
            .expect("store");
        let store_less = QuotaBook::new(store);
        add(&mut headers, &store_less, &rates, "k", None);
        assert_eq!(headers[&RATELIMIT_POLICY], "\"rate\";q=20;w=2");
        assert_eq!(headers[&RATELIMIT], "\"rate\";r=19;t=1");
        let quota = Quota {
            limit: 500,
            period: crate::store::QuotaPeriod::Day,
        };
        add(&mut headers, &store_less, &rates, "k", Some(quota));
        assert_eq!(headers[&RATELIMIT_POLICY], "\"quota\";q=500;w=86400");
        let mut headers = HeaderMap::new();
        add(
            &mut headers,
            &store_less,
            &KeyLimiter::new(0.0, 0.0),
            "k",
            None,
        );
        assert!(headers.is_empty(), "no limit, no fields");
    }
}
