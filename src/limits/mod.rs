//! Rate limits, each its own limiter: per gateway key, per client's failed authentications,
//! and per Crisp account (the shaper that spends Crisp's budget). The key and account budgets
//! are kept in this process, or shared with other replicas through leases (`shared`).

mod account;
mod failures;
mod key;
pub mod lease;
mod shared;

pub use account::{AccountLimits, AccountShaper, Busy, OwnBudget, Turn};
pub use failures::FailureLimiter;
pub use key::KeyLimiter;
pub use shared::{Ask, Granted, LEASE_TTL, LeasePort, Ledger, RENEW_EVERY, REPLICAS};
