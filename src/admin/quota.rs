//! Key quotas as operators set and read them: `10000/day`, `50000/month`, and how much of the
//! current period a key has used.

use std::sync::Arc;

use serde::Serialize;

use crate::store::{ApiKeyRecord, KeyId, Quota, QuotaPeriod, Store, StoreError};

use super::KeyError;

/// The largest quota accepted: far beyond what Crisp allows a token in a month.
const MAX_QUOTA: i64 = 1_000_000_000_000;

/// Reads `10000/day` or `50000/month` (`--quota`).
pub fn parse_quota(text: &str) -> Result<Quota, String> {
    let bad = || {
        format!(
            "`{text}` is not a quota: give a whole number of calls per day or month, such as 10000/day or 50000/month"
        )
    };
    let (limit, period) = text.trim().split_once('/').ok_or_else(bad)?;
    let limit: i64 = limit.trim().parse().map_err(|_| bad())?;
    let period: QuotaPeriod = period.trim().parse().map_err(|_| bad())?;
    if !(1..=MAX_QUOTA).contains(&limit) {
        return Err(format!(
            "a quota is 1 to {MAX_QUOTA} calls per period, such as 10000/day; to lift a key's quota use `key update KEY_ID --no-quota`"
        ));
    }
    Ok(Quota { limit, period })
}

/// Sets (or with `None`, lifts) a key's quota; every running gateway applies it within about
/// a second. The calls already counted in the current period still count.
pub async fn set_quota(
    store: &Arc<dyn Store>,
    key_id: &KeyId,
    quota: Option<Quota>,
) -> Result<(), KeyError> {
    match store.set_key_quota(key_id, quota).await {
        Ok(()) => Ok(()),
        Err(StoreError::NotFound) => Err(KeyError::UnknownKey(key_id.to_string())),
        Err(e) => Err(e.into()),
    }
}

/// A key's quota and its current period, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct QuotaStatus {
    pub limit: i64,
    pub period: QuotaPeriod,
    /// Calls counted this period, including those a running replica has claimed and not yet
    /// spent (it gives them back when it stops).
    pub used: i64,
    pub remaining: i64,
    /// When the period ends and the count starts again (unix seconds).
    pub resets_at: i64,
}

/// The quota status of a key at `now`, if it has a quota.
pub async fn status(
    store: &Arc<dyn Store>,
    key: &ApiKeyRecord,
    now: i64,
) -> Result<Option<QuotaStatus>, StoreError> {
    let Some(quota) = key.quota() else {
        return Ok(None);
    };
    let used = store
        .quota_used(&key.api_key_id, quota.period.start(now))
        .await?;
    Ok(Some(QuotaStatus {
        limit: quota.limit,
        period: quota.period,
        used,
        remaining: (quota.limit - used).max(0),
        resets_at: quota.period.end(now),
    }))
}

/// `10000/day`, as `--quota` takes it.
pub fn describe(quota: Quota) -> String {
    format!("{}/{}", quota.limit, quota.period)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_read_as_calls_per_period() {
        assert_eq!(
            parse_quota("10000/day"),
            Ok(Quota {
                limit: 10_000,
                period: QuotaPeriod::Day
            })
        );
        assert_eq!(
            parse_quota(" 5 / month ").map(describe),
            Ok("5/month".to_owned())
        );
        for bad in ["10000", "10000/week", "ten/day", "-1/day", "/day"] {
            let err = parse_quota(bad).expect_err(bad);
            assert!(err.contains("10000/day"), "{bad}: {err}");
        }
        assert!(
            parse_quota("0/day")
                .expect_err("zero")
                .contains("--no-quota")
        );
    }
}
