//! One action call, from the caller's JSON to the result envelope; shared by every front end.

pub mod args;
mod envelope;
pub mod idempotency;
pub mod report;
pub mod shape;
mod tier;

use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::Account;
use crate::auth::Principal;
use crate::catalog::{Action, Method, Route};
use crate::error::{ApiError, Reason};
use crate::forward::{Reply, Safety, UpstreamRequest};
use crate::kernel::chunks::Chunks;
use crate::store::{AuditRecord, Store};
use http::StatusCode;

pub use args::Args;
pub use envelope::Envelope;

/// What one call did, for the audit trail.
#[derive(Default)]
struct Trace {
    account: Option<Arc<Account>>,
    upstream_status: Option<u16>,
    /// Crisp calls made for one request beyond the first (`pages`).
    more_pages: u32,
    /// When the call left for Crisp (its account's turn and retries included).
    upstream_started: Option<std::time::Instant>,
    /// Whether the call spent a call of its key's quota.
    spent_quota: bool,
}

/// What a call needs of the running gateway, lent by the composition root (`App::services`).
pub struct Services<'a> {
    pub store: &'a std::sync::Arc<dyn Store>,
    pub accounts: &'a crate::accounts::AccountCache,
    pub crisp: &'a crate::forward::CrispClient,
    pub key_limits: &'a crate::limits::KeyLimiter,
    pub quotas: &'a crate::limits::QuotaBook,
    pub auditor: &'a crate::audit::Auditor,
    /// The request deadline, counted from `Options::started`.
    pub request_timeout: std::time::Duration,
    /// How long a settled idempotency record answers repeats.
    pub idempotency_ttl: std::time::Duration,
    /// How long a write whose outcome is unknown keeps its key after its lease.
    pub idempotency_unknown_hold: std::time::Duration,
    /// The most pages one call may ask for.
    pub max_pages: u32,
}

/// How a call is made, beyond its arguments.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    pub request_id: &'a str,
    /// When the request arrived: the call's deadline runs from here.
    pub started: std::time::Instant,
    /// The caller's `Idempotency-Key`, on a write: the gateway holds its record, which makes
    /// POST and PATCH safe to retry upstream and lets repeats be answered from the record.
    pub idempotency: Option<&'a idempotency::Key>,
}

/// What a call answers: a fresh result, or (under an `Idempotency-Key`) the answer the first
/// request with that key stored, for the front end to replay as it was.
#[derive(Debug)]
pub enum Answer {
    Fresh(Envelope),
    Replayed(idempotency::Stored),
}

/// Runs an action for a principal and returns the success envelope. Writes, and
/// calls that fail, are audited.
pub async fn execute(
    app: &Services<'_>,
    principal: &Principal,
    action: &Action,
    args: Args,
    request_id: &str,
    started: std::time::Instant,
) -> Result<Envelope, ApiError> {
    let options = Options {
        request_id,
        started,
        idempotency: None,
    };
    match execute_with(app, principal, action, args, options).await? {
        Answer::Fresh(envelope) => Ok(envelope),
        Answer::Replayed(_) => Err(ApiError::Internal(
            "a call without an Idempotency-Key was answered from a record".into(),
        )),
    }
}

