//! `Idempotency-Key`: a write runs at most once per workspace and key, within the TTL.
//!
//! The first request claims the key in the database (so the guarantee holds across replicas
//! and restarts), runs, and stores its answer; a repeat replays that answer with
//! `idempotent-replayed: true`, waits while the first is still running, or is refused if it
//! carries a different body. A call that never reached Crisp releases its claim, so a retry
//! can run.

use std::time::{Duration, Instant};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::{Args, Envelope, Options, execute_with};
use crate::app::App;
use crate::auth::Principal;
use crate::catalog::Action;
use crate::error::ApiError;
use crate::forward::UpstreamError;
use crate::store::{IdempotencyRecord, StoreError};

pub const HEADER: &str = "idempotency-key";
pub const REPLAYED: &str = "idempotent-replayed";

/// Checks the key's form: 1 to 255 visible ASCII characters.
pub fn validate(key: &str) -> Result<(), ApiError> {
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters, such as a UUID.",
        ));
    }
    Ok(())
}

/// Runs a write under an idempotency key and answers as the HTTP layer should.
pub async fn run(
    app: &App,
    principal: &Principal,
    action: &Action,
    key: &str,
    raw_body: &[u8],
    args: Args,
    request_id: &str,
) -> Result<Response, ApiError> {
    validate(key)?;
    let hash = {
        let mut hasher = Sha256::new();
        hasher.update(action.slug.as_bytes());
        hasher.update([0]);
        hasher.update(raw_body);
        format!("{:x}", hasher.finalize())
    };
    let now = crate::clock::now();
    let ttl = i64::try_from(app.config.idempotency_ttl.as_secs()).unwrap_or(i64::MAX);
    let claim = IdempotencyRecord {
        workspace_id: principal.workspace_id.clone(),
        idempotency_key: key.to_owned(),
        request_hash: hash.clone(),
        state: "pending".into(),
        status: None,
        response: None,
        created_at: now,
        expires_at: now.saturating_add(ttl),
    };
    let wait_until = Instant::now()
        + app
            .config
            .request_timeout
            .saturating_sub(Duration::from_millis(500));
    loop {
        match app.store.claim_idempotency(&claim).await? {
            None => return first_run(app, principal, action, key, args, request_id).await,
            Some(existing) if existing.request_hash != hash => {
                return Err(ApiError::Unprocessable {
                    reason: "idempotency_key_reused",
                    message: format!(
                        "`Idempotency-Key` `{key}` was already used with a different request; use a new key for a new request."
                    ),
                });
            }
            Some(existing) if existing.state == "done" => return Ok(replay(&existing)),
            Some(_) => {
                // The first request is still running (here or on another replica): wait for
                // its answer rather than call Crisp a second time.
                if let Some(done) = wait_for(app, principal, key, wait_until).await? {
                    return Ok(replay(&done));
                }
                if Instant::now() >= wait_until {
                    return Err(ApiError::Conflict {
                        reason: "idempotency_in_progress",
                        message: format!(
                            "A request with `Idempotency-Key` `{key}` is still running; retry shortly to get its answer."
                        ),
                    });
                }
                // The first request released its claim (it never reached Crisp): claim again.
            }
        }
    }
}

async fn first_run(
    app: &App,
    principal: &Principal,
    action: &Action,
    key: &str,
    args: Args,
    request_id: &str,
) -> Result<Response, ApiError> {
    let options = Options {
        request_id,
        idempotent: true,
    };
    let result = execute_with(app, principal, action, args, options).await;
    let (status, body) = match &result {
        Ok(envelope) => (
            StatusCode::OK,
            String::from_utf8_lossy(&envelope.to_bytes()).into_owned(),
        ),
        Err(e) if !reached_crisp(e) => {
            app.store
                .release_idempotency(&principal.workspace_id, key)
                .await?;
            return result.map(json_response);
        }
        Err(e) => (
            e.status(),
            e.to_body(Some(&action.tool), request_id).to_string(),
        ),
    };
    if let Err(e) = app
        .store
        .complete_idempotency(
            &principal.workspace_id,
            key,
            i32::from(status.as_u16()),
            &body,
        )
        .await
    {
        // The call happened; failing the caller now would invite a duplicate retry. Keep the
        // claim pending (repeats get 409 until it expires) and answer with what happened.
        tracing::error!(error = %e, "cannot store an idempotent answer");
    }
    result.map(json_response)
}

/// Whether Crisp may have acted on the call; if not, the key can be used again.
fn reached_crisp(error: &ApiError) -> bool {
    match error {
        ApiError::Upstream(
            UpstreamError::AccountBusy { .. } | UpstreamError::RateLimited { .. },
        ) => false,
        ApiError::Upstream(UpstreamError::Unreachable(e)) => !e.is_connect(),
        ApiError::Upstream(_) => true,
        _ => false,
    }
}

async fn wait_for(
    app: &App,
    principal: &Principal,
    key: &str,
    until: Instant,
) -> Result<Option<IdempotencyRecord>, ApiError> {
    let mut pause = Duration::from_millis(20);
    while Instant::now() < until {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
        match app
            .store
            .find_idempotency(&principal.workspace_id, key)
            .await
        {
            Ok(record) if record.state == "done" => return Ok(Some(record)),
            Ok(_) => {}
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(None)
}

fn json_response(envelope: Envelope) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        envelope.into_body(),
    )
        .into_response()
}

fn replay(record: &IdempotencyRecord) -> Response {
    let status = record
        .status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut response = (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        record.response.clone().unwrap_or_default(),
    )
        .into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
