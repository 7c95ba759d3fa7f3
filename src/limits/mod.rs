//! Local rate limits, each its own limiter: per gateway key, per client's failed
//! authentications, and per Crisp account (the shaper that spends Crisp's budget).

mod account;
mod failures;
mod key;

pub use account::{AccountLimits, AccountShaper, Busy, Turn};
pub use failures::FailureLimiter;
pub use key::KeyLimiter;
