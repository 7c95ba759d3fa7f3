//! Crisp accounts: listed, added (the Crisp key never echoed), updated with their budgets, removed and tested.

use super::*;

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
pub(super) async fn list_accounts(
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

/// The `websites` field of a body, checked as the CLI checks `--websites`.
pub(super) fn websites(list: Option<&[String]>) -> Result<Option<Vec<String>>, ApiError> {
    list.map(|w| cases::check_websites("websites", w.iter().map(String::as_str)))
        .transpose()
        .map_err(|e| cases::KeyError::from(e).into())
}

pub(super) fn tier(text: Option<&str>) -> Result<Option<Tier>, ApiError> {
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
pub(super) fn budget_field<T>(field: &str, parsed: Result<T, String>) -> Result<T, ApiError> {
    parsed.map_err(|e| ApiError::bad_request(Reason::InvalidField, format!("{field}: {e}")))
}

/// `absent` → `None`, `null` → `Some(None)`, a value → `Some(Some(value))`: a patch field that
/// can be reset to the default with `null`.
pub(super) fn reset_or_set<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
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
pub(super) async fn add_account(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let request: NewAccountBody = body(&raw)?;
    let store = &state.app.store;
    let websites = websites(request.websites.as_deref())?.unwrap_or_default();
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
pub(super) async fn update_account(
    State(state): State<ConsoleState>,
    Extension(principal): Extension<AdminPrincipal>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<InWorkspace>,
    raw: Bytes,
) -> Result<Response, ApiError> {
    let patch: AccountPatch = body(&raw)?;
    let store = &state.app.store;
    let websites = websites(patch.websites.as_deref())?;
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
pub(super) async fn remove_account(
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
pub(super) async fn test_account(
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
