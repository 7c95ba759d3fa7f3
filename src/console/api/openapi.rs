//! The admin API's own OpenAPI document, served at `/admin/v1/openapi.json` and committed as
//! `openapi/crisp-gateway-admin.json` (a test fails when they differ).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};

/// The committed file's name, under `openapi/`.
pub const FILE: &str = "crisp-gateway-admin.json";

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "adminToken",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "crisp-gateway admin API",
        description = "Provision workspaces, keys and Crisp accounts, and read usage, the audit trail and reports. \
            Served on the admin listener (`admin_listen`, 127.0.0.1:8081 by default). Authenticate with \
            `Authorization: Bearer sk_admin_…` (made by `crisp-gateway admin-token create`). Errors use the \
            gateway's JSON error envelope `{ok: false, error: {status, reason, message, request_id}}`.",
        license(name = "MIT"),
    ),
    servers((url = "http://127.0.0.1:8081", description = "The default admin listener")),
    security(("adminToken" = [])),
    modifiers(&BearerAuth),
    paths(
        super::list_workspaces,
        super::create_workspace,
        super::list_keys,
        super::create_key,
        super::revoke_key,
        super::rotate_key,
        super::set_quota,
        super::list_accounts,
        super::add_account,
        super::update_account,
        super::remove_account,
        super::test_account,
        super::audit,
        super::reports,
        super::usage,
        super::usage_series,
    ),
    components(schemas(
        super::WorkspaceView,
        super::NewWorkspace,
        super::KeyView,
        super::NewKey,
        super::CreatedKey,
        super::Rotation,
        super::QuotaChange,
        crate::admin::records::UsageSeries,
        crate::admin::records::Series,
        super::AccountView,
        super::NewAccountBody,
        super::AccountPatch,
        super::AccountTest,
        super::AuditRow,
        super::ReportView,
    )),
    tags(
        (name = "workspaces", description = "Workspaces group keys and Crisp accounts."),
        (name = "keys", description = "Gateway keys (`sk_live_…`): created (shown once), rotated, revoked."),
        (name = "accounts", description = "Crisp accounts linked to a workspace; their keys are never echoed."),
        (name = "audit", description = "Writes, refusals and admin changes."),
        (name = "reports", description = "What callers reported."),
        (name = "usage", description = "Calls counted per key, action and day."),
    )
)]
struct AdminApi;

/// The document, pretty-printed, as committed.
pub static JSON: LazyLock<String> = LazyLock::new(|| {
    let mut text = AdminApi::openapi().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
});

pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], JSON.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The committed document is what the code generates; run `cargo run -- openapi` after
    /// changing the admin API.
    #[test]
    fn committed_document_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("openapi")
            .join(FILE);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == *JSON,
            "{} differs from the generated document; run `cargo run -- openapi` and commit",
            path.display()
        );
    }
}
