//! Small kernels every layer may use: time, text helpers, the token bucket, bytes kept in
//! pieces, the request-id header name, a cheap tower layer, one timer per call, handing
//! freed memory back and a map whose entries expire. They import nothing else from the crate.

pub mod bucket;
pub mod chunks;
pub mod clock;
pub mod deadline;
pub mod layer;
pub mod memory;
pub mod request_id;
pub mod text;
pub mod ttl_cache;
