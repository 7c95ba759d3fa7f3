//! The one error type of the HTTP API and the JSON error envelope it becomes.
//!
//! Handlers return `Result<_, ApiError>` and use `?`. Its `IntoResponse` (in `http::envelope`,
//! so this kernel knows no web framework) only stores the error in the response;
//! `http::envelope` renders it once, with the request id and the tool name, and
//! logs the cause of 5xx errors there (so every error is logged exactly once).

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde_json::json;

use crate::store::StoreError;

/// Declares `Reason` with its wire strings, written once, and the list of every variant.
macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $wire:literal,)+) => {
        /// Every error reason the gateway itself gives, as the caller reads it in the error
        /// envelope's `reason` and as the audit trail, logs and metrics record it. The wire
        /// string is a stable contract: rename a variant freely, never its string. Crisp's own
        /// reasons, passed on from its answers, stay strings (`UpstreamFailure::reason`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)+
        }

        impl Reason {
            /// Every reason, for tests and documentation.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)+];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $wire,)+
                }
            }
        }
    };
}

reasons! {
    // Refusals of the key and the client.
    /// 401: missing, malformed, unknown, revoked or expired key.
    Unauthorized => "unauthorized",
    /// 429: the key is over its own rate.
    RateLimited => "rate_limited",
    /// 429: the key has spent its quota for the day or month.
    QuotaExceeded => "quota_exceeded",
    /// 429: this client failed to authenticate too often (`ApiError::AuthThrottled`).
    TooManyFailedAttempts => "too_many_failed_attempts",
    /// 429: too many verifications of one key are waiting (`ApiError::AuthThrottled`).
    KeyVerificationBusy => "key_verification_busy",
    /// 403: the key may not reach this website.
    WebsiteNotAllowed => "website_not_allowed",
    /// 403: a read-only key calling a write.
    WriteNotAllowed => "write_not_allowed",
    /// 403: the key's scope leaves this action out.
    ActionNotAllowed => "action_not_allowed",
    /// 403: a console change without its session's CSRF token, or from another origin.
    CsrfRefused => "csrf_refused",

    // The request itself.
    /// 400: a field the action does not take.
    UnknownField => "unknown_field",
    /// 400: a required field is absent.
    MissingField => "missing_field",
    /// 400: a field of the wrong type or shape.
    InvalidField => "invalid_field",
    /// 400: the body is not a JSON object.
    InvalidJson => "invalid_json",
    /// 400: a `body` argument that is not a JSON object or array, nor text holding one.
    InvalidBody => "invalid_body",
    /// 400: the body could not be read.
    UnreadableBody => "unreadable_body",
    /// 400: a `query` argument that is not a JSON object.
    InvalidQuery => "invalid_query",
    /// 400: a value that cannot go into the URL's path.
    InvalidPathValue => "invalid_path_value",
    /// 400: the URL built for Crisp is too long.
    UrlTooLong => "url_too_long",
    /// 400: a request the router refused for another reason.
    BadRequest => "bad_request",
    /// 404: no such route.
    NotFound => "not_found",
    /// 404: no action by this name.
    UnknownAction => "unknown_action",
    /// 404: no MCP toolset by this name.
    UnknownToolset => "unknown_toolset",
    /// 405: the route exists under another method.
    MethodNotAllowed => "method_not_allowed",
    /// 413: the body is over the limit.
    PayloadTooLarge => "payload_too_large",

    // Crisp accounts.
    /// 404: the named account is not the workspace's.
    AccountNotFound => "account_not_found",
    /// 400: the workspace has no account for the call.
    NoAccount => "no_account",
    /// 400: several accounts fit; the call must name one.
    AccountRequired => "account_required",
    /// 403: the account's token tier may not call this route (as Crisp documents it, or as
    /// Crisp answered).
    TierNotAllowed => "tier_not_allowed",

    // Idempotency.
    /// 400: a malformed `Idempotency-Key`.
    InvalidIdempotencyKey => "invalid_idempotency_key",
    /// 422: the key was used before with another request.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// 409: the first request with this key is still running.
    IdempotencyInProgress => "idempotency_in_progress",
    /// 409: the first request with this key has an unknown outcome.
    IdempotencyOutcomeUnknown => "idempotency_outcome_unknown",
    /// Audit only: a repeat answered from the stored record.
    IdempotentReplay => "idempotent_replay",

    // Reports.
    /// 400: a malformed report.
    InvalidReport => "invalid_report",
    /// 400: a report over its size limit.
    ReportTooLarge => "report_too_large",

    // MCP transport.
    /// 403: the MCP transport refused the request (its host is not allowed).
    McpRefused => "mcp_refused",
    /// 404: the MCP transport found nothing to answer.
    McpSessionNotFound => "mcp_session_not_found",
    /// 4xx: another refusal of the MCP transport, sent as a 400.
    McpTransport => "mcp_transport",

    // The gateway's own state.
    /// 503: too many requests in flight.
    Overloaded => "overloaded",
    /// 504: the gateway's deadline passed.
    GatewayTimeout => "gateway_timeout",
    /// 503: the database is out of reach.
    StoreUnavailable => "store_unavailable",
    /// 500: a bug, logged under the request id.
    InternalError => "internal_error",

    // A failed Crisp call, in the gateway's words (Crisp's own reasons pass through as strings).
    /// 502: Crisp refused the account's credentials.
    CrispUnauthorized => "crisp_unauthorized",
    /// 502: Crisp forbade the account this call.
    CrispForbidden => "crisp_forbidden",
    /// 429: Crisp rate-limited the account.
    CrispRateLimited => "crisp_rate_limited",
    /// 429: the account's turn did not come in time.
    AccountBusy => "account_busy",
    /// 502: Crisp failed.
    CrispServerError => "crisp_server_error",
    /// 502: Crisp's answer could not be read.
    CrispInvalidResponse => "crisp_invalid_response",
    /// 502: Crisp's answer is over the size limit.
    CrispResponseTooLarge => "crisp_response_too_large",
    /// 504: Crisp did not answer in time.
    CrispTimeout => "crisp_timeout",
    /// 502: Crisp could not be reached.
    CrispUnreachable => "crisp_unreachable",
    /// Crisp's 4xx status: Crisp refused with a reason that is not a plain word, or none.
    CrispError => "crisp_error",
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// The admin listener's 401: a missing, unknown or revoked admin token or console session.
    #[error("missing or invalid admin token")]
    AdminUnauthorized,
    #[error("{message}")]
    BadRequest { reason: Reason, message: String },
    /// A valid key calling outside its scope.
    #[error("{message}")]
    Forbidden { reason: Reason, message: String },
    #[error("{message}")]
    NotFound { reason: Reason, message: String },
    #[error("{message}")]
    MethodNotAllowed { message: String },
    /// The calling key is over its own rate limit.
    #[error("the key is over its rate limit")]
    RateLimited { retry_after: Duration },
    /// The calling key has spent its quota (`limit` calls per `period`) until `resets_at`.
    #[error("the key's quota is spent")]
    QuotaExceeded {
        limit: i64,
        period: &'static str,
        /// When the period ends (unix seconds).
        resets_at: i64,
        retry_after: Duration,
    },
    /// Too many failed authentications from this client, or too many verifications of one
    /// key at once: refused before any key lookup or argon2 run.
    #[error("authentication throttled ({reason})")]
    AuthThrottled {
        reason: Reason,
        retry_after: Duration,
    },
    /// Too many requests in flight in this process.
    #[error("the gateway is at capacity")]
    Overloaded,
    #[error("{message}")]
    Conflict { reason: Reason, message: String },
    /// A repeat of an idempotent write whose first request has no answer to give yet (still
    /// running) or ever (its outcome is unknown); `Retry-After` says when to come back.
    #[error("{message}")]
    IdempotencyConflict {
        reason: Reason,
        message: String,
        retry_after: Duration,
    },
    #[error("{message}")]
    Unprocessable { reason: Reason, message: String },
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
    pub fn bad_request(reason: Reason, message: impl Into<String>) -> Self {
        Self::BadRequest {
            reason,
            message: message.into(),
        }
    }

    pub fn not_found(reason: Reason, message: impl Into<String>) -> Self {
        Self::NotFound {
            reason,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized | Self::AdminUnauthorized => StatusCode::UNAUTHORIZED,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } | Self::QuotaExceeded { .. } | Self::AuthThrottled { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict { .. } | Self::IdempotencyConflict { .. } => StatusCode::CONFLICT,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Upstream(e) => e.status,
            Self::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The wire reason: the gateway's own `Reason`, or for a failed Crisp call the one its
    /// failure carries (which may be Crisp's own word).
    pub fn reason(&self) -> &str {
        let reason = match self {
            Self::Upstream(e) => return &e.reason,
            Self::Unauthorized | Self::AdminUnauthorized => Reason::Unauthorized,
            Self::BadRequest { reason, .. }
            | Self::Forbidden { reason, .. }
            | Self::NotFound { reason, .. }
            | Self::AuthThrottled { reason, .. }
            | Self::Conflict { reason, .. }
            | Self::IdempotencyConflict { reason, .. }
            | Self::Unprocessable { reason, .. } => *reason,
            Self::MethodNotAllowed { .. } => Reason::MethodNotAllowed,
            Self::PayloadTooLarge { .. } => Reason::PayloadTooLarge,
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::QuotaExceeded { .. } => Reason::QuotaExceeded,
            Self::Overloaded => Reason::Overloaded,
            Self::Timeout => Reason::GatewayTimeout,
            Self::StoreUnavailable(_) => Reason::StoreUnavailable,
            Self::Internal(_) => Reason::InternalError,
        };
        reason.as_str()
    }

    /// What the caller reads: what went wrong and what to do. Never internals: 5xx causes are
    /// logged, not sent.
    pub fn message(&self) -> String {
        match self {
            Self::Unauthorized => "Missing or invalid API key. Send `Authorization: Bearer sk_live_…` \
                with a key made by `crisp-gateway key create`; revoked and expired keys are refused."
                .into(),
            Self::AdminUnauthorized => "Missing or invalid admin token. Send `Authorization: Bearer sk_admin_…` \
                with a token made by `crisp-gateway admin-token create`, or sign in again at /admin/; \
                revoked tokens are refused."
                .into(),
            Self::PayloadTooLarge { limit } => format!(
                "The request body is larger than the gateway's limit of {limit} bytes; send less data per call."
            ),
            Self::Timeout => "The call took longer than the gateway's request deadline; try again, \
                or narrow the request."
                .into(),
            Self::Upstream(e) => e.message.clone(),
            Self::RateLimited { .. } => "This key is over its request rate; wait for the Retry-After delay, then retry.".into(),
            Self::QuotaExceeded { limit, period, resets_at, .. } => format!(
                "This key has used its quota of {limit} calls per {period}; it resets at {} \
                 (UTC), given in `resets_at`. Calls refused before Crisp do not count. An operator \
                 can raise it with `crisp-gateway key update <key id> --quota …`.",
                crate::kernel::clock::format(*resets_at)
            ),
            Self::AuthThrottled {
                reason: Reason::TooManyFailedAttempts,
                ..
            } => "Too many failed \
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

    /// When to come back. Every 429 and 503 says so: one that knows no better asks for a second.
    pub fn retry_after(&self) -> Option<Duration> {
        let known = match self {
            Self::Upstream(e) => e.retry_after,
            Self::RateLimited { retry_after }
            | Self::QuotaExceeded { retry_after, .. }
            | Self::AuthThrottled { retry_after, .. }
            | Self::IdempotencyConflict { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let status = self.status();
        known.or_else(|| {
            (status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(Duration::from_secs(1))
        })
    }

    /// [`Self::retry_after`] in whole seconds, rounded up: a client that waits that long must
    /// find room.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        self.retry_after()
            .map(|after| (after.as_secs() + u64::from(after.subsec_nanos() > 0)).max(1))
    }

    /// The complete error envelope, as the caller sees it.
    pub fn to_body(&self, tool: Option<&str>, request_id: &str) -> serde_json::Value {
        let mut body = json!({
            "ok": false,
            "tool": tool,
            "error": {
                "status": self.status().as_u16(),
                "reason": self.reason(),
                "message": self.message(),
                "request_id": request_id,
            }
        });
        // The header's value in the body too, for clients (and agents) that see only the body.
        if let Some(seconds) = self.retry_after_seconds() {
            body["error"]["retry_after_seconds"] = seconds.into();
        }
        if let Self::QuotaExceeded { resets_at, .. } = self {
            body["error"]["resets_at"] = crate::kernel::clock::format(*resets_at).into();
        }
        body
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_unique_snake_case_and_keep_their_wire_strings() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            let wire = reason.as_str();
            assert!(seen.insert(wire), "{reason:?} repeats {wire:?}");
            assert!(
                !wire.is_empty()
                    && !wire.starts_with('_')
                    && !wire.ends_with('_')
                    && !wire.contains("__")
                    && wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{reason:?} is not snake_case: {wire:?}"
            );
            assert_eq!(reason.to_string(), wire, "Display is the wire string");
        }

        // Callers match on these strings: they never change.
        for (reason, wire) in [
            (Reason::InvalidField, "invalid_field"),
            (Reason::UnknownField, "unknown_field"),
            (Reason::WebsiteNotAllowed, "website_not_allowed"),
            (Reason::TooManyFailedAttempts, "too_many_failed_attempts"),
            (
                Reason::IdempotencyOutcomeUnknown,
                "idempotency_outcome_unknown",
            ),
            (Reason::GatewayTimeout, "gateway_timeout"),
            (Reason::CrispUnreachable, "crisp_unreachable"),
            (Reason::TierNotAllowed, "tier_not_allowed"),
        ] {
            assert_eq!(reason.as_str(), wire);
        }
        let err = ApiError::bad_request(Reason::MissingField, "`x` is required");
        assert_eq!(err.reason(), "missing_field");
        assert_eq!(ApiError::Timeout.reason(), "gateway_timeout");
        assert_eq!(ApiError::Unauthorized.reason(), "unauthorized");
    }

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

    #[test]
    fn every_429_and_503_body_says_when_to_retry() {
        let limited = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        };
        let body = limited.to_body(Some("crisp_list_conversations"), "r1");
        assert_eq!(body["error"]["retry_after_seconds"], 2, "rounded up");
        for err in [
            ApiError::Overloaded,
            ApiError::from(StoreError::Other(sqlx::Error::PoolTimedOut)),
        ] {
            let body = err.to_body(None, "r");
            assert_eq!(body["error"]["retry_after_seconds"], 1, "{err:?}");
        }
        let plain =
            ApiError::bad_request(Reason::MissingField, "`x` is required").to_body(None, "r");
        assert!(plain["error"].get("retry_after_seconds").is_none());
    }
}
