//! The admin API under `/admin/v1`: JSON in and out, each handler one call to a use case in
//! `crate::admin`, the same functions the CLI calls. Every change is audited with the admin
//! token's id; creates accept `Idempotency-Key`.

mod errors;
mod idempotency;
pub mod openapi;

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

// ---- workspaces ------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
    /// RFC 3339.
    pub created_at: String,
}

impl From<&crate::store::Workspace> for WorkspaceView {
    fn from(w: &crate::store::Workspace) -> Self {
        Self {
            id: w.workspace_id.to_string(),
            name: w.name.clone(),
            created_at: crate::kernel::clock::format(w.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    /// 1 to 64 characters without spaces, such as `acme`.
    pub name: String,
}

/// The workspaces, by name.
#[utoipa::path(get, path = "/admin/v1/workspaces", tag = "workspaces",
    responses((status = 200, description = "`{\"workspaces\": [WorkspaceView]}`")))]
async fn list_workspaces(State(state): State<ConsoleState>) -> Result<Response, ApiError> {
    let workspaces = state.app.store.list_workspaces().await?;
    let views: Vec<WorkspaceView> = workspaces.iter().map(WorkspaceView::from).collect();
    Ok(ok(json!({ "workspaces": views })))
}

/// Creates a workspace. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/admin/v1/workspaces", tag = "workspaces", request_body = NewWorkspace,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe: a repeat returns the first answer.")),
    responses((status = 201, description = "Created.", body = WorkspaceView), (status = 409, description = "The name is taken.")))]
async fn create_workspace(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewWorkspace = body(&raw)?;
    idempotency::run(&state, &principal, &headers, "workspaces", &raw, || async {
        let workspace = cases::create_workspace(&state.app.store, &request.name).await?;
        audit_change(
            &state,
            &principal,
            &headers,
            "workspace/create",
            Some(&workspace.workspace_id),
            &workspace.name,
        );
        let view = to_value(&WorkspaceView::from(&workspace));
        Ok(idempotency::Answer::same(StatusCode::CREATED, view))
    })
    .await
}

// ---- keys ------------------------------------------------------------------------------

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub id: String,
    pub workspace: String,
    pub name: Option<String>,
    /// `active`, `revoked` or `expired`.
    pub status: String,
    pub read_only: bool,
    /// Action globs the key may call; null: every action.
    pub actions: Option<Vec<String>>,
    /// Website ids the key may act on; null: every website its workspace's accounts allow.
    pub websites: Option<Vec<String>>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Calls allowed per period, such as `10000/day`; null: no quota.
    pub quota: Option<String>,
}

