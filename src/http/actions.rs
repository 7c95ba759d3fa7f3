//! `POST /api/crisp/<action>`: one catalog action per call.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Body as _;

use super::envelope::Arrival;
use crate::app::AppState;
use crate::auth::{Asked, GatewayKey, KeyCheck};
use crate::call::{self, Answer};
use crate::catalog::{ACTION_PATH, Action, CATALOG};
use crate::error::{ApiError, Reason};

/// A call whose path names a catalog action, sent on by the edge without the router: the body
/// cap, the key check, the body read into the action's arguments, the call, and the key's
/// rate-limit fields on the answer.
///
/// The request's head is read here, before the returned future exists, so a call held open
/// keeps only what it needs of it (not its headers, nor through their values hyper's read
/// buffer). Everything after is one `async` block using its captures in place.
#[inline(always)]
pub(super) fn call(
    app: &AppState,
    check: &Arc<KeyCheck>,
    request: Request,
    action: &'static Action,
    arrival: &Arrival,
    peer: SocketAddr,
) -> impl Future<Output = Response> + Send + use<> {
    let (parts, body) = request.into_parts();
    let limit = app.config.body_limit;
    // What the router's body-limit layer refuses before the key check: a declared length
    // over the cap.
    let too_large = body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX);
    let presented = GatewayKey::from_authorization(
        parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let head = Head::read(&parts.headers, action, arrival);
    drop(parts);
    let (app, check) = (Arc::clone(app), Arc::clone(check));
    let client = Some(peer.ip());
    async move {
        if too_large {
            return ApiError::PayloadTooLarge { limit }.into_response();
        }
        let asked = Asked {
            client,
            action: action.slug,
            request_id: &head.request_id,
        };
        let principal = match check.admit(presented, &asked).await {
            Ok(principal) => principal,
            Err(refused) => return refused,
        };
        // Taken apart in a statement of its own: held in a `match` around the call, the read's
        // whole `Result` would stay in the future, beside its moved-out parts, while Crisp
        // answers.
        let (args, idempotency) = match read_call(&app, &head, body).await {
            Ok(read) => read,
            Err(e) => {
                call::count_refused(&app.services(), &principal, action, &e);
                return check.describe(e.into_response(), &principal);
            }
        };
        let options = call::Options {
            request_id: &head.request_id,
            started: head.started,
            idempotency: idempotency.as_ref(),
        };
        let answer = call::execute_with(&app.services(), &principal, action, args, options).await;
        let response = match answer {
            Ok(Answer::Fresh(envelope)) => {
                json(StatusCode::OK, axum::body::Body::new(envelope.into_body()))
            }
            Ok(Answer::Replayed(stored)) => {
                let mut response = json(stored.status, stored.body.into());
                response.headers_mut().insert(
                    call::idempotency::REPLAYED,
                    HeaderValue::from_static("true"),
                );
                response
            }
            Err(e) => e.into_response(),
        };
        check.describe(response, &principal)
    }
}

/// `POST /api/crisp/<name>` where the name is no action (the router's handler, behind the key
/// check: only a caller with a key learns which names exist).
pub async fn unknown(request: Request) -> ApiError {
    // Slugs are plain ASCII; a percent-encoded path simply names no action.
    unknown_action(
        request
            .uri()
            .path()
            .strip_prefix(ACTION_PATH)
            .unwrap_or_default(),
    )
}

/// What a call keeps of its request's head.
struct Head {
    action: &'static Action,
    started: std::time::Instant,
    request_id: Box<str>,
    /// A write's `Idempotency-Key`, copied.
    idempotency: Option<Box<[u8]>>,
}

impl Head {
    fn read(headers: &HeaderMap, action: &'static Action, arrival: &Arrival) -> Self {
        Self {
            action,
            started: arrival.started,
            request_id: arrival.request_id.to_str().unwrap_or_default().into(),
            idempotency: action
                .write
                .then(|| headers.get(call::idempotency::HEADER))
                .flatten()
                .map(|value| value.as_bytes().into()),
        }
    }
}

/// Reads the body within the limit into the action's arguments, and the `Idempotency-Key` of
/// a write.
async fn read_call(
    app: &AppState,
    head: &Head,
    body: axum::body::Body,
) -> Result<(call::Args, Option<call::idempotency::Key>), ApiError> {
    let limit = app.config.body_limit;
    let body = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| unreadable_body(&e, limit))?;
    let args = call::args::parse(head.action, &body)?;
    let key = head
        .idempotency
        .as_deref()
        .map(|value| call::idempotency::Key::new(value, head.action, &body))
        .transpose()?;
    Ok((args, key))
}

fn json(status: StatusCode, body: axum::body::Body) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn unreadable_body(error: &axum::Error, limit: usize) -> ApiError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return ApiError::PayloadTooLarge { limit };
        }
        source = e.source();
    }
    ApiError::bad_request(
        Reason::UnreadableBody,
        "The request body could not be read to its end; send it again.",
    )
}

pub async fn wrong_method(Path(slug): Path<String>) -> ApiError {
    let what = if CATALOG.get(&slug).is_some() {
        format!(
            "Actions are called with POST: `POST /api/crisp/{slug}` with a JSON body of its fields."
        )
    } else {
        "Actions are called with POST; the list is at GET /api/crisp/_endpoints.".to_owned()
    };
    ApiError::MethodNotAllowed { message: what }
}

/// The most of an unknown slug an error message repeats.
const ECHOED_SLUG: usize = 128;

fn unknown_action(slug: &str) -> ApiError {
    // Suggestions cost an edit distance against every action: only worth it (and only
    // meaningful) for a slug of about an action's length.
    if slug.len() > ECHOED_SLUG {
        return ApiError::not_found(
            Reason::UnknownAction,
            format!(
                "There is no action `{}…` ({} bytes; no action name is longer than {ECHOED_SLUG}). \
                 The full list is at GET /api/crisp/_endpoints.",
                crate::kernel::text::truncate(slug, ECHOED_SLUG),
                slug.len()
            ),
        );
    }
    let closest = CATALOG
        .closest(slug, 3)
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::not_found(
        Reason::UnknownAction,
        format!(
            "There is no action `{slug}`. Closest: {closest}. The full list is at GET /api/crisp/_endpoints."
        ),
    )
}
