//! What Crisp answered, as a gateway result: the raw `data` of a success, or a typed error.
//!
//! Successful bodies are not re-serialised: `data` is located as raw JSON (`scan`) and sliced
//! out of the received bytes, in the pieces they arrived in, so a large list costs neither a
//! parse nor a copy.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

use crate::accounts::Account;
use crate::catalog::Method;
use crate::error::{ApiError, Reason, UpstreamFailure};
use crate::kernel::chunks::Chunks;

#[derive(Debug)]
pub enum Reply {
    /// The raw JSON of Crisp's `data` (a slice of the received body).
    Data { status: u16, data: Chunks },
    /// A HEAD call: 2xx means it exists, 404 that it does not.
    Exists { status: u16, exists: bool },
}

impl Reply {
    pub fn status(&self) -> u16 {
        match self {
            Self::Data { status, .. } | Self::Exists { status, .. } => *status,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A 4xx from Crisp that concerns the caller's input; passed through.
    #[error("crisp answered {status} {reason}")]
    Rejected {
        status: u16,
        reason: String,
        message: String,
    },
    /// Crisp refused the stored credentials (401): the account needs fixing, not the caller.
    #[error("crisp refused the credentials of account {account}")]
    Unauthorized { account: String },
    #[error("crisp forbade the call for account {account}")]
    Forbidden { account: String, detail: String },
    /// Crisp refused the route to the token's tier (`restricted_route_tier`, whatever the
    /// status): the account needs another tier, not other credentials.
    #[error("crisp refused the route to the tier of account {account} ({status})")]
    TierRestricted { status: u16, account: String },
    #[error("crisp rate-limited the call ({status})")]
    RateLimited {
        status: u16,
        retry_after: Option<Duration>,
    },
    #[error("crisp failed with {status}")]
    ServerError { status: u16 },
    /// The account's local budget (concurrency or rate) is taken; nothing was sent.
    #[error("the account's call budget is taken")]
    AccountBusy {
        account: String,
        retry_after: Duration,
    },
    #[error("crisp answered {status} with a body that is not a Crisp envelope")]
    InvalidResponse { status: u16 },
    /// Crisp's answer was larger than `upstream_max_response`; it was not read past the limit.
    #[error("crisp's {status} answer is larger than the {limit}-byte limit")]
    ResponseTooLarge { status: u16, limit: usize },
    #[error("crisp did not answer in time")]
    Timeout,
    #[error("{0}")]
    Unreachable(#[source] super::TransportError),
}

impl From<UpstreamError> for ApiError {
    fn from(error: UpstreamError) -> Self {
        let unanswered = matches!(
            error,
            UpstreamError::Timeout
                | UpstreamError::Unreachable(_)
                | UpstreamError::AccountBusy { .. }
                | UpstreamError::RateLimited { .. }
        );
        ApiError::Upstream(Box::new(UpstreamFailure {
            status: error.status(),
            reason: error.reason().to_owned(),
            message: error.message(),
            retry_after: error.retry_after(),
            unanswered,
            cause: Box::new(error),
        }))
    }
}

impl UpstreamError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Rejected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_REQUEST)
            }
            Self::RateLimited { .. } | Self::AccountBusy { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::TierRestricted { .. } => StatusCode::FORBIDDEN,
            Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::ServerError { .. }
            | Self::InvalidResponse { .. }
            | Self::ResponseTooLarge { .. }
            | Self::Unreachable(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Self::Rejected { reason, .. } => reason,
            Self::Unauthorized { .. } => Reason::CrispUnauthorized.as_str(),
            Self::Forbidden { .. } => Reason::CrispForbidden.as_str(),
            Self::TierRestricted { .. } => Reason::TierNotAllowed.as_str(),
            Self::RateLimited { .. } => Reason::CrispRateLimited.as_str(),
            Self::AccountBusy { .. } => Reason::AccountBusy.as_str(),
            Self::ServerError { .. } => Reason::CrispServerError.as_str(),
            Self::InvalidResponse { .. } => Reason::CrispInvalidResponse.as_str(),
            Self::ResponseTooLarge { .. } => Reason::CrispResponseTooLarge.as_str(),
            Self::Timeout => Reason::CrispTimeout.as_str(),
            Self::Unreachable(_) => Reason::CrispUnreachable.as_str(),
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Rejected { message, .. } => message.clone(),
            Self::Unauthorized { account } => format!(
                "Crisp refused the stored credentials of account `{account}`: check its identifier and key \
                 and its tier (`website` for tokens made in Crisp's workspace settings, `plugin` for \
                 Marketplace tokens), then fix it with `crisp-gateway account add` or `account update`."
            ),
            Self::Forbidden { account, detail } => format!(
                "Crisp forbade this call for account `{account}` ({detail}): the token lacks a scope or \
                 tier this route needs, or is not allowed on this website."
            ),
            Self::TierRestricted { account, status } => format!(
                "Crisp refused this route to the tier of account `{account}` (HTTP {status} \
                 restricted_route_tier): link an account of a tier the route accepts with \
                 `crisp-gateway account add --tier user|website|plugin …` and name it in `account`."
            ),
            Self::RateLimited { .. } => {
                "Crisp is rate-limiting this account; wait for the Retry-After delay, then retry."
                    .into()
            }
            Self::AccountBusy { account, .. } => format!(
                "Account `{account}` is at the gateway's ceiling of concurrent or per-second Crisp \
                 calls; retry after the Retry-After delay, or spread calls out."
            ),
            Self::ServerError { status } => {
                format!("Crisp failed with HTTP {status}; retry later.")
            }
            Self::InvalidResponse { status } => {
                format!(
                    "Crisp answered HTTP {status} with a body that is not a Crisp JSON envelope."
                )
            }
            Self::ResponseTooLarge { limit, .. } => format!(
                "Crisp's answer is larger than the gateway's limit of {limit} bytes (upstream_max_response); \
                 ask for less at once: page through the list with a smaller `per_page` or page number, \
                 or narrow it with filters."
            ),
            Self::Timeout => {
                "Crisp did not answer within the gateway's upstream timeout; retry later.".into()
            }
            // The detail (which may name an internal proxy's host) goes to the log only.
            Self::Unreachable(super::TransportError::Untrusted(_)) => {
                "The gateway does not trust the TLS certificate Crisp presented; retrying will \
                 not help: the gateway's operator must check the `upstream` URL, or trust its \
                 CA with `upstream_ca_file` (the gateway's log says why it was refused)."
                    .into()
            }
            Self::Unreachable(super::TransportError::OtherVersion(_)) => {
                "Crisp's TLS handshake picked an HTTP version that the gateway's `upstream_http` \
                 setting does not speak; retrying will not help: the gateway's operator should \
                 set `upstream_http = \"auto\"`, which follows Crisp's pick (the gateway's log \
                 says which version was picked)."
                    .into()
            }
            Self::Unreachable(_) => "The gateway cannot connect to Crisp; retry later.".into(),
        }
    }