fn split(list: Option<&str>) -> Option<Vec<String>> {
    list.map(|l| {
        l.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

impl KeyView {
    fn new(k: &ApiKeyRecord, workspace: &str, now: i64) -> Self {
        let time = |t: Option<i64>| t.map(crate::kernel::clock::format);
        Self {
            id: k.api_key_id.to_string(),
            workspace: workspace.to_owned(),
            name: k.name.clone(),
            status: records::key_status(k, now).to_owned(),
            read_only: k.read_only,
            actions: split(k.allowed_actions.as_deref()),
            websites: split(k.allowed_websites.as_deref()),
            created_at: crate::kernel::clock::format(k.created_at),
            expires_at: time(k.expires_at),
            last_used_at: time(k.last_used_at),
            quota: k.quota().map(crate::admin::quota::describe),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkspaceQuery {
    /// Only this workspace (by name).
    pub workspace: Option<String>,
}

/// Keys with their scopes, expiry and last use; never the keys themselves.
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", params(WorkspaceQuery),
    responses((status = 200, description = "`{\"keys\": [KeyView]}`")))]
async fn list_keys(
    State(state): State<ConsoleState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Response, ApiError> {
    let store = &state.app.store;
    let filter = records::workspace_filter(store, query.workspace.as_deref()).await?;
    let workspaces = store.list_workspaces().await?;
    let now = crate::kernel::clock::now();
    let keys: Vec<KeyView> = store
        .list_keys(filter.as_ref())
        .await?
        .iter()
        .map(|k| {
            let workspace = workspaces
                .iter()
                .find(|w| w.workspace_id == k.workspace_id)
                .map_or(k.workspace_id.as_str(), |w| w.name.as_str());
            KeyView::new(k, workspace, now)
        })
        .collect();
    Ok(ok(json!({ "keys": keys })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// The workspace's name.
    pub workspace: String,
    pub name: Option<String>,
    /// Only actions that do not write.
    #[serde(default)]
    pub read_only: bool,
    /// Action slugs or globs, such as `["list/*", "get/*"]`; absent: every action.
    pub actions: Option<Vec<String>>,
    /// Crisp website ids the key may act on; absent: those its workspace's accounts allow.
    pub websites: Option<Vec<String>>,
    /// Expire after this long: `30s`, `15m`, `12h`, `90d`.
    pub expires_in: Option<String>,
    /// Expire at this RFC 3339 time.
    pub expires_at: Option<String>,
    /// Calls allowed per day or month, such as `10000/day` or `50000/month`.
    pub quota: Option<String>,
}

/// A key as created: `key` is the secret, in this answer only.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// `sk_live_…`, shown once; null in a replay (`Idempotency-Key`), which never shows it again.
    pub key: Option<String>,
    /// What to do with `key`.
    pub note: String,
    #[serde(flatten)]
    pub details: KeyView,
}

const SHOWN_ONCE: &str = "The key is shown in this answer only; store it now. It cannot be shown again: if it is lost, rotate or revoke the key.";
const NOT_SHOWN_AGAIN: &str = "This is a replay of an earlier create (same Idempotency-Key): the key was shown once, in the first answer, and is not stored. If it was lost, revoke this key and create another.";

/// The answer to a key create or rotate: the secret once, and without it for replays.
fn key_answer(
    key: &crate::auth::GatewayKey,
    record: &ApiKeyRecord,
    workspace: &str,
) -> idempotency::Answer {
    let details = KeyView::new(record, workspace, crate::kernel::clock::now());
    let shown = CreatedKey {
        key: Some(key.reveal().to_owned()),
        note: SHOWN_ONCE.into(),
        details,
    };
    let mut stored = to_value(&shown);
    stored["key"] = Value::Null;
    stored["note"] = NOT_SHOWN_AGAIN.into();
    idempotency::Answer {
        status: StatusCode::CREATED,
        body: to_value(&shown),
        stored,
    }
}

/// Creates a key. Its secret is in this answer only. Accepts `Idempotency-Key`: a replay
/// answers the same key id and details with `key: null` (the secret is never stored).
#[utoipa::path(post, path = "/admin/v1/keys", tag = "keys", request_body = NewKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat answers the same key id without the secret.")),
    responses((status = 201, description = "Created.", body = CreatedKey), (status = 400, description = "A bad scope, website or expiry (the message says which).")))]
async fn create_key(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewKey = body(&raw)?;
    let store = &state.app.store;
    let websites = request
        .websites
        .as_ref()
        .map(|w| cases::check_websites("websites", w.iter().map(String::as_str)))
        .transpose()
        .map_err(cases::KeyError::from)?;
    let spec = KeySpec {
        name: request.name.clone(),
        read_only: request.read_only,
        actions: request
            .actions
            .as_ref()
            .map(|a| cases::check_action_globs(&a.join(",")))
            .transpose()?,
        expires_at: cases::key_expiry(request.expires_in.as_deref(), request.expires_at.as_deref())
            .map_err(|e| ApiError::bad_request(Reason::InvalidField, e))?,
        websites: websites.map(|w| w.join(",")),
        quota: request
            .quota
            .as_deref()
            .map(crate::admin::quota::parse_quota)
            .transpose()
            .map_err(|e| ApiError::bad_request(Reason::InvalidField, format!("quota: {e}")))?,
    };
    let workspace_id = records::workspace_id(store, &request.workspace).await?;
    idempotency::run(&state, &principal, &headers, "keys", &raw, || async {
        let key = cases::create_scoped_key(store, &workspace_id, &spec).await?;
        let record = store.find_key(&KeyId::from(key.id())).await?;
        audit_change(
            &state,
            &principal,
            &headers,
            "key/create",
            Some(&workspace_id),
            key.id(),
        );
        Ok(key_answer(&key, &record, &request.workspace))
    })
    .await
}

/// Revokes a key; every replica stops accepting it within about a second.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The answer.", body = KeyView), (status = 404, description = "No such key.")))]
async fn revoke_key(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let store = &state.app.store;
    let key_id = KeyId::from(id.as_str());
    records::revoke_key(store, &key_id).await?;
    let record = store.find_key(&key_id).await?;
    audit_change(
        &state,
        &principal,
        &headers,
        "key/revoke",
        Some(&record.workspace_id),
        &id,
    );
    let workspace = workspace_name(&state, &record.workspace_id).await?;
    Ok(ok(to_value(&KeyView::new(
        &record,
        &workspace,
        crate::kernel::clock::now(),
    ))))
}

async fn workspace_name(state: &ConsoleState, id: &WorkspaceId) -> Result<String, ApiError> {
    Ok(state
        .app
        .store
        .list_workspaces()
        .await?
        .into_iter()
        .find(|w| &w.workspace_id == id)
        .map_or_else(|| id.to_string(), |w| w.name))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old key keeps working: `0s`, `15m`, `24h` (the default).
    pub overlap: Option<String>,
    /// Expiry of the new key, such as `90d`; absent: it does not expire.
    pub expires_in: Option<String>,
}

/// Replaces a key with a new one of the same workspace and scopes; the old one keeps working
/// for the overlap. The new key's secret is in this answer only.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/rotate", tag = "keys", request_body = Rotation,
    params(("id" = String, Path, description = "The key to replace"),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeat answers the same new key id without the secret.")),
    responses((status = 201, description = "Created.", body = CreatedKey), (status = 404, description = "No such key."), (status = 409, description = "The key is already revoked or expired.")))]
async fn rotate_key(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: Rotation = body(&raw)?;
    let invalid = |e: String| ApiError::bad_request(Reason::InvalidField, e);
    let overlap = crate::kernel::clock::parse_duration(request.overlap.as_deref().unwrap_or("24h"))
        .map_err(invalid)?;
    let expires_at = cases::key_expiry(request.expires_in.as_deref(), None).map_err(invalid)?;
    let store = &state.app.store;
    let what = format!("keys/{id}/rotate");
    idempotency::run(&state, &principal, &headers, &what, &raw, || async {
        let key = cases::rotate_key(store, &KeyId::from(id.as_str()), overlap, expires_at).await?;
        let record = store.find_key(&KeyId::from(key.id())).await?;
        audit_change(
            &state,
            &principal,
            &headers,
            "key/rotate",
            Some(&record.workspace_id),
            &format!("{id} → {}", key.id()),
        );
        let workspace = workspace_name(&state, &record.workspace_id).await?;
        Ok(key_answer(&key, &record, &workspace))
    })
    .await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QuotaChange {
    /// Calls per day or month, such as `10000/day`; null lifts the quota.
    pub quota: Option<String>,
}

/// Sets or lifts a key's quota; every replica applies it within about a second. Calls
/// already counted this period still count.
#[utoipa::path(post, path = "/admin/v1/keys/{id}/quota", tag = "keys", request_body = QuotaChange,
    params(("id" = String, Path, description = "The key's id")),
    responses((status = 200, description = "The answer.", body = KeyView), (status = 404, description = "No such key.")))]
async fn set_quota(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let change: QuotaChange = body(&raw)?;
    let quota = change
        .quota
        .as_deref()
        .map(crate::admin::quota::parse_quota)
        .transpose()
        .map_err(|e| ApiError::bad_request(Reason::InvalidField, format!("quota: {e}")))?;
    let store = &state.app.store;
    let key_id = KeyId::from(id.as_str());
    crate::admin::quota::set_quota(store, &key_id, quota).await?;
    let record = store.find_key(&key_id).await?;
    audit_change(
        &state,
        &principal,
        &headers,
        "key/quota",
        Some(&record.workspace_id),
        &format!(
            "{id}: {}",
            quota.map_or_else(|| "none".to_owned(), crate::admin::quota::describe)
        ),
    );
    let workspace = workspace_name(&state, &record.workspace_id).await?;
    Ok(ok(to_value(&KeyView::new(
        &record,
        &workspace,
        crate::kernel::clock::now(),
    ))))
}

// ---- accounts --------------------------------------------------------------------------

/// A linked Crisp account; never its Crisp key.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub workspace: String,
    pub label: String,
    pub identifier: String,
    pub website_id: String,
    /// Every website calls may act on, its own first.
    pub websites: Vec<String>,
    /// `website`, `plugin` or `user`.
    pub tier: String,
    pub default: bool,
    pub created_at: String,
    /// Crisp calls per second across all replicas; `null`: the configured default.
    pub rate_limit: Option<f64>,
    /// Calls in flight at once across all replicas; `null`: the configured default.
    pub max_concurrency: Option<i64>,
}

impl AccountView {
    fn new(a: &AccountRecord, workspace: &str) -> Self {
        Self {
            id: a.crisp_account_id.to_string(),
            workspace: workspace.to_owned(),
            label: a.label.clone(),
            identifier: a.identifier.clone(),
            website_id: a.website_id.clone(),
            websites: crate::accounts::websites_of(a),
            tier: a.tier.to_string(),
            default: a.is_default,
            created_at: crate::kernel::clock::format(a.created_at),
            rate_limit: a.rate_limit,
            max_concurrency: a.max_concurrency,
        }
    }
}

/// The accounts linked to workspaces; never their Crisp keys.
#[utoipa::path(get, path = "/admin/v1/accounts", tag = "accounts", params(WorkspaceQuery),
    responses((status = 200, description = "`{\"accounts\": [AccountView]}`")))]
