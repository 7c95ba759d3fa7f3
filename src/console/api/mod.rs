//! The admin API under `/admin/v1`: JSON in and out, each handler one call to a use case in
//! `crate::admin`, the same functions the CLI calls. Every change is audited with the admin
//! token's id; creates accept `Idempotency-Key`.

mod accounts;
mod activity;
mod errors;
mod idempotency;
mod keys;
pub mod openapi;
mod workspaces;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

use crate::admin::accounts::AccountChanges;
use crate::admin::records::{self, AuditQuery};
use crate::admin::{self as cases, KeySpec, NewAccount};
use crate::auth::AdminPrincipal;
use crate::error::{ApiError, Reason};
use crate::secret::CrispKey;
use crate::store::{AccountRecord, ApiKeyRecord, AuditRecord, KeyId, Tier, WorkspaceId};

use super::ConsoleState;
use accounts::*;
use activity::*;
use keys::*;
use workspaces::*;

/// The admin API's routes, relative to `/admin/v1`; the caller adds the auth layer.
pub fn routes() -> Router<ConsoleState> {
    Router::new()
        .route("/workspaces", get(list_workspaces).post(create_workspace))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}/revoke", post(revoke_key))
        .route("/keys/{id}/rotate", post(rotate_key))
        .route("/keys/{id}/quota", post(set_quota))
        .route("/accounts", get(list_accounts).post(add_account))
        .route(
            "/accounts/{id}",
            axum::routing::patch(update_account).delete(remove_account),
        )
        .route("/accounts/{id}/test", post(test_account))
        .route("/audit", get(audit))
        .route("/reports", get(reports))
        .route("/usage", get(usage))
        .route("/usage/series", get(usage_series))
}

/// Reads a JSON body; a malformed one, or a field the endpoint does not take, is a 400 that
/// says what is wrong.
fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            Reason::InvalidJson,
            format!(
                "The body is not what this endpoint takes: {}. See /admin/v1/openapi.json.",
                without_values(&e.to_string())
            ),
        )
    })
}

/// serde quotes a mistyped string's value in its message; that value may be a secret sent in
/// the wrong field, so the message keeps only its kind.
fn without_values(message: &str) -> String {
    const QUOTED: &str = "string \"";
    let Some(start) = message.find(QUOTED) else {
        return message.to_owned();
    };
    let rest = &message[start + QUOTED.len()..];
    match rest.find("\", ") {
        Some(end) => format!("{}a string{}", &message[..start], &rest[end + 1..]),
        None => format!("{}a string", &message[..start]),
    }
}

fn ok(value: Value) -> Response {
    axum::Json(value).into_response()
}

fn to_value<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// Records an admin change in the audit trail: the admin token's id in the key column, the
/// change as the action (`admin/<noun>/<verb>`), the subject in the reason.
fn audit_change(
    state: &ConsoleState,
    principal: &AdminPrincipal,
    headers: &HeaderMap,
    change: &str,
    workspace: Option<&WorkspaceId>,
    subject: &str,
) {
    state.app.auditor.record(AuditRecord {
        at: crate::kernel::clock::now(),
        workspace_id: workspace.cloned(),
        api_key_id: Some(KeyId::from(principal.token_id.as_str())),
        crisp_account_id: None,
        action: format!("admin/{change}"),
        status: 200,
        upstream_status: None,
        duration_ms: 0,
        request_id: headers
            .get(crate::kernel::request_id::REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        reason: Some(subject.to_owned()),
        count: 1,
        client: None,
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn body_errors_never_quote_a_value() {
        let error = super::body::<super::NewKey>(
            br#"{"workspace": "acme", "read_only": "sk_live_secret"}"#,
        )
        .expect_err("a string is not a boolean");
        let message = error.message();
        assert!(!message.contains("sk_live_secret"), "{message}");
        assert!(
            message.contains("a string, expected a boolean"),
            "{message}"
        );
        let unknown = super::body::<super::NewKey>(br#"{"workspace": "acme", "scopes": []}"#)
            .expect_err("unknown field");
        assert!(
            unknown.message().contains("`scopes`"),
            "{}",
            unknown.message()
        );
    }
}
