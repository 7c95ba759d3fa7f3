//! The request-id header: set at the edge, sent to Crisp and logged, so every layer names it
//! from here.

use http::HeaderName;

/// The header that carries a request's id in and out, and on to Crisp.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
