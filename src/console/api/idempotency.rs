//! `Idempotency-Key` on the admin API's creates: the first request runs and its answer is
//! stored; a repeat with the same body gets that answer again (with `Idempotent-Replayed`),
//! without a second create.
//!
//! Records live in the gateway's idempotency table, under a namespace of the admin token
//! (`admin:<token id>`), so replicas agree and callers' keys never collide with admins'. What
//! is stored is the answer a replay may show: a created key's secret is never stored, so its
//! replay says the secret was shown once instead.

use std::future::Future;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::auth::AdminPrincipal;
use crate::call::idempotency::{HEADER, Key, REPLAYED};
use crate::error::{ApiError, Reason};
use crate::store::{IdempotencyRecord, IdempotencyState, WorkspaceId};

use super::super::ConsoleState;

/// How long a create may run before its claim counts as abandoned.
const LEASE_SECONDS: i64 = 60;

/// What a create answers now (`body`), and what a replay of it may answer (`stored`).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub stored: Value,
}

impl Answer {
    /// An answer with nothing secret in it: replays repeat it as is.
    pub fn same(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            stored: body.clone(),
            body,
        }
    }
}

fn respond(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Runs `create` once per admin token and `Idempotency-Key` (or every time without one).
/// `what` names the endpoint, so one key sent to two endpoints is a reuse, not a repeat.
pub async fn run<F, Fut>(
    state: &ConsoleState,
    principal: &AdminPrincipal,
    headers: &HeaderMap,
    what: &str,
    raw_body: &[u8],
    create: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Answer, ApiError>>,
{
    let Some(header) = headers.get(HEADER) else {
        let answer = create().await?;
        return Ok(respond(answer.status, answer.body));
    };
    let key = Key::for_request(header.as_bytes(), &format!("admin/{what}"), raw_body)?;
    let store = &state.app.store;
    let namespace = WorkspaceId::new(format!("admin:{}", principal.token_id));
    let now = crate::kernel::clock::now();
    let expires_at = now.saturating_add(
        i64::try_from(state.app.config.idempotency_ttl.as_secs()).unwrap_or(i64::MAX),
    );
    let claim = IdempotencyRecord {
        workspace_id: namespace.clone(),
        idempotency_key: key.as_str().to_owned(),
        request_hash: key.request_hash().to_owned(),
        state: IdempotencyState::Pending,
        status: None,
        response: None,
        created_at: now,
        lease_until: now + LEASE_SECONDS,
        expires_at,
    };
    let Some(existing) = store.claim_idempotency(&claim).await? else {
        return match create().await {
            Ok(answer) => {
                let status = i32::from(answer.status.as_u16());
                if let Err(e) = store
                    .complete_idempotency(
                        &namespace,
                        key.as_str(),
                        status,
                        &answer.stored.to_string(),
                        expires_at,
                    )
                    .await
                {
                    tracing::warn!(error = %e, "cannot store an admin create's answer for its Idempotency-Key");
                }
                Ok(respond(answer.status, answer.body))
            }
            Err(refused) => {
                // Nothing was created: a retry with the key may run.
                let _ = store.release_idempotency(&namespace, key.as_str()).await;
                Err(refused)
            }
        };
    };
    if existing.request_hash != key.request_hash() {
        return Err(ApiError::Unprocessable {
            reason: Reason::IdempotencyKeyReused,
            message: "This Idempotency-Key was used with another request; use a new key for a new create.".into(),
        });
    }
    match existing.state.at(existing.lease_until, now) {
        IdempotencyState::Done => {
            let status = existing
                .status
                .and_then(|s| u16::try_from(s).ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let body = existing
                .response
                .as_deref()
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null);
            let mut response = respond(status, body);
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        IdempotencyState::Pending => Err(ApiError::IdempotencyConflict {
            reason: Reason::IdempotencyInProgress,
            message: "The first request with this Idempotency-Key is still running; retry after the Retry-After delay.".into(),
            retry_after: std::time::Duration::from_secs(1),
        }),
        IdempotencyState::Unknown => Err(ApiError::IdempotencyConflict {
            reason: Reason::IdempotencyOutcomeUnknown,
            message: "The first request with this Idempotency-Key stopped without an answer; list what exists before creating again, or use a new key.".into(),
            retry_after: std::time::Duration::from_secs(60),
        }),
    }
}