async fn list_accounts(
    State(state): State<ConsoleState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Response, ApiError> {
    let store = &state.app.store;
    let filter = records::workspace_filter(store, query.workspace.as_deref()).await?;
    let workspaces = store.list_workspaces().await?;
    let accounts: Vec<AccountView> = store
        .list_accounts(filter.as_ref())
        .await?
        .iter()
        .map(|a| {
            let workspace = workspaces
                .iter()
                .find(|w| w.workspace_id == a.workspace_id)
                .map_or(a.workspace_id.as_str(), |w| w.name.as_str());
            AccountView::new(a, workspace)
        })
        .collect();
    Ok(ok(json!({ "accounts": accounts })))
}

fn tier(text: Option<&str>) -> Result<Option<Tier>, ApiError> {
    text.map(|t| {
        t.parse::<Tier>()
            .map_err(|e| ApiError::bad_request(Reason::InvalidField, format!("tier: {e}")))
    })
    .transpose()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAccountBody {
    pub workspace: String,
    pub label: String,
    /// The Crisp token identifier.
    pub identifier: String,
    /// The Crisp token key: stored encrypted, never echoed.
    pub crisp_key: String,
    pub website_id: String,
    /// `website` (the default), `plugin` or `user`.
    pub tier: Option<String>,
    /// Make it the workspace's default account.
    #[serde(default)]
    pub default: bool,
    /// Other website ids the token may act on.
    pub websites: Option<Vec<String>>,
    /// The account's Crisp call rate across all replicas, such as `10/s` or `600/min`; by
    /// default the gateway's `account_rate_limit`.
    pub rate: Option<String>,
    /// How many calls may be in flight at once across all replicas; by default the gateway's
    /// `account_max_concurrency`.
    pub concurrency: Option<i64>,
}

/// A budget field as the admin API takes it: a clear 400 naming the field.
fn budget_field<T>(field: &str, parsed: Result<T, String>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::bad_request(Reason::InvalidField, format!("{field}: {e}")))
}

/// `absent` → `None`, `null` → `Some(None)`, a value → `Some(Some(value))`: a patch field that
/// can be reset to the default with `null`.
fn reset_or_set<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Links a Crisp account. The Crisp key is sealed with the master key and never echoed.
#[utoipa::path(post, path = "/admin/v1/accounts", tag = "accounts", request_body = NewAccountBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeat returns the first answer.")),
    responses((status = 201, description = "Created.", body = AccountView), (status = 409, description = "The label is taken in this workspace.")))]
