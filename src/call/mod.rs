//! One action call, from the caller's JSON to the result envelope; shared by every front end.

pub mod args;
mod envelope;
pub mod idempotency;

use bytes::Bytes;

use crate::accounts::Account;
use crate::app::App;
use crate::auth::Principal;
use crate::catalog::{Action, Method, Route};
use crate::error::ApiError;
use crate::forward::{Reply, Safety, UpstreamRequest};
use crate::store::AuditRecord;
use axum::http::StatusCode;

pub use args::Args;
pub use envelope::Envelope;

/// What one call did, for the audit trail.
#[derive(Default)]
struct Trace {
    account_id: Option<String>,
    upstream_status: Option<u16>,
}

/// How a call is made, beyond its arguments.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options<'a> {
    pub request_id: &'a str,
    /// The caller sent an `Idempotency-Key` (and the gateway holds its record), which makes
    /// POST and PATCH safe to retry upstream.
    pub idempotent: bool,
}

/// Runs an action for a principal and returns the success envelope. Writes, and
/// calls that fail, are audited.
pub async fn execute(
    app: &App,
    principal: &Principal,
    action: &Action,
    args: Args,
    request_id: &str,
) -> Result<Envelope, ApiError> {
    execute_with(
        app,
        principal,
        action,
        args,
        Options {
            request_id,
            idempotent: false,
        },
    )
    .await
}

pub async fn execute_with(
    app: &App,
    principal: &Principal,
    action: &Action,
    args: Args,
    options: Options<'_>,
) -> Result<Envelope, ApiError> {
    let request_id = options.request_id;
    let started = crate::telemetry::request_started().unwrap_or_else(std::time::Instant::now);
    let mut trace = Trace::default();
    let result = run(app, principal, action, args, options, started, &mut trace).await;
    let status = result
        .as_ref()
        .map_or_else(ApiError::status, |_| StatusCode::OK);
    crate::telemetry::note_call(|info| {
        info.account_id.clone_from(&trace.account_id);
        info.upstream_status = trace.upstream_status;
    });
    if action.write || result.is_err() {
        app.auditor.record(AuditRecord {
            at: crate::clock::now(),
            workspace_id: Some(principal.workspace_id.clone()),
            api_key_id: Some(principal.key_id.clone()),
            crisp_account_id: trace.account_id,
            action: action.slug.to_owned(),
            status: i32::from(status.as_u16()),
            upstream_status: trace.upstream_status.map(i32::from),
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            request_id: request_id.to_owned(),
            reason: result.as_ref().err().map(|e| e.reason().to_owned()),
        });
    }
    result
}

async fn run(
    app: &App,
    principal: &Principal,
    action: &Action,
    args: Args,
    options: Options<'_>,
    started: std::time::Instant,
    trace: &mut Trace,
) -> Result<Envelope, ApiError> {
    app.key_limits
        .check(&principal.key_id)
        .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
    principal.scope.check(action)?;
    let Some(route) = &action.route else {
        return list_accounts(app, principal, action, args.account.as_deref()).await;
    };
    let account = app
        .accounts
        .pick(&principal.workspace_id, args.account.as_deref())
        .await?;
    trace.account_id = Some(account.id.clone());
    if action.param("websiteID").is_some() {
        let website = args.path_value("websiteID").unwrap_or(&account.website_id);
        // The key's own narrowing first: it is what the caller can change.
        principal.scope.check_website(website)?;
        account.check_website(website)?;
    }
    let request = upstream_request(route, args, &account);
    let safety = Safety::of(route.method, options.idempotent);
    // Leave the tower timeout a moment, so a slow Crisp is answered as `crisp_timeout`.
    let deadline = started
        + app
            .config
            .request_timeout
            .saturating_sub(std::time::Duration::from_millis(250));
    let reply = app
        .crisp
        .send(&account, &request, options.request_id, safety, deadline)
        .await;
    trace.upstream_status = match &reply {
        Ok(reply) => Some(reply.status()),
        Err(e) => e.upstream_status(),
    };
    Ok(match reply? {
        Reply::Data { data, .. } => Envelope::new(action, data),
        Reply::Exists { exists, .. } => Envelope::new(
            action,
            Bytes::from_static(if exists {
                b"{\"exists\":true}"
            } else {
                b"{\"exists\":false}"
            }),
        ),
    })
}

/// Fills the route with the caller's values and the account's defaults.
pub fn upstream_request(route: &Route, args: Args, account: &Account) -> UpstreamRequest {
    let path = route.path.render(|name| match args.path_value(name) {
        Some(value) => value,
        None if name == "websiteID" => &account.website_id,
        // `pageNumber` is the only other optional path parameter; Crisp pages start at 1.
        None => "1",
    });
    let body = match route.method {
        Method::Get | Method::Head => None,
        // Crisp's Node client sends `{}` when a write has no payload; DELETE sends none.
        Method::Post | Method::Put | Method::Patch => {
            Some(args.body.unwrap_or_else(|| Bytes::from_static(b"{}")))
        }
        Method::Delete => args.body,
    };
    UpstreamRequest {
        method: route.method,
        path,
        query: if route.method.is_write() {
            Vec::new()
        } else {
            args.query
        },
        body,
    }
}

async fn list_accounts(
    app: &App,
    principal: &Principal,
    action: &Action,
    wanted: Option<&str>,
) -> Result<Envelope, ApiError> {
    let accounts = app.accounts.for_workspace(&principal.workspace_id).await?;
    let views: Vec<_> = match wanted {
        Some(_) => vec![crate::accounts::choose(&accounts, wanted)?.view()],
        None => accounts.iter().map(|a| a.view()).collect(),
    };
    let json = serde_json::to_vec(&views).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Envelope::new(action, json.into()))
}
