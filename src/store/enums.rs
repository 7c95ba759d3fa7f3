//! The closed sets of values the store keeps in text columns: a Crisp tier, a change's kind and
//! an idempotency record's state, each an enum that reads and writes the same words on both engines.
//!
//! They encode as plain `text` (not a named Postgres type), so the columns and the migrations stay
//! as they are; a word the enum does not know fails to decode rather than passing as a string.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

/// The `X-Crisp-Tier` a token is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Tokens made in Crisp's workspace settings (Settings → Advanced configuration).
    Website,
    /// Marketplace plugin tokens.
    Plugin,
    /// An operator's own session keypair.
    User,
}

impl Tier {
    /// Every tier, in the order the documentation lists them.
    pub const ALL: [Tier; 3] = [Tier::User, Tier::Website, Tier::Plugin];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Website => "website",
            Self::Plugin => "plugin",
            Self::User => "user",
        }
    }
}

impl FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "website" => Ok(Self::Website),
            "plugin" => Ok(Self::Plugin),
            "user" => Ok(Self::User),
            other => Err(format!(
                "`{other}` is not a Crisp tier: use website, plugin or user"
            )),
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a change-log row invalidates, and so what its `subject_id` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A key was revoked or rotated; the subject is its key id.
    Key,
    /// A workspace's accounts changed; the subject is the workspace id.
    Accounts,
    /// An admin token was revoked; the subject is its id.
    AdminToken,
}

impl ChangeKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Key => "key",
            Self::Accounts => "accounts",
            Self::AdminToken => "admin_token",
        }
    }
}

impl FromStr for ChangeKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "key" => Ok(Self::Key),
            "accounts" => Ok(Self::Accounts),
            "admin_token" => Ok(Self::AdminToken),
            other => Err(format!(
                "`{other}` is not a change kind: key, accounts or admin_token"
            )),
        }
    }
}

/// An idempotency record's state: `Pending` from just before the call leaves until it settles,
/// `Done` once its answer is stored, `Unknown` when it left but no answer came back.
///
/// What a record means now also depends on its lease: see [`IdempotencyState::at`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyState {
    Pending,
    Unknown,
    Done,
}

impl IdempotencyState {
    /// What a record stored in this state with this lease means at `now`: a `Pending` claim
    /// whose lease has passed belongs to a process that died mid-call, so its outcome is as
    /// unknown as a timed-out one's.
    pub fn at(self, lease_until: i64, now: i64) -> Self {
        match self {
            Self::Done => Self::Done,
            Self::Pending if now <= lease_until => Self::Pending,
            Self::Pending | Self::Unknown => Self::Unknown,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Unknown => "unknown",
            Self::Done => "done",
        }
    }
}

impl FromStr for IdempotencyState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "unknown" => Ok(Self::Unknown),
            "done" => Ok(Self::Done),
            other => Err(format!(
                "`{other}` is not an idempotency state: pending, unknown or done"
            )),
        }
    }
}

impl fmt::Display for IdempotencyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The period a key's quota counts over; each starts at a UTC midnight (of the month's first
/// day, for `Month`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuotaPeriod {
    Day,
    Month,
}

impl QuotaPeriod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Month => "month",
        }
    }

    /// The unix time the period holding `at` starts.
    pub fn start(self, at: i64) -> i64 {
        let day = at.div_euclid(86_400) * 86_400;
        match self {
            Self::Day => day,
            Self::Month => {
                let date = time::OffsetDateTime::from_unix_timestamp(day)
                    .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                day - 86_400 * i64::from(date.day() - 1)
            }
        }
    }

    /// The unix time the period holding `at` ends (the next one's start).
    pub fn end(self, at: i64) -> i64 {
        let start = self.start(at);
        match self {
            Self::Day => start + 86_400,
            // The 28th day after the 1st is still in the month; the start of the day 4 days on
            // is in the next one, whose start is then found as any other.
            Self::Month => self.start(start + 32 * 86_400),
        }
    }
}

impl FromStr for QuotaPeriod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Self::Day),
            "month" => Ok(Self::Month),
            other => Err(format!("`{other}` is not a quota period: day or month")),
        }
    }
}

impl fmt::Display for QuotaPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// Each enum is a `str` to the database: the same type info, encoded from `as_str`, decoded
// through `FromStr`. A blanket impl of sqlx's traits is not allowed, so a macro writes the
// three impls for each enum.
macro_rules! stored_as_text {
    ($($name:ty),+) => {$(
        impl<DB: Database> Type<DB> for $name
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $name
        where
            &'q str: Encode<'q, DB>,
        {
            fn encode_by_ref(&self, buf: &mut DB::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&'q str as Encode<'q, DB>>::encode(self.as_str(), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $name
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: DB::ValueRef<'r>) -> Result<Self, BoxDynError> {
                Ok(<&'r str as Decode<'r, DB>>::decode(value)?.parse()?)
            }
        }
    )+};
}

stored_as_text!(Tier, ChangeKind, IdempotencyState, QuotaPeriod);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_reads_back_as_itself() {
        for tier in [Tier::Website, Tier::Plugin, Tier::User] {
            assert_eq!(tier.as_str().parse::<Tier>(), Ok(tier));
        }
        for kind in [ChangeKind::Key, ChangeKind::Accounts] {
            assert_eq!(kind.as_str().parse::<ChangeKind>(), Ok(kind));
        }
        for state in [
            IdempotencyState::Pending,
            IdempotencyState::Unknown,
            IdempotencyState::Done,
        ] {
            assert_eq!(state.as_str().parse::<IdempotencyState>(), Ok(state));
        }
        assert!("lost".parse::<IdempotencyState>().is_err());
        for period in [QuotaPeriod::Day, QuotaPeriod::Month] {
            assert_eq!(period.as_str().parse::<QuotaPeriod>(), Ok(period));
        }
    }

    #[test]
    fn quota_periods_start_and_end_at_utc_midnights() {
        let at = |t: &str| crate::kernel::clock::parse_rfc3339(t).expect("time");
        let day = QuotaPeriod::Day;
        assert_eq!(
            day.start(at("2026-12-02T07:20:00Z")),
            at("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            day.end(at("2026-12-02T07:20:00Z")),
            at("2026-12-03T00:00:00Z")
        );
        assert_eq!(
            day.start(at("2026-12-02T00:00:00Z")),
            at("2026-12-02T00:00:00Z")
        );
        assert_eq!(
            day.start(at("2026-12-01T23:59:59Z")),
            at("2026-12-01T00:00:00Z")
        );
        let month = QuotaPeriod::Month;
        assert_eq!(
            month.start(at("2026-12-02T07:20:00Z")),
            at("2026-12-01T00:00:00Z")
        );
        assert_eq!(
            month.end(at("2026-12-31T23:59:59Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            month.end(at("2026-12-01T00:00:00Z")),
            at("2027-01-01T00:00:00Z")
        );
        assert_eq!(
            month.start(at("2028-02-29T12:00:00Z")),
            at("2028-02-01T00:00:00Z")
        );
        assert_eq!(
            month.end(at("2028-02-29T12:00:00Z")),
            at("2028-03-01T00:00:00Z")
        );
        assert_eq!(
            month.end(at("2027-02-01T00:00:00Z")),
            at("2027-03-01T00:00:00Z")
        );
    }
}
