//! `POST /api/crisp/report`: a caller reports an action that failed or surprised it, for the
//! operators to read with `crisp-gateway report list`.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::store::ReportRecord;

pub const TOOL: &str = "crisp_report";
const MAX_TEXT: usize = 10_000;
const MAX_CONVERSATION: usize = 200;

pub async fn submit(
    State(app): State<AppState>,
    Extension(principal): Extension<Arc<Principal>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let report = parse(&body, &principal)?;
    app.store.insert_report(&report).await?;
    let result = json!({ "ok": true, "tool": TOOL, "result": { "report_id": report.report_id, "received": true } });
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        result.to_string(),
    )
        .into_response())
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_report", message)
}

fn parse(body: &[u8], principal: &Principal) -> Result<ReportRecord, ApiError> {
    let shape = "send {\"message\": \"what went wrong\", \"context\": \"optional text\", \"conversation\": [optional messages]}";
    let mut object: Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => map,
        _ => {
            return Err(invalid(format!(
                "The report must be a JSON object: {shape}."
            )));
        }
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !matches!(k.as_str(), "message" | "context" | "conversation"))
    {
        return Err(invalid(format!(
            "`{unknown}` is not a report field: {shape}."
        )));
    }
    let message = match object.remove("message") {
        Some(Value::String(m)) if !m.trim().is_empty() => m,
        Some(Value::String(_)) | None => {
            return Err(invalid(format!(
                "`message` is required and must not be empty: {shape}."
            )));
        }
        Some(_) => return Err(invalid("`message` must be a string.")),
    };
    let context = match object.remove("context") {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) => Some(c),
        Some(_) => return Err(invalid("`context` must be a string.")),
    };
    let conversation = match object.remove("conversation") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) if items.len() <= MAX_CONVERSATION => {
            Some(Value::Array(items).to_string())
        }
        Some(Value::Array(_)) => {
            return Err(invalid(format!(
                "`conversation` holds more than {MAX_CONVERSATION} items; send the relevant part."
            )));
        }
        Some(_) => return Err(invalid("`conversation` must be an array of messages.")),
    };
    if message.len() > MAX_TEXT || context.as_ref().is_some_and(|c| c.len() > MAX_TEXT) {
        return Err(invalid(format!(
            "`message` and `context` are limited to {MAX_TEXT} bytes each."
        )));
    }
    Ok(ReportRecord {
        report_id: format!("rep_{}", crate::secret::random_base62(12)),
        workspace_id: principal.workspace_id.clone(),
        api_key_id: principal.key_id.clone(),
        at: crate::clock::now(),
        message,
        context,
        conversation,
    })
}