    /// The `Retry-After` Crisp itself sent, if any (for the retry loop).
    pub fn crisp_retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True when Crisp certainly did not act on the call: it was never sent, or Crisp refused
    /// it for its rate limit before handling it.
    pub fn certainly_not_acted(&self) -> bool {
        match self {
            Self::AccountBusy { .. } | Self::RateLimited { .. } => true,
            Self::Unreachable(e) => e.never_left(),
            _ => false,
        }
    }

    /// The HTTP status Crisp answered with, when it answered at all.
    pub fn upstream_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. }
            | Self::TierRestricted { status, .. }
            | Self::RateLimited { status, .. }
            | Self::ServerError { status }
            | Self::InvalidResponse { status }
            | Self::ResponseTooLarge { status, .. } => Some(*status),
            Self::Unauthorized { .. } => Some(401),
            Self::Forbidden { .. } => Some(403),
            Self::Timeout | Self::Unreachable(_) | Self::AccountBusy { .. } => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after, .. } => {
                Some(retry_after.unwrap_or(Duration::from_secs(1)))
            }
            Self::AccountBusy { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// The envelope's `reason`, decoded (it is a short JSON string).
fn reason(envelope: &super::scan::Fields<'_>) -> Option<String> {
    serde_json::from_slice(envelope.reason?).ok()
}

/// Crisp's reason for a route its token's tier may not call.
const TIER_REFUSAL: &str = "restricted_route_tier";

/// The longest text of Crisp's passed on to a caller.
const MAX_CRISP_TEXT: usize = 1024;
/// The longest `reason` passed on; Crisp's are short snake_case words.
const MAX_CRISP_REASON: usize = 64;

/// Crisp's text as a caller may read it: without the account's credentials (an upstream
/// that echoes the request, its `Authorization` header included, would otherwise hand the
/// Crisp key to every caller) and bounded in length.
fn scrub(text: &str, account: &Account) -> String {
    let mut out = text.to_owned();
    for secret in credentials(account) {
        if !secret.is_empty() && out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "[redacted]");
        }
    }
    if out.len() > MAX_CRISP_TEXT {
        let cut = crate::kernel::text::truncate(&out, MAX_CRISP_TEXT).len();
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Everything that carries the account's credentials, longest first so a whole header is
/// replaced before its parts: the `Authorization` value, its base64 token, the decoded
/// `identifier:key` and each half.
fn credentials(account: &Account) -> Vec<String> {
    use base64::Engine;
    let mut found = Vec::new();
    let header = String::from_utf8_lossy(account.authorization.as_bytes()).into_owned();
    let token = header
        .split_once(' ')
        .map_or(header.as_str(), |(_, t)| t)
        .trim()
        .to_owned();
    if let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(&token)
        && let Ok(pair) = String::from_utf8(decoded)
    {
        if let Some((_, key)) = pair.split_once(':') {
            found.push(key.to_owned());
        }
        found.push(pair);
    }
    found.push(token);
    found.push(header);
    found.push(account.identifier.clone());
    found.sort_by_key(|s| std::cmp::Reverse(s.len()));
    found
}

/// A reason as a caller may read it: Crisp's own word when it is one, else `crisp_error`.
fn scrub_reason(reason: &str, account: &Account) -> String {
    let plain = !reason.is_empty()
        && reason.len() <= MAX_CRISP_REASON
        && reason
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    let scrubbed = scrub(reason, account);
    if plain && scrubbed == reason {
        scrubbed
    } else {
        Reason::CrispError.as_str().to_owned()
    }
}

#[derive(Deserialize)]
struct ErrorData<'a> {
    #[serde(default, borrow)]
    message: Option<std::borrow::Cow<'a, str>>,
}