async fn add_account(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewAccountBody = body(&raw)?;
    let store = &state.app.store;
    let websites = request
        .websites
        .as_ref()
        .map(|w| cases::check_websites("websites", w.iter().map(String::as_str)))
        .transpose()
        .map_err(cases::KeyError::from)?
        .unwrap_or_default();
    let tier = tier(request.tier.as_deref())?.unwrap_or(Tier::Website);
    if request.crisp_key.trim().is_empty() {
        return Err(ApiError::bad_request(
            Reason::MissingField,
            "crisp_key must not be empty: give the key of the Crisp token pair",
        ));
    }
    let budget = cases::AccountBudget {
        rate: request
            .rate
            .as_deref()
            .map(|r| budget_field("rate", cases::parse_rate(r)))
            .transpose()?,
        max_concurrency: request
            .concurrency
            .map(|n| budget_field("concurrency", cases::parse_concurrency(&n.to_string())))
            .transpose()?,
    };
    let workspace_id = records::workspace_id(store, &request.workspace).await?;
    let key = CrispKey::new(request.crisp_key.trim());
    idempotency::run(&state, &principal, &headers, "accounts", &raw, || async {
        let account = cases::add_account_with_websites(
            store,
            &state.app.vault,
            NewAccount {
                workspace_id: &workspace_id,
                label: &request.label,
                identifier: &request.identifier,
                website_id: &request.website_id,
                tier,
                is_default: request.default,
                key: &key,
            },
            &websites,
            budget,
        )
        .await?;
        audit_change(
            &state,
            &principal,
            &headers,
            "account/add",
            Some(&workspace_id),
            &format!("{} ({})", account.label, account.crisp_account_id),
        );
        let view = to_value(&AccountView::new(&account, &request.workspace));
        Ok(idempotency::Answer::same(StatusCode::CREATED, view))
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InWorkspace {
    /// The account's workspace (by name).
    pub workspace: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountPatch {
    pub label: Option<String>,
    pub website_id: Option<String>,
    pub tier: Option<String>,
    pub identifier: Option<String>,
    /// `true` makes it the workspace's default account.
    #[serde(default)]
    pub default: bool,
    /// Every website id the account may act on (its own is always allowed).
    pub websites: Option<Vec<String>>,
    /// A new Crisp key: stored encrypted, never echoed.
    pub crisp_key: Option<String>,
    /// A new call rate across all replicas (`10/s`, `600/min`); `null` returns to the default.
    #[serde(default, deserialize_with = "reset_or_set")]
    #[schema(value_type = Option<String>)]
    pub rate: Option<Option<String>>,
    /// A new ceiling on calls in flight across all replicas; `null` returns to the default.
    #[serde(default, deserialize_with = "reset_or_set")]
    #[schema(value_type = Option<i64>)]
    pub concurrency: Option<Option<i64>>,
}

/// Changes an account (found by id or label); running gateways pick it up within a second.
#[utoipa::path(patch, path = "/admin/v1/accounts/{id}", tag = "accounts", request_body = AccountPatch,
    params(("id" = String, Path, description = "The account's id or label"), InWorkspace),
    responses((status = 200, description = "The answer.", body = AccountView), (status = 404, description = "No such account in the workspace.")))]
async fn update_account(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<InWorkspace>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let patch: AccountPatch = body(&raw)?;
    let store = &state.app.store;
    let websites = patch
        .websites
        .as_ref()
        .map(|w| cases::check_websites("websites", w.iter().map(String::as_str)))
        .transpose()
        .map_err(cases::KeyError::from)?;
    let changes = AccountChanges {
        label: patch.label,
        website_id: patch.website_id,
        tier: tier(patch.tier.as_deref())?,
        identifier: patch.identifier,
        make_default: patch.default,
        websites,
        key: patch
            .crisp_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(CrispKey::new),
        rate_limit: patch
            .rate
            .map(|rate| {
                rate.map(|r| budget_field("rate", cases::parse_rate(&r)))
                    .transpose()
            })
            .transpose()?,
        max_concurrency: patch
            .concurrency
            .map(|n| {
                n.map(|n| budget_field("concurrency", cases::parse_concurrency(&n.to_string())))
                    .transpose()
            })
            .transpose()?,
    };
    let workspace_id = records::workspace_id(store, &query.workspace).await?;
    let account = crate::admin::accounts::update_account(
        store,
        &state.app.vault,
        &workspace_id,
        &id,
        changes,
    )
    .await?;
    audit_change(
        &state,
        &principal,
        &headers,
        "account/update",
        Some(&workspace_id),
        &format!("{} ({})", account.label, account.crisp_account_id),
    );
    Ok(ok(to_value(&AccountView::new(&account, &query.workspace))))
}

/// Unlinks an account (found by id or label).
#[utoipa::path(delete, path = "/admin/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path, description = "The account's id or label"), InWorkspace),
    responses((status = 200, description = "The answer.", body = AccountView), (status = 404, description = "No such account in the workspace.")))]
