//! A local stand-in for Crisp's REST API v1, for `demo`, for tests, and for trying clients
//! safely.
//!
//! It serves every catalog route under `/v1` the way Crisp frames answers
//! (`{"error":…,"reason":…,"data":…}`), insists on Basic credentials and a valid
//! `X-Crisp-Tier` (refusing a route the tier may not call, as Crisp does), keeps the everyday
//! resources (conversations, messages, people, operators, settings, teams, the Knowledge Base
//! tree) in memory, and answers every other route with a well-formed envelope holding the least
//! value of the catalog's result type.

mod answer;
mod conversations;
mod counts;
mod faults;
mod knowledge;
mod messages;
mod operators;
mod people;
mod seed;
mod settings;
mod state;
mod teams;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::accounts::Tier;
use crate::catalog::{Action, CATALOG, Method, Segment};
use crate::http::server::ConnectionLimits;

pub use answer::Answer;
pub use faults::{Faults, Latency, RateLimit, parse_error_rate, parse_latency, parse_rate_limit};
pub use seed::{Seed, SeedAccount};

use answer::Checked;
use faults::Injector;
use state::Store;

/// How a sandbox starts: open (any credentials, websites made on first use) or seeded, and
/// which faults it injects.
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub seed: Option<Seed>,
    pub faults: Faults,
    /// Answer every catalog route with the least value of its result type and keep nothing (a
    /// contract stub; credentials and tiers are still checked).
    pub stateless: bool,
    /// Count calls per 100 ms and serve the counts at `GET /_sandbox/calls`.
    pub count_calls: bool,
}

struct Sandbox {
    store: Store,
    /// `None`: any identifier/key pair is accepted and websites spring into being.
    accounts: Option<Vec<SeedAccount>>,
    faults: Injector,
    stateless: bool,
    counts: Option<counts::Counts>,
}

pub fn router(config: SandboxConfig) -> Router {
    let (accounts, store) = match config.seed {
        Some(seed) => (Some(seed.accounts), Store::with(seed.websites)),
        None => (None, Store::default()),
    };
    let sandbox = Arc::new(Sandbox {
        store,
        accounts,
        faults: Injector::new(config.faults),
        stateless: config.stateless,
        counts: config.count_calls.then(counts::Counts::default),
    });
    let mut router = Router::new();
    if config.count_calls {
        router = router.route(
            "/_sandbox/calls",
            axum::routing::get(|State(sandbox): State<Arc<Sandbox>>| async move {
                let report = sandbox.counts.as_ref().map(counts::Counts::report);
                axum::Json(report.unwrap_or_default())
            }),
        );
    }
    router.fallback(answer).with_state(sandbox)
}

/// Serves the sandbox on `listener` in the background; returns its base URL (with `/v1`).
pub fn spawn(
    listener: TcpListener,
    config: SandboxConfig,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    spawn_with_limits(listener, config, ConnectionLimits::default())
}

/// [`spawn`], with its own connection limits.
pub fn spawn_with_limits(
    listener: TcpListener,
    config: SandboxConfig,
    limits: ConnectionLimits,
) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let addr: SocketAddr = listener.local_addr()?;
    let router = router(config);
    let handle = tokio::spawn(crate::http::server::serve(
        listener,
        router,
        limits,
        "sandbox",
        std::future::pending(),
    ));
    Ok((format!("http://{addr}/v1"), handle))
}

/// One call, matched to its catalog action.
pub struct Call {
    pub slug: &'static str,
    pub params: Vec<(&'static str, String)>,
    pub query: HashMap<String, String>,
    /// The JSON body; `{}` when none was sent.
    pub body: Value,
}

impl Call {
    pub fn param(&self, name: &str) -> &str {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The 1-based page number from the path.
    pub fn page(&self) -> Checked<usize> {
        self.param("pageNumber")
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| Answer::invalid("data.page_number should be >= 1"))
    }

    /// `per_page`: 20 to 50, 20 when absent.
    pub fn per_page(&self) -> Checked<usize> {
        match self.query.get("per_page") {
            None => Ok(20),
            Some(raw) => match raw.parse::<usize>() {
                Ok(n) if (20..=50).contains(&n) => Ok(n),
                Ok(n) if n < 20 => Err(Answer::invalid("data.per_page should be >= 20")),
                Ok(_) => Err(Answer::invalid("data.per_page should be <= 50")),
                Err(_) => Err(Answer::invalid("data.per_page should be number")),
            },
        }
    }
}

fn credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let decoded = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())?;
    let (id, key) = decoded.split_once(':')?;
    (!id.is_empty() && !key.is_empty()).then(|| (id.to_owned(), key.to_owned()))
}

fn unauthorized() -> Answer {
    Answer::error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "the identifier/key pair or the tier is not valid",
    )
}

async fn answer(State(sandbox): State<Arc<Sandbox>>, request: Request) -> Response {
    if let Some(counts) = &sandbox.counts {
        counts.record();
    }
    if let Some(delay) = sandbox.faults.delay() {
        tokio::time::sleep(delay).await;
    }
    let method = match *request.method() {
        HttpMethod::GET => Method::Get,
        HttpMethod::HEAD => Method::Head,
        HttpMethod::POST => Method::Post,
        HttpMethod::PUT => Method::Put,
        HttpMethod::PATCH => Method::Patch,
        HttpMethod::DELETE => Method::Delete,
        _ => return Answer::no_route().into_response(),
    };
    let answer = respond(&sandbox, method, request).await;
    if method == Method::Head {
        // HEAD answers with existence alone: the status, no body.
        return answer.status.into_response();
    }
    answer.into_response()
}

