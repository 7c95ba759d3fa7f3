//! `POST /api/crisp/report`: the edge of `call::report`, which owns what a report is.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use crate::app::AppState;
use crate::auth::Principal;
use crate::call::report;
use crate::error::ApiError;

pub const TOOL: &str = "crisp_report";

pub async fn submit(
    State(app): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let report_id = report::submit(&app.reports(), &principal, &body).await?;
    let result =
        json!({ "ok": true, "tool": TOOL, "result": { "report_id": report_id, "received": true } });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        result.to_string(),
    )
        .into_response())
}
