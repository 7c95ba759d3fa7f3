//! What happened: the audit trail, usage counts and their series for the chart, and reports.

use super::*;

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
pub(super) async fn audit(
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

pub(super) fn usage_query(
    params: UsageParams,
) -> Result<crate::admin::usage::UsageQuery, ApiError> {
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
pub(super) async fn usage(
    State(state): State<ConsoleState>,
    Query(params): Query<UsageParams>,
) -> Result<Response, ApiError> {
    let lines = crate::admin::usage::report(&state.app.store, &usage_query(params)?).await?;
    Ok(ok(json!({ "lines": lines })))
}

/// The longest window the chart draws: it has an entry for every day of it.
const SERIES_DAYS: u64 = 366;

/// Calls per UTC day, one series per key or per action: what the console's chart draws.
#[utoipa::path(get, path = "/admin/v1/usage/series", tag = "usage", params(UsageParams),
    responses((status = 200, description = "The answer.", body = records::UsageSeries),
        (status = 400, description = "A bad parameter, or `since` longer than 366 days.")))]
pub(super) async fn usage_series(
    State(state): State<ConsoleState>,
    Query(params): Query<UsageParams>,
) -> Result<Response, ApiError> {
    let query = usage_query(params)?;
    if query.since.as_secs() > SERIES_DAYS * 86_400 {
        return Err(ApiError::bad_request(
            Reason::InvalidQuery,
            format!(
                "since: the chart draws at most {SERIES_DAYS} days (one entry per day); ask for \
                 `since=365d` or less, or use /admin/v1/usage for a longer total"
            ),
        ));
    }
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
pub(super) async fn reports(
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