async fn respond(sandbox: &Sandbox, method: Method, request: Request) -> Answer {
    let Some(path) = request.uri().path().strip_prefix("/v1") else {
        return Answer::no_route();
    };
    // Routes that share a method and path (`batch/remove/…`) differ only in their body;
    // the first is enough to route the call.
    let matched = CATALOG.actions().iter().find_map(|a| {
        let route = a.route.as_ref()?;
        (route.method == method)
            .then(|| route.path.matches(path))
            .flatten()
            .map(|params| (a, params))
    });
    let Some((action, params)) = matched else {
        return Answer::no_route();
    };
    if let Some(fault) = sandbox.faults.fault() {
        return fault;
    }
    let Some((identifier, key)) = credentials(request.headers()) else {
        return unauthorized();
    };
    let Some(tier) = request
        .headers()
        .get("x-crisp-tier")
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.parse::<Tier>().ok())
    else {
        return unauthorized();
    };
    let account = match &sandbox.accounts {
        None => None,
        Some(accounts) => {
            let found = accounts
                .iter()
                .find(|a| a.identifier == identifier && a.key == key && a.tier == tier);
            match found {
                Some(account) => Some(account),
                None => return unauthorized(),
            }
        }
    };
    if !action.allows(tier) {
        return restricted_route_tier();
    }
    if sandbox.stateless {
        return generic(action, method);
    }
    let query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .map(|q| q.0)
        .unwrap_or_default();
    let body = match axum::body::to_bytes(request.into_body(), 4 << 20).await {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => json!({}),
        Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(value) => value,
            Err(_) => return Answer::invalid("data should be object"),
        },
        Err(_) => return Answer::invalid("the request body is too large"),
    };
    let call = Call {
        slug: action.slug,
        params,
        query,
        body,
    };
    let website_id = call.param("websiteID").to_owned();
    if website_id.is_empty() {
        return generic(action, method);
    }
    if let Some(account) = account {
        if !sandbox.store.contains(&website_id) {
            return Answer::not_found("website");
        }
        if !account.websites.contains(&website_id) {
            return match account.tier {
                // Marketplace tokens reach a website only once the plugin is installed there.
                Tier::Plugin => Answer::error(
                    StatusCode::NOT_FOUND,
                    "not_subscribed",
                    "the plugin is not subscribed to this website",
                ),
                _ => Answer::error(
                    StatusCode::FORBIDDEN,
                    "not_allowed",
                    "this token may not access this website",
                ),
            };
        }
    }
    let handled = sandbox
        .store
        .with_website(&website_id, account.is_none(), |site| {
            conversations::handle(&call, site)
                .or_else(|| messages::handle(&call, site))
                .or_else(|| people::handle(&call, site))
                .or_else(|| operators::handle(&call, site))
                .or_else(|| settings::handle(&call, site))
                .or_else(|| teams::handle(&call, site))
                .or_else(|| knowledge::handle(&call, site))
                .or_else(|| unknown_resource(&call, site))
        });
    match handled {
        None => Answer::not_found("website"),
        Some(None) => generic(action, method),
        Some(Some(Ok(answer) | Err(answer))) => answer,
    }
}

/// A route the sandbox keeps no state for still names a conversation or a profile that must
/// exist, as in Crisp.
fn unknown_resource(call: &Call, site: &mut state::Website) -> Option<Checked<Answer>> {
    let session = call.param("sessionID");
    if !session.is_empty() && site.conversation(session).is_err() {
        return Some(Err(Answer::not_found("conversation")));
    }
    let people = call.param("peopleID");
    if !people.is_empty() && site.profile(people).is_err() {
        return Some(Err(Answer::not_found("people profile")));
    }
    None
}

/// Crisp's refusal of a route the token's tier may not call (node-crisp-api issue #56 shows the
/// reason). Crisp does not document the status; 403 is the sensible guess: the credentials are
/// good, the route is not theirs. The catalog's `tiers` say which tiers a route takes.
fn restricted_route_tier() -> Answer {
    Answer {
        status: StatusCode::FORBIDDEN,
        reason: "restricted_route_tier",
        data: json!({}),
    }
}

/// The answer for routes the sandbox keeps no state for: empty, but shaped as Crisp shapes it,
/// with the least value of the catalog's result type (typed clients parse it).
fn generic(action: &Action, method: Method) -> Answer {
    let reason = match method {
        Method::Post => "added",
        Method::Delete => "deleted",
        Method::Put | Method::Patch => "updated",
        Method::Get | Method::Head => "resolved",
    };
    if let Some(result) = &action.result {
        return Answer::ok(reason, answer::least(result));
    }
    let is_list = action
        .route
        .as_ref()
        .is_some_and(|r| r.path.segments().contains(&Segment::Param("pageNumber")));
    let data = match &action.result {
        // The least value of the catalog's result type: strict readers (generated clients, an
        // MCP client checking the tool's outputSchema) accept it, where `{}` could lack a
        // required field.
        Some(ty) if !is_list => crate::docs::schema::example(CATALOG.types(), ty),
        _ if is_list => json!([]),
        _ => json!({}),
    };
    Answer::ok(reason, data)
}
