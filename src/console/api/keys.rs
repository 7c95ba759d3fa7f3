//! Gateway keys: listed, created (the secret shown once), revoked, rotated, and their quotas.

use super::*;

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

pub(super) fn split(list: Option<&str>) -> Option<Vec<String>> {
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
pub(super) async fn list_keys(
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

pub(super) const SHOWN_ONCE: &str = "The key is shown in this answer only; store it now. It cannot be shown again: if it is lost, rotate or revoke the key.";
pub(super) const NOT_SHOWN_AGAIN: &str = "This is a replay of an earlier create (same Idempotency-Key): the key was shown once, in the first answer, and is not stored. If it was lost, revoke this key and create another.";

/// The answer to a key create or rotate: the secret once, and without it for replays.
pub(super) fn key_answer(
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
pub(super) async fn create_key(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewKey = body(&raw)?;
    let store = &state.app.store;
    let websites = websites(request.websites.as_deref())?;
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
pub(super) async fn revoke_key(
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

pub(super) async fn workspace_name(
    state: &ConsoleState,
    id: &WorkspaceId,
) -> Result<String, ApiError> {
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
pub(super) async fn rotate_key(
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
pub(super) async fn set_quota(
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
