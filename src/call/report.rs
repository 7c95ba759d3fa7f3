//! A caller's report of an action that failed or surprised it (`POST /api/crisp/report`):
//! limited per key, checked, stored for the operators (`crisp-gateway report list`), and the
//! workspace's oldest pruned past the retention.

use serde_json::{Map, Value};

use crate::auth::Principal;
use crate::error::{ApiError, Reason};
use crate::limits::KeyLimiter;
use crate::store::{ReportRecord, Store};

const MAX_TEXT: usize = 10_000;
const MAX_CONVERSATION: usize = 200;
/// The conversation as stored (JSON text), whatever its number of messages.
const MAX_CONVERSATION_BYTES: usize = 64 * 1024;

/// What a report needs of the running gateway, lent by the composition root.
pub struct Reports<'a> {
    pub store: &'a dyn Store,
    /// Reports per key.
    pub limits: &'a KeyLimiter,
    /// Reports kept per workspace; 0 keeps all.
    pub retention: u64,
}

/// Stores a caller's report and returns its id.
pub async fn submit(
    reports: &Reports<'_>,
    principal: &Principal,
    body: &[u8],
) -> Result<String, ApiError> {
    reports
        .limits
        .check(principal.key_id.as_str())
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    let report = parse(body, principal)?;
    reports.store.insert_report(&report).await?;
    if reports.retention > 0 {
        let keep = i64::try_from(reports.retention).unwrap_or(i64::MAX);
        match reports
            .store
            .prune_reports(&report.workspace_id, keep)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(rows = n, "pruned reports past the retention"),
            // The report is stored; the next one prunes again.
            Err(e) => tracing::warn!(error = %e, "cannot prune reports"),
        }
    }
    Ok(report.report_id)
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(Reason::InvalidReport, message)
}

fn too_large(field: &str, size: usize, limit: usize) -> ApiError {
    ApiError::bad_request(
        Reason::ReportTooLarge,
        format!(
            "`{field}` is {size} bytes, over the limit of {limit} bytes; send a shorter {field}."
        ),
    )
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
            let text = Value::Array(items).to_string();
            if text.len() > MAX_CONVERSATION_BYTES {
                return Err(too_large(
                    "conversation",
                    text.len(),
                    MAX_CONVERSATION_BYTES,
                ));
            }
            Some(text)
        }
        Some(Value::Array(_)) => {
            return Err(invalid(format!(
                "`conversation` holds more than {MAX_CONVERSATION} items; send the relevant part."
            )));
        }
        Some(_) => return Err(invalid("`conversation` must be an array of messages.")),
    };
    if message.len() > MAX_TEXT {
        return Err(too_large("message", message.len(), MAX_TEXT));
    }
    if let Some(c) = context.as_ref().filter(|c| c.len() > MAX_TEXT) {
        return Err(too_large("context", c.len(), MAX_TEXT));
    }
    Ok(ReportRecord {
        report_id: format!("rep_{}", crate::secret::random_base62(12)),
        workspace_id: principal.workspace_id.clone(),
        api_key_id: principal.key_id.clone(),
        at: crate::kernel::clock::now(),
        message,
        context,
        conversation,
    })
}
