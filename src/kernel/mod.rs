//! Small kernels every layer may use: time, text helpers, the token bucket and the request-id
//! header name. They import nothing else from the crate.

pub mod bucket;
pub mod clock;
pub mod request_id;
pub mod text;