/// `Retry-After` in seconds (Crisp documents none, but honour one when present).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

pub fn interpret(
    method: Method,
    status: u16,
    retry_after: Option<Duration>,
    body: Chunks,
    account: &Account,
) -> Result<Reply, UpstreamError> {
    if method == Method::Head {
        match status {
            200..=299 => {
                return Ok(Reply::Exists {
                    status,
                    exists: true,
                });
            }
            404 => {
                return Ok(Reply::Exists {
                    status,
                    exists: false,
                });
            }
            _ => {}
        }
    }
    // A success in Crisp's documented layout is read where it lies; any other answer, and
    // every error (a short body), is joined into one buffer to be scanned.
    let documented = if (200..=299).contains(&status) {
        let pieces = body.pieces();
        super::scan::documented_in(pieces).map(|at| at.fields(&pieces[0]))
    } else {
        None
    };
    let joined = if documented.is_some() {
        Bytes::new()
    } else {
        body.to_bytes()
    };
    let envelope = documented.or_else(|| super::scan::envelope(&joined));
    if (400..=499).contains(&status)
        && envelope.as_ref().and_then(reason).as_deref() == Some(TIER_REFUSAL)
    {
        return Err(UpstreamError::TierRestricted {
            status,
            account: account.label.clone(),
        });
    }
    match status {
        200..=299 => {
            let envelope = envelope.ok_or(UpstreamError::InvalidResponse { status })?;
            if envelope.error {
                return Err(UpstreamError::InvalidResponse { status });
            }
            let data = match envelope.data {
                Some(range) => body.slice(range),
                // Crisp's Node client resolves a missing `data` as `{}`; so does the gateway.
                None => Chunks::from(&b"{}"[..]),
            };
            Ok(Reply::Data { status, data })
        }
        401 => Err(UpstreamError::Unauthorized {
            account: account.label.clone(),
        }),
        403 => Err(UpstreamError::Forbidden {
            account: account.label.clone(),
            detail: envelope
                .as_ref()
                .and_then(reason)
                .map_or_else(|| "forbidden".into(), |r| scrub(&r, account)),
        }),
        420 | 429 => Err(UpstreamError::RateLimited {
            status,
            retry_after,
        }),
        400..=499 => {
            let reason = envelope.as_ref().and_then(reason).map_or_else(
                || Reason::CrispError.as_str().to_owned(),
                |r| scrub_reason(&r, account),
            );
            let detail = envelope
                .and_then(|e| e.data)
                .and_then(|d| serde_json::from_slice::<ErrorData<'_>>(&joined[d]).ok())
                .and_then(|d| d.message.map(|m| scrub(&m, account)));
            let message = match detail {
                Some(detail) => format!("Crisp answered {status} {reason}: {detail}"),
                None => format!("Crisp answered {status} {reason}."),
            };
            Err(UpstreamError::Rejected {
                status,
                reason,
                message,
            })
        }
        500..=599 => Err(UpstreamError::ServerError { status }),
        _ => Err(UpstreamError::InvalidResponse { status }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn account() -> Account {
        let token = base64::engine::general_purpose::STANDARD.encode("ident-1234:secret-key-5678");
        Account {
            id: "acc_1".into(),
            label: "main".into(),
            identifier: "ident-1234".into(),
            website_id: "web".into(),
            websites: Box::new(["web".into()]),
            tier: crate::accounts::Tier::Website,
            is_default: true,
            authorization: http::HeaderValue::from_str(&format!("Basic {token}")).expect("header"),
            proven: Default::default(),
            rate_limit: None,
            max_concurrency: None,
        }
    }

    #[test]
    fn crisp_text_loses_the_credentials_and_its_excess() {
        let account = account();
        let header = String::from_utf8_lossy(account.authorization.as_bytes()).into_owned();
        let echoed = format!("you sent {header}; id ident-1234 key secret-key-5678");
        let scrubbed = scrub(&echoed, &account);
        assert_eq!(
            scrubbed,
            "you sent [redacted]; id [redacted] key [redacted]"
        );
        let long = scrub(&"é".repeat(MAX_CRISP_TEXT), &account);
        assert!(
            long.len() <= MAX_CRISP_TEXT + '…'.len_utf8(),
            "{}",
            long.len()
        );
        assert!(long.ends_with('…'));
        assert_eq!(scrub_reason("invalid_data", &account), "invalid_data");
        assert_eq!(scrub_reason("bad secret-key-5678", &account), "crisp_error");
        assert_eq!(scrub_reason(&"r".repeat(65), &account), "crisp_error");
    }
}