async fn remove_account(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<InWorkspace>,
) -> Result<Response, ApiError> {
    let store = &state.app.store;
    let workspace_id = records::workspace_id(store, &query.workspace).await?;
    let account = crate::admin::accounts::remove_account(store, &workspace_id, &id).await?;
    audit_change(
        &state,
        &principal,
        &headers,
        "account/remove",
        Some(&workspace_id),
        &format!("{} ({})", account.label, account.crisp_account_id),
    );
    Ok(ok(to_value(&AccountView::new(&account, &query.workspace))))
}

/// What testing an account found.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountTest {
    pub account: String,
    /// Whether calls with this account will work.
    pub works: bool,
    /// What Crisp answered, in plain words, and what to do about it.
    pub message: String,
}

/// Makes one cheap authenticated Crisp call with the account's credentials and says, in
/// plain words, whether they work (wrong key, wrong tier, plugin not installed, …).
#[utoipa::path(post, path = "/admin/v1/accounts/{id}/test", tag = "accounts",
    params(("id" = String, Path, description = "The account's id or label"), InWorkspace),
    responses((status = 200, description = "The answer.", body = AccountTest), (status = 404, description = "No such account in the workspace.")))]
async fn test_account(
    State(state): State<ConsoleState>,
    Path(id): Path<String>,
    Query(query): Query<InWorkspace>,
) -> Result<Response, ApiError> {
    let store = &state.app.store;
    let workspace_id = records::workspace_id(store, &query.workspace).await?;
    let tested = crate::admin::accounts::test_account(
        store,
        &state.app.vault,
        &state.checks,
        &workspace_id,
        &id,
    )
    .await?;
    Ok(ok(to_value(&AccountTest {
        account: tested.account.label.clone(),
        works: tested.verdict.works(),
        message: tested.explanation,
    })))
}

