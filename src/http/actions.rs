//! `POST /api/crisp/<action>`: one catalog action per call.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::app::AppState;
use crate::auth::Principal;
use crate::call;
use crate::catalog::CATALOG;
use crate::error::ApiError;

use super::REQUEST_ID;

pub async fn call(
    State(app): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let action = CATALOG.get(&slug).ok_or_else(|| unknown_action(&slug))?;
    let args = call::args::parse(action, &body)?;
    let request_id = headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if action.write
        && let Some(key) = headers.get(call::idempotency::HEADER)
    {
        let key = key.to_str().map_err(|_| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "`Idempotency-Key` must be visible ASCII text.",
            )
        })?;
        return call::idempotency::run(&app, &principal, action, key, &body, args, request_id)
            .await;
    }
    let result = call::execute(&app, &principal, action, args, request_id).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        result,
    )
        .into_response())
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

fn unknown_action(slug: &str) -> ApiError {
    let closest = CATALOG
        .closest(slug, 3)
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ");
    ApiError::not_found(
        "unknown_action",
        format!(
            "There is no action `{slug}`. Closest: {closest}. The full list is at GET /api/crisp/_endpoints."
        ),
    )
}
