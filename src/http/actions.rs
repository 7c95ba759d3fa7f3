//! `POST /api/crisp/<action>`: one catalog action per call.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::auth::Principal;
use crate::call::{self, Answer};
use crate::catalog::{ACTION_PATH, Action, CATALOG, Target};
use crate::error::{ApiError, Reason};

use crate::kernel::request_id::{REQUEST_ID, Started};

/// Takes the request whole rather than through extractors: a `HeaderMap` extractor copies
/// every header and `Path` decodes into a new string, on every call.
pub async fn call(State(app): State<AppState>, request: Request) -> Result<Response, ApiError> {
    let (head, body) = Head::read(request)?;
    let (args, key) = match read_call(&app, &head, body).await {
        Ok(read) => read,
        Err(e) => {
            call::count_refused(&app.services(), &head.principal, head.action, &e);
            return Err(e);
        }
    };
    let options = call::Options {
        request_id: &head.request_id,
        started: head.started,
        idempotency: key.as_ref(),
    };
    let answer =
        call::execute_with(&app.services(), &head.principal, head.action, args, options).await?;
    Ok(match answer {
        Answer::Fresh(envelope) => {
            json(StatusCode::OK, axum::body::Body::new(envelope.into_body()))
        }
        Answer::Replayed(stored) => {
            let mut response = json(stored.status, stored.body.into());
            response.headers_mut().insert(
                call::idempotency::REPLAYED,
                HeaderValue::from_static("true"),
            );
            response
        }
    })
}

/// What a call keeps of its request's head: read in a plain function, so the head itself
/// (a few hundred bytes, and through its header values hyper's read buffer) is gone before
/// the call waits on Crisp instead of staying in the handler's future.
struct Head {
    principal: Arc<Principal>,
    action: &'static Action,
    started: std::time::Instant,
    request_id: Box<str>,
    /// A write's `Idempotency-Key`, copied.
    idempotency: Option<Box<[u8]>>,
}

impl Head {
    fn read(request: Request) -> Result<(Self, axum::body::Body), ApiError> {
        let (parts, body) = request.into_parts();
        let principal = parts
            .extensions
            .get::<Arc<Principal>>()
            .cloned()
            .ok_or_else(|| ApiError::Internal("the auth layer did not run".into()))?;
        // Slugs are plain ASCII; a percent-encoded path simply names no action. The edge read
        // the path once; only an unknown name is read again, to be echoed in the error.
        let action = parts
            .extensions
            .get::<Target>()
            .and_then(|target| target.callable())
            .ok_or_else(|| {
                unknown_action(
                    parts
                        .uri
                        .path()
                        .strip_prefix(ACTION_PATH)
                        .unwrap_or_default(),
                )
            })?;
        let started = parts
            .extensions
            .get::<Started>()
            .map_or_else(std::time::Instant::now, |s| s.0);
        let request_id = parts
            .headers
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .into();
        let idempotency = action
            .write
            .then(|| parts.headers.get(call::idempotency::HEADER))
            .flatten()
            .map(|value| value.as_bytes().into());
        let head = Self {
            principal,
            action,
            started,
            request_id,
            idempotency,
        };
        Ok((head, body))
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