// ---- audit and reports -----------------------------------------------------------------

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this workspace (by name).
    pub workspace: Option<String>,
    /// Only this recent window: `30m`, `1h`, `7d`.
    pub since: Option<String>,
    /// Only actions matching this glob, such as `send/*` or `admin/*`.
    pub action: Option<String>,
    /// At most this many rows (100 by default, 1000 at most).
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRow {
    pub at: String,
    pub workspace_id: Option<String>,
    /// The key id (or, for `admin/…` rows, the admin token's id).
    pub key_id: Option<String>,
    pub account_id: Option<String>,
    pub action: String,
    pub status: i32,
    pub upstream_status: Option<i32>,
    pub duration_ms: i64,
    pub count: i64,
    pub request_id: String,
    pub reason: Option<String>,
    pub client: Option<String>,
}

/// The audit trail (writes, refusals and admin changes), newest first.
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "`{\"events\": [AuditRow]}`")))]
async fn audit(
    State(state): State<ConsoleState>,
    Query(params): Query<AuditParams>,
) -> Result<Response, ApiError> {
    let since = params
        .since
        .as_deref()
        .map(crate::kernel::clock::parse_duration)
        .transpose()
        .map_err(|e| ApiError::bad_request(Reason::InvalidQuery, format!("since: {e}")))?;
    let rows = records::audit(
        &state.app.store,
        &AuditQuery {
            workspace: params.workspace,
            since,
            action: params.action,
            limit: params.limit.unwrap_or(100).clamp(1, 1000),
        },
    )
    .await?;
    let events: Vec<AuditRow> = rows
        .into_iter()
        .map(|r| AuditRow {
            at: crate::kernel::clock::format(r.at),
            workspace_id: r.workspace_id.map(|w| w.to_string()),
            key_id: r.api_key_id.map(|k| k.to_string()),
            account_id: r.crisp_account_id.map(|a| a.to_string()),
            action: r.action,
            status: r.status,
            upstream_status: r.upstream_status,
            duration_ms: r.duration_ms,
            count: r.count,
            request_id: r.request_id,
            reason: r.reason,
            client: r.client,
        })
        .collect();
    Ok(ok(json!({ "events": events })))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// Only this workspace (by name).
    pub workspace: Option<String>,
    /// The UTC days overlapping this recent window: `1d`, `7d` (the default), `30d`.
    pub since: Option<String>,
    /// Add lines up by `key` (the default), `action` or `day`; for the series, `key` or `action`.
    pub by: Option<String>,
}