/// Runs an action; with an `Idempotency-Key`, a repeat is answered from the key's record. The
/// key's rate limit, its scope, the account and the arguments are checked first either way,
/// so a repeat is refused, limited and audited as the same call without the key would be.
pub async fn execute_with(
    app: &Services<'_>,
    principal: &Principal,
    action: &Action,
    args: Args,
    options: Options<'_>,
) -> Result<Answer, ApiError> {
    let request_id = options.request_id;
    let started = options.started;
    let mut trace = Trace::default();
    let result = run(app, principal, action, args, options, started, &mut trace).await;
    let (status, reason) = match &result {
        Ok(Answer::Fresh(_)) => (StatusCode::OK, None),
        Ok(Answer::Replayed(stored)) => (stored.status, Some(Reason::IdempotentReplay.as_str())),
        Err(e) => (e.status(), Some(e.reason())),
    };
    count(app, principal, action, status, &trace);
    crate::telemetry::note_call(|info| {
        info.account = trace.account.clone().map(|account| account as _);
        info.upstream_status = trace.upstream_status;
        info.upstream_calls = (trace.more_pages > 0).then(|| trace.more_pages + 1);
    });
    if let (Err(e), true, None, Some(quota)) = (
        &result,
        trace.spent_quota,
        trace.upstream_status,
        principal.quota,
    ) && e.status().is_client_error()
    {
        // Refused after the quota was spent but before Crisp was asked (the account's
        // budget, an idempotency conflict): such a call does not count.
        app.quotas.refund(principal.key_id.as_str(), quota);
    }
    let refused = match &result {
        // Refused before Crisp was asked: counted per reason, key and minute, not a row each.
        Err(e) if trace.upstream_status.is_none() && status.is_client_error() => Some(e),
        _ => None,
    };
    if let Some(error) = refused {
        app.auditor.refused(&crate::audit::Refusal {
            reason: error.reason(),
            status: status.as_u16(),
            workspace_id: Some(principal.workspace_id.as_str()),
            key_id: Some(principal.key_id.as_str()),
            client: None,
            action: action.slug,
            request_id,
        });
    } else if action.write || result.is_err() || trace.more_pages > 0 {
        // A read of several pages is audited too, one row counting its Crisp calls.
        app.auditor.record(AuditRecord {
            at: crate::kernel::clock::now(),
            workspace_id: Some(principal.workspace_id.clone()),
            api_key_id: Some(principal.key_id.clone()),
            crisp_account_id: trace.account.map(|account| account.id.clone()),
            action: action.slug.to_owned(),
            status: i32::from(status.as_u16()),
            upstream_status: trace.upstream_status.map(i32::from),
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            request_id: request_id.to_owned(),
            reason: reason.map(str::to_owned),
            count: i64::from(trace.more_pages) + 1,
            client: None,
        });
    }
    result
}

/// Counts a call in the key's usage.
fn count(
    app: &Services<'_>,
    principal: &Principal,
    action: &Action,
    status: StatusCode,
    trace: &Trace,
) {
    app.auditor.count(&crate::audit::CallCount {
        workspace_id: &principal.workspace_id,
        key_id: &principal.key_id,
        action: action.slug,
        status: status.as_u16(),
        upstream_status: trace.upstream_status,
        upstream_ms: trace.upstream_started.map_or(0, |at| {
            u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)
        }),
        at: crate::kernel::clock::now(),
    });
}

/// Counts, in the key's usage, a call its front end refused before it could be made (a body
/// that does not parse, a malformed `Idempotency-Key`).
pub fn count_refused(app: &Services<'_>, principal: &Principal, action: &Action, error: &ApiError) {
    count(app, principal, action, error.status(), &Trace::default());
}

