//! Rate limits and quotas, each its own limiter: per gateway key, per client's failed
//! authentications, per Crisp account (the shaper that spends Crisp's budget), and each key's
//! quota, shared by the replicas through the database.

mod account;
mod failures;
pub mod headers;
mod key;
pub mod quota;

pub use account::{AccountLimits, AccountShaper, Busy, Turn};
pub use failures::FailureLimiter;
pub use key::{KeyLimiter, RateView};
pub use quota::{QuotaBook, QuotaError, QuotaView};