fn usage_query(params: UsageParams) -> Result<crate::admin::usage::UsageQuery, ApiError> {
    let invalid = |e: String| ApiError::bad_request(Reason::InvalidQuery, e);
    Ok(crate::admin::usage::UsageQuery {
        workspace: params.workspace,
        since: match params.since.as_deref() {
            Some(since) => crate::kernel::clock::parse_duration(since)
                .map_err(|e| invalid(format!("since: {e}")))?,
            None => crate::admin::usage::UsageQuery::default().since,
        },
        by: params
            .by
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(|e| invalid(format!("by: {e}")))?
            .unwrap_or_default(),
    })
}

/// Calls counted per key, action or UTC day: taken, refused, failed, and Crisp's answers.
#[utoipa::path(get, path = "/admin/v1/usage", tag = "usage", params(UsageParams),
    responses((status = 200, description = "`{\"lines\": [{workspace, key_id?, key_name?, action?, day?, calls, refused, failed, crisp_2xx, crisp_4xx, crisp_5xx, crisp_none, upstream_ms}]}`")))]
async fn usage(
    State(state): State<ConsoleState>,
    Query(params): Query<UsageParams>,
) -> Result<Response, ApiError> {
    let lines = crate::admin::usage::report(&state.app.store, &usage_query(params)?).await?;
    Ok(ok(json!({ "lines": lines })))
}

/// Calls per UTC day, one series per key or per action: what the console's chart draws.
#[utoipa::path(get, path = "/admin/v1/usage/series", tag = "usage", params(UsageParams),
    responses((status = 200, description = "The answer.", body = records::UsageSeries)))]
async fn usage_series(
    State(state): State<ConsoleState>,
    Query(params): Query<UsageParams>,
) -> Result<Response, ApiError> {
    let query = usage_query(params)?;
    let series = records::usage_series(&state.app.store, &query).await?;
    Ok(ok(to_value(&series)))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReportView {
    pub id: String,
    pub workspace_id: String,
    pub key_id: String,
    pub at: String,
    pub message: String,
    pub context: Option<String>,
    /// The conversation the caller attached, as JSON text.
    pub conversation: Option<String>,
}

/// What callers reported with `POST /api/crisp/report`, newest first.
#[utoipa::path(get, path = "/admin/v1/reports", tag = "reports", params(WorkspaceQuery),
    responses((status = 200, description = "`{\"reports\": [ReportView]}`")))]
async fn reports(
    State(state): State<ConsoleState>,
    Query(query): Query<WorkspaceQuery>,
) -> Result<Response, ApiError> {
    let reports: Vec<ReportView> = records::reports(&state.app.store, query.workspace.as_deref())
        .await?
        .into_iter()
        .map(|r| ReportView {
            id: r.report_id,
            workspace_id: r.workspace_id.to_string(),
            key_id: r.api_key_id.to_string(),
            at: crate::kernel::clock::format(r.at),
            message: r.message,
            context: r.context,
            conversation: r.conversation,
        })
        .collect();
    Ok(ok(json!({ "reports": reports })))
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
