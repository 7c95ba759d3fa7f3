//! What the edge learns of a request first: its id header (sent to Crisp and logged, so every
//! layer names it from here) and the time it arrived.

use http::HeaderName;

/// The header that carries a request's id in and out, and on to Crisp.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// When the request arrived, put in its extensions by the outermost layer: deadlines run from
/// here.
#[derive(Debug, Clone, Copy)]
pub struct Started(pub std::time::Instant);