// A plain function returning an `async move` block, not an `async fn`: an `async fn` keeps
// each argument twice in its future (the argument and the local it is moved into), and this
// future is held for as long as Crisp takes to answer.
#[allow(clippy::manual_async_fn)]
fn run(
    app: &Services<'_>,
    principal: &Principal,
    action: &Action,
    mut args: Args,
    options: Options<'_>,
    started: std::time::Instant,
    trace: &mut Trace,
) -> impl Future<Output = Result<Answer, ApiError>> {
    async move {
        app.key_limits
            .check(principal.key_id.as_str())
            .map_err(|retry_after| ApiError::RateLimited { retry_after })?;
        principal.scope.check(action)?;
        let Some(route) = &action.route else {
            return list_accounts(app, principal, action, args.account.as_deref())
                .await
                .map(Answer::Fresh);
        };
        let account = app
            .accounts
            .pick(&principal.workspace_id, args.account.as_deref())
            .await?;
        trace.account = Some(account.clone());
        tier::check(action, &account)?;
        if action.param("websiteID").is_some() {
            let website = args.path_value("websiteID").unwrap_or(&account.website_id);
            // The key's own narrowing first: it is what the caller can change.
            principal.scope.check_website(website)?;
            account.check_website(website)?;
        }
        // After every refusal about who may call what: those say more than a body's detail.
        if let Some(problem) = args.body_problem.take() {
            return Err(ApiError::bad_request(Reason::InvalidBody, problem));
        }
        // Measured only when the values could make it long; the bound leaves room for the
        // route's own text and the base URL.
        let longest = (args.url_bytes_at_most() + 1024 > args::MAX_UPSTREAM_URL)
            .then(|| args.longest_value())
            .flatten();
        if let Some(pages) = args.pages
            && pages > app.max_pages
        {
            return Err(ApiError::bad_request(
                Reason::InvalidField,
                format!(
                    "`pages` is at most {} (each page is a Crisp call); ask again from `pageNumber` {} for the rest.",
                    app.max_pages,
                    args.path_value("pageNumber").unwrap_or("1")
                ),
            ));
        }
        let dry_run = args.dry_run;
        let fields = args.fields.take();
        // The paths of the later pages, when the caller asked for several.
        let more_pages: Vec<(u32, String)> = match args.pages {
            Some(pages) if pages > 1 => {
                let first: u32 = args
                    .path_value("pageNumber")
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(1);
                (1..pages)
                    .map(|i| {
                        let page = first.saturating_add(i);
                        (
                            page,
                            render_path(route, &args, &account, Some(&page.to_string())),
                        )
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        let request = upstream_request(route, args, &account);
        if let Some((name, value_len)) = longest {
            let url_len = app.crisp.url(&request).len();
            if url_len > args::MAX_UPSTREAM_URL {
                return Err(ApiError::bad_request(
                    Reason::UrlTooLong,
                    format!(
                        "The URL this call would send to Crisp is {url_len} bytes, over the gateway's limit of {} bytes; \
                         the longest value is `{name}` ({value_len} bytes). Send shorter values.",
                        args::MAX_UPSTREAM_URL
                    ),
                ));
            }
        }
        // Leave the tower timeout a moment, so a slow Crisp is answered as `crisp_timeout`.
        let deadline = started
            + app
                .request_timeout
                .saturating_sub(std::time::Duration::from_millis(250));
        let upstream = Upstream {
            account: &account,
            request: &request,
            request_id: options.request_id,
            safety: Safety::of(route.method, options.idempotency.is_some()),
            deadline,
        };
        if dry_run {
            return Ok(Answer::Fresh(dry_run_envelope(
                app, action, &account, &request,
            )));
        }
        // Last of the checks, so only calls the gateway admits spend the key's quota.
        if let Some(quota) = principal.quota {
            spend_quota(app, principal, quota).await?;
            trace.spent_quota = true;
        }
        trace.upstream_started = Some(std::time::Instant::now());
        // The two rarer paths are boxed: a future is as large as its largest branch, and this one
        // is held for as long as Crisp takes to answer, for every call in flight.
        if let Some(key) = options.idempotency {
            return Box::pin(idempotency::run(
                app, principal, action, key, &upstream, trace,
            ))
            .await;
        }
        if !more_pages.is_empty() || fields.is_some() {
            return Box::pin(reshaped(
                app,
                action,
                &upstream,
                more_pages,
                fields.as_ref(),
                trace,
            ))
            .await
            .map(Answer::Fresh);
        }
        let reply = app
            .crisp
            .send(
                upstream.account,
                upstream.request,
                upstream.request_id,
                upstream.safety,
                upstream.deadline,
            )
            .await;
        trace.upstream_status = upstream_status(&reply);
        let reply = reply.map_err(|e| tier::answer(action, &account, e))?;
        Ok(Answer::Fresh(envelope(action, reply)))
    }
}

/// Spends one call of the key's quota, or refuses the call until the period ends.
async fn spend_quota(
    app: &Services<'_>,
    principal: &Principal,
    quota: crate::store::Quota,
) -> Result<(), ApiError> {
    match app.quotas.spend(&principal.key_id, quota).await {
        Ok(()) => Ok(()),
        Err(crate::limits::QuotaError::Exceeded(exceeded)) => {
            let wait = exceeded.resets_at - crate::kernel::clock::now();
            Err(ApiError::QuotaExceeded {
                limit: quota.limit,
                period: quota.period.as_str(),
                resets_at: exceeded.resets_at,
                retry_after: std::time::Duration::from_secs(u64::try_from(wait).unwrap_or(1)),
            })
        }
        Err(crate::limits::QuotaError::Store(e)) => Err(e.into()),
    }
}

/// A call ready to leave for Crisp.
struct Upstream<'a> {
    account: &'a Account,
    request: &'a UpstreamRequest,
    request_id: &'a str,
    safety: Safety,
    deadline: std::time::Instant,
}

fn upstream_status(reply: &Result<Reply, crate::forward::UpstreamError>) -> Option<u16> {
    match reply {
        Ok(reply) => Some(reply.status()),
        Err(e) => e.upstream_status(),
    }
}

fn envelope(action: &Action, reply: Reply) -> Envelope {
    match reply {
        Reply::Data { data, .. } => Envelope::new(action, data),
        Reply::Exists { exists, .. } => Envelope::new(
            action,
            Bytes::from_static(if exists {
                b"{\"exists\":true}"
            } else {
                b"{\"exists\":false}"
            }),
        ),
    }
}

/// The Crisp path with the caller's values and the account's defaults; `page` overrides
/// `pageNumber`.
fn render_path(route: &Route, args: &Args, account: &Account, page: Option<&str>) -> String {
    route.path.render(|name| match (name, page) {
        ("pageNumber", Some(page)) => page,
        _ => match args.path_value(name) {
            Some(value) => value,
            None if name == "websiteID" => &account.website_id,
            // `pageNumber` is the only other optional path parameter; Crisp pages start at 1.
            None => "1",
        },
    })
}

/// Fills the route with the caller's values and the account's defaults.
pub fn upstream_request(route: &Route, args: Args, account: &Account) -> UpstreamRequest {
    let path = render_path(route, &args, account, None);
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

/// A dry run's answer: the Crisp request exactly as it would leave, and the account it would
/// leave with (never its key).
fn dry_run_envelope(
    app: &Services<'_>,
    action: &Action,
    account: &Account,
    request: &UpstreamRequest,
) -> Envelope {
    let body = request
        .body
        .as_ref()
        .map(|b| serde_json::from_slice::<serde_json::Value>(b).unwrap_or(serde_json::Value::Null));
    let query: serde_json::Map<String, serde_json::Value> = request
        .query
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let result = serde_json::json!({
        "dry_run": true,
        "sent": false,
        "account": {"id": account.id.as_str(), "label": account.label, "tier": account.tier.as_str()},
        "method": request.method.as_str(),
        "url": app.crisp.url(request),
        "path": request.path,
        "query": query,
        "body": body,
    });
    Envelope::new(action, Bytes::from(result.to_string()))
}

/// A read whose result the caller asked to reshape: several pages merged into one list (with
/// `next_page` while more remain), and only the listed fields of each item. Each page is its
/// own Crisp call, under the account's budget like any other.
async fn reshaped(
    app: &Services<'_>,
    action: &Action,
    first: &Upstream<'_>,
    more_pages: Vec<(u32, String)>,
    fields: Option<&shape::Fields>,
    trace: &mut Trace,
) -> Result<Envelope, ApiError> {
    let send = |request: UpstreamRequest| async move {
        app.crisp
            .send(
                first.account,
                &request,
                first.request_id,
                first.safety,
                first.deadline,
            )
            .await
    };
    let parse = |data: &Chunks| {
        serde_json::from_slice::<serde_json::Value>(&data.to_bytes()).map_err(|_| {
            ApiError::from(crate::forward::UpstreamError::InvalidResponse { status: 200 })
        })
    };
    let reply = send(first.request.clone()).await;
    trace.upstream_status = upstream_status(&reply);
    let reply = reply.map_err(|e| tier::answer(action, first.account, e))?;
    let Reply::Data { data, .. } = reply else {
        return Ok(envelope(action, reply));
    };
    let mut result = parse(&data)?;
    let mut next_page = None;
    if let serde_json::Value::Array(items) = &mut result {
        let mut last_full = !items.is_empty();
        for (page, path) in more_pages {
            if !last_full {
                break;
            }
            let request = UpstreamRequest {
                path,
                ..first.request.clone()
            };
            let reply = send(request).await;
            trace.upstream_status = upstream_status(&reply);
            let reply = reply.map_err(|e| tier::answer(action, first.account, e))?;
            let Reply::Data { data, .. } = reply else {
                break;
            };
            trace.more_pages += 1;
            match parse(&data)? {
                serde_json::Value::Array(more) if !more.is_empty() => {
                    items.extend(more);
                    next_page = Some(page + 1);
                }
                // An empty page ends the list early.
                _ => {
                    last_full = false;
                    next_page = None;
                }
            }
        }
    }
    if let Some(fields) = fields {
        result = fields.project(result);
    }
    let envelope = Envelope::new(action, Bytes::from(result.to_string()));
    Ok(match next_page {
        Some(page) => envelope.with_next_page(page),
        None => envelope,
    })
}

async fn list_accounts(
    app: &Services<'_>,
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
    Ok(Envelope::new(action, Bytes::from(json)))
}
