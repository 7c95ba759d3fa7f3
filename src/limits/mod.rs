//! Rate limits and quotas, each its own limiter: per gateway key, per client's failed
//! authentications, per Crisp account (the shaper that spends Crisp's budget), and each key's
//! quota. The key and account budgets are kept in this process, or shared with other replicas
//! through leases (`shared`); quotas are shared through the database.

mod account;
mod failures;
pub mod headers;
mod key;
pub mod lease;
pub mod quota;
mod shared;

pub use account::{AccountLimits, AccountShaper, Busy, OwnBudget, Turn};
pub use failures::FailureLimiter;
pub use key::{KeyLimiter, RateView};
pub use quota::{QuotaBook, QuotaError, QuotaView};
pub use shared::{Ask, Granted, LEASE_TTL, LeasePort, Ledger, RENEW_EVERY, REPLICAS};
