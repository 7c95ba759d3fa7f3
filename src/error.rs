//! The one error type of the HTTP API and the JSON error envelope it becomes.
//!
//! Handlers return `Result<_, ApiError>` and use `?`. `IntoResponse` only stores the error in
//! the response; `http::envelope` renders it once, with the request id and the tool name, and
//! logs the cause of 5xx errors there (so every error is logged exactly once).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// 429: this client failed to authenticate too often (`ApiError::AuthThrottled`).
pub const TOO_MANY_FAILED_ATTEMPTS: &str = "too_many_failed_attempts";
/// 429: too many verifications of one key are waiting (`ApiError::AuthThrottled`).
pub const KEY_VERIFICATION_BUSY: &str = "key_verification_busy";

/// A Crisp call that failed, in the terms the caller sees. The forwarder builds it from its own
/// error, which stays the cause for the log.
#[derive(Debug)]
pub struct UpstreamFailure {
    pub status: StatusCode,
    pub reason: String,
    pub message: String,
    pub retry_after: Option<Duration>,
    /// No answer to this attempt, or one that says nothing of an earlier attempt's fate: a
    /// write's outcome is then unknown.
    pub unanswered: bool,
    pub cause: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for UpstreamFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cause.fmt(f)
    }
}

impl std::error::Error for UpstreamFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.source()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed, unknown, revoked and expired keys look the same to the caller.
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{message}")]
    BadRequest {
        reason: &'static str,
        message: String,
    },
    /// A valid key calling outside its scope.
    #[error("{message}")]
    Forbidden {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    NotFound {
        reason: &'static str,
        message: String,
    },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// The calling key is over its own rate limit.
    #[error("the key is over its rate limit")]
    RateLimited { retry_after: Duration },
    /// Too many failed authentications from this client, or too many verifications of one
    /// key at once: refused before any key lookup or argon2 run.
    #[error("authentication throttled ({reason})")]
    AuthThrottled {
        reason: &'static str,
        retry_after: Duration,
    },
    /// Too many requests in flight in this process.
    #[error("the gateway is at capacity")]
    Overloaded,
    #[error("{message}")]
    Conflict {
        reason: &'static str,
        message: String,
    },
    /// A repeat of an idempotent write whose first request has no answer to give yet (still
    /// running) or ever (its outcome is unknown); `Retry-After` says when to come back.
    #[error("{message}")]
    IdempotencyConflict {
        reason: &'static str,
        message: String,
        retry_after: Duration,
    },
    #[error("{message}")]
    Unprocessable {
        reason: &'static str,
        message: String,
    },
    #[error("the request body is larger than the {limit}-byte limit")]
    PayloadTooLarge { limit: usize },
    #[error("the request took longer than the gateway's deadline")]
    Timeout,
    /// A failed Crisp call (built by `forward` from its own error).
    #[error(transparent)]
    Upstream(Box<UpstreamFailure>),
    #[error("the gateway's database is unavailable")]
    StoreUnavailable(#[source] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn bad_request(reason: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            reason,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::AuthThrottled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict { .. } | Self::IdempotencyConflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(e) => e.status,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::BadRequest { reason, .. }
            | Self::Forbidden { reason, .. }
            | Self::NotFound { reason, .. } => reason,
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::AuthThrottled { reason, .. } => reason,
            Self::Overloaded => "overloaded",
            Self::Conflict { reason, .. }
            | Self::IdempotencyConflict { reason, .. }
            | Self::Unprocessable { reason, .. } => reason,
            Self::Timeout => "gateway_timeout",
            Self::Upstream(e) => &e.reason,
            Self::StoreUnavailable(_) => "store_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    /// What the caller reads: what went wrong and what to do. Never internals: 5xx causes are
    /// logged, not sent.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthorized => "Missing or invalid API key. Send `Authorization: Bearer sk_live_…` \
                with a key made by `crisp-gateway key create`; revoked and expired keys are refused."
                .into(),
            Self::PayloadTooLarge { limit } => format!(
                "The request body is larger than the gateway's limit of {limit} bytes; send less data per call."
            ),
            Self::Timeout => "The call took longer than the gateway's request deadline; try again, \
                or narrow the request."
                .into(),
            Self::Upstream(e) => e.message.clone(),
            Self::RateLimited { .. } => "This key is over its request rate; wait for the Retry-After delay, then retry.".into(),
            Self::AuthThrottled { reason, .. } if *reason == TOO_MANY_FAILED_ATTEMPTS => "Too many failed \
                authentications from this address; wait for the Retry-After delay, then retry with a valid key."
                .into(),
            Self::AuthThrottled { .. } => "Too many verifications of this key are waiting at once; retry \
                after the Retry-After delay."
                .into(),
            Self::Overloaded => "The gateway is at capacity; retry after the Retry-After delay.".into(),
            Self::Conflict { message, .. }
            | Self::IdempotencyConflict { message, .. }
            | Self::Unprocessable { message, .. } => message.clone(),
            Self::StoreUnavailable(_) => "The gateway cannot reach its database right now; retry shortly.".into(),
            Self::Internal(_) => "The gateway failed unexpectedly; the error is logged under this request id.".into(),
            Self::BadRequest { message, .. }
            | Self::Forbidden { message, .. }
            | Self::NotFound { message, .. }
            | Self::MethodNotAllowed { message } => message.clone(),
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Upstream(e) => e.retry_after,
            Self::RateLimited { retry_after }
            | Self::AuthThrottled { retry_after, .. }
            | Self::IdempotencyConflict { retry_after, .. } => Some(*retry_after),
            Self::Overloaded => Some(Duration::from_secs(1)),
            Self::StoreUnavailable(_) => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The complete error envelope, as the caller sees it.
    pub fn to_body(&self, tool: Option<&str>, request_id: &str) -> serde_json::Value {
        json!({
            "ok": false,
            "tool": tool,
            "error": {
                "status": self.status().as_u16(),
                "reason": self.reason(),
                "message": self.message(),
                "request_id": request_id,
            }
        })
    }
}

/// Only an outage is a 503. A row missing or already there is an answer the call site turns
/// into its own error (a vanished key is a 401, an unknown record a 404); one that reaches
/// this conversion was thought impossible there, so it is a bug to log, not a database to wait for.
impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Other(_) => Self::StoreUnavailable(err),
            StoreError::NotFound | StoreError::Conflict => {
                Self::Internal(format!("unexpected store answer: {err}"))
            }
        }
    }
}

/// Carries the error from the handler to `http::envelope`, which renders it.
#[derive(Clone, Debug)]
pub struct ErrorSlot(pub Arc<ApiError>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        if matches!(self, Self::Unauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(after) = self.retry_after() {
            // Round up: a client that waits the whole seconds given must find room.
            let seconds = (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorSlot(Arc::new(self)));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_database_outage_is_store_unavailable() {
        let outage = ApiError::from(StoreError::Other(sqlx::Error::PoolTimedOut));
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(outage.reason(), "store_unavailable");
        assert!(
            outage.retry_after().is_some(),
            "an outage says when to retry"
        );

        // A missing or duplicate row is not an outage: telling the caller to retry shortly
        // would send it back into the same answer.
        for answer in [StoreError::NotFound, StoreError::Conflict] {
            let err = ApiError::from(answer);
            assert_eq!(err.status(), StatusCode::INTERNAL_SERVER_ERROR, "{err:?}");
            assert_eq!(err.reason(), "internal_error");
            assert_eq!(err.retry_after(), None);
        }
    }
}
