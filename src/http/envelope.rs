//! Renders every error as the JSON error envelope, in one place.
//!
//! Handlers and layers leave an `ErrorSlot` in the response (or, for tower layers that know
//! nothing of it, a bare status); this middleware adds the tool name and the request id and
//! logs the cause once.

use std::any::Any;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::catalog::{CATALOG, Target};
use crate::error::{ApiError, ErrorSlot, Reason};
use crate::telemetry::gate;

use crate::kernel::request_id::{REQUEST_ID, Started};
use crate::telemetry::metrics::PerAction;

/// The per-action success series, one slot per catalog action.
static ACTION_SERIES: LazyLock<PerAction> =
    LazyLock::new(|| PerAction::new(CATALOG.actions().len()));

/// The bytes of a path that the access line keeps (every action's path fits).
const LOGGED_PATH: usize = 128;

/// What the outermost step needs: the body limit its errors name, and the permits that bound
/// requests in flight.
pub struct Edge {
    pub body_limit: usize,
    pub in_flight: Arc<Semaphore>,
}

/// What the edge learns of a request before anything else runs: what its path names, when it
/// arrived (deadlines run from here) and its id.
pub struct Arrival {
    pub target: Target,
    pub started: Instant,
    /// The caller's `x-request-id` when usable, else a new one.
    pub request_id: HeaderValue,
    /// Whether the id is new, so not yet in the request's headers.
    fresh_id: bool,
}

impl Arrival {
    pub fn of(request: &Request) -> Self {
        let started = Instant::now();
        let (request_id, fresh_id) = read_request_id(request);
        Self {
            target: Target::of_path(request.uri().path()),
            started,
            request_id,
            fresh_id,
        }
    }

    /// Puts what the router's layers and handlers read into the request: the target, the
    /// arrival time and a new request id. The action calls the edge sends on directly get
    /// them as values instead: each extension is an allocation.
    pub fn stamp(&self, request: &mut Request) {
        request.extensions_mut().insert(self.target);
        request.extensions_mut().insert(Started(self.started));
        if self.fresh_id {
            request
                .headers_mut()
                .insert(REQUEST_ID, self.request_id.clone());
        }
    }
}

impl Edge {
    /// The outermost step of every request on the main listener: sheds load past
    /// `max_concurrency`, runs `inner`, then returns the request id on the response, writes
    /// the access-log line and the request metrics, and renders any error as the JSON
    /// envelope (logging the cause of a 5xx once).
    ///
    /// Everything before `inner`'s future runs here, at once, so the request is consumed
    /// before the returned future exists: a call held open keeps only what it needs.
    ///
    /// Always inlined, as are the steps that build the call's future (`actions::call`,
    /// `Guarded::new`, `telemetry::with_call_info`): built in one frame, the future (several
    /// kilobytes) is copied fewer times on its way into its box — five copies a call fewer.
    #[inline(always)]
    pub fn run<F>(
        &self,
        request: Request,
        arrival: Arrival,
        inner: impl FnOnce(Request, &Arrival) -> F,
    ) -> Edged<F>
    where
        F: Future<Output = Response> + Send + 'static,
    {
        let method = request.method().clone();
        // A path can be as long as the header limit allows: the log keeps its first bytes only.
        let path = crate::kernel::text::truncate(request.uri().path(), LOGGED_PATH).to_owned();
        // Answer at once rather than queue without bound when the process is full.
        let permit = Arc::clone(&self.in_flight).try_acquire_owned().ok();
        let inner = permit
            .is_some()
            .then(|| crate::telemetry::with_call_info(inner(request, &arrival)));
        Edged {
            inner,
            permit,
            arrival,
            method,
            path,
            body_limit: self.body_limit,
        }
    }
}

pin_project_lite::pin_project! {
    /// A request inside the edge: its answer, finished by the edge once `inner` is done.
    ///
    /// Written out rather than as an `async` block, which would keep `inner` twice (as a
    /// capture and as the future it awaits) for as long as a call is held.
    pub struct Edged<F> {
        #[pin]
        inner: Option<crate::telemetry::WithCallInfo<F>>,
        permit: Option<OwnedSemaphorePermit>,
        arrival: Arrival,
        method: axum::http::Method,
        path: String,
        body_limit: usize,
    }
}

impl<F: Future<Output = Response>> Future for Edged<F> {
    type Output = Response;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        let this = self.project();
        let (response, call, shed) = match this.inner.as_pin_mut() {
            Some(inner) => {
                let (response, call) = ready!(inner.poll(cx));
                (response, call, false)
            }
            None => (
                ApiError::Overloaded.into_response(),
                Default::default(),
                true,
            ),
        };
        this.permit.take();
        Poll::Ready(finish(
            response,
            call,
            this.arrival,
            this.method,
            this.path,
            shed,
            *this.body_limit,
        ))
    }
}

fn finish(
    response: Response,
    mut call: crate::telemetry::CallInfo,
    arrival: &Arrival,
    method: &axum::http::Method,
    path: &str,
    shed: bool,
    body_limit: usize,
) -> Response {
    let target = arrival.target;
    let (action, label) = match target {
        Target::Report => (None, Some(("report", super::report::TOOL))),
        Target::Action { action, .. } => (Some(action), Some((action.slug, action.tool.as_str()))),
        Target::Mcp | Target::Other => (None, None),
    };
    let request_id = arrival.request_id.to_str().unwrap_or_default();
    // An MCP tool call ran in rmcp's task: its notes come by the request id.
    if matches!(target, Target::Mcp)
        && let Some(tool) = crate::telemetry::take_handed_off(request_id)
    {
        call.action = tool.action;
        call.account = tool.account;
        call.upstream_status = tool.upstream_status;
        call.upstream_calls = tool.upstream_calls;
    }
    let mut response = render_error(
        response,
        body_limit,
        label.map(|(_, tool)| tool),
        request_id,
        matches!(target, Target::Mcp),
    );
    response
        .headers_mut()
        .insert(REQUEST_ID, arrival.request_id.clone());
    let status = response.status().as_u16();
    let elapsed = arrival.started.elapsed();
    ACTION_SERIES.request(
        action.map(|a| a.index),
        label.map_or("-", |(slug, _)| slug),
        status,
        elapsed,
    );
    // Successful calls always get their line; a flood of refusals gets a budget and a count,
    // and requests shed here only the count (`gate::shed`).
    if shed {
        return response;
    }
    if status >= 400 && !gate::allow(gate::Kind::RefusedRequest, status) {
        return response;
    }
    crate::telemetry::access(&crate::telemetry::Access {
        request_id,
        method: method.as_str(),
        path,
        status,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        action: label.map(|(slug, _)| slug).or(call.action),
        key_id: call.key.as_ref().map(|key| key.id()),
        account_id: call.account.as_ref().map(|account| account.id()),
        upstream_status: call.upstream_status,
        upstream_calls: call.upstream_calls,
    });
    response
}

/// The request's id: the caller's `x-request-id` when usable, else a new one, set on the
/// request for the layers and handlers below.
pub fn request_id(request: &mut Request) -> HeaderValue {
    let (id, fresh) = read_request_id(request);
    if fresh {
        request.headers_mut().insert(REQUEST_ID, id.clone());
    }
    id
}

/// The request's id: the caller's `x-request-id` when usable, else a new one (and `true`).
fn read_request_id(request: &Request) -> (HeaderValue, bool) {
    match request.headers().get(REQUEST_ID) {
        // A copy, not a clone: a clone would hold the connection's whole read buffer (which
        // the header is a slice of) until the response is written.
        Some(id) if is_usable_request_id(id.as_bytes()) => (
            HeaderValue::from_bytes(id.as_bytes()).unwrap_or_else(|_| new_request_id()),
            false,
        ),
        _ => (new_request_id(), true),
    }
}

/// Renders an error a handler or layer left in the response as the JSON error envelope, and
/// logs a 5xx's cause once; other responses pass as they are.
pub fn render(response: Response, body_limit: usize, request_id: &str) -> Response {
    render_error(response, body_limit, None, request_id, false)
}

fn render_error(
    mut response: Response,
    body_limit: usize,
    tool: Option<&str>,
    request_id: &str,
    mcp: bool,
) -> Response {
    let status = response.status();
    let slot = response.extensions_mut().remove::<ErrorSlot>();
    let error = match slot {
        Some(ErrorSlot(error)) => error,
        None if status.is_client_error() || status.is_server_error() => {
            let is_json = response
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            if is_json {
                return response;
            }
            std::sync::Arc::new(from_bare_status(status, body_limit))
        }
        None => return response,
    };
    let code = error.status().as_u16();
    // A shed request is counted and reported once a second, never logged alone: a flood past
    // capacity is when a line per request would cost the most.
    let shed = matches!(*error, ApiError::Overloaded);
    if shed {
        gate::shed();
    } else if error.status().is_server_error() {
        if gate::allow(gate::Kind::FailedRequest, code) {
            tracing::error!(status = code, reason = error.reason(), %request_id, error = %error, cause = ?std::error::Error::source(&*error).map(ToString::to_string), "request failed");
        }
    } else if tracing::enabled!(tracing::Level::DEBUG) && gate::allow(gate::Kind::Refusal, code) {
        tracing::debug!(status = code, reason = error.reason(), %request_id, "request refused");
    }
    let mut body = error.to_body(tool, request_id);
    if mcp {
        // MCP clients show a JSON-RPC error's message and drop any other body, so a refusal
        // before MCP (a bad key, a full gateway) travels as one, the envelope in its `data`.
        body = serde_json::json!({
            "jsonrpc": "2.0",
            "id": null,
            "error": {"code": -32000, "message": error.message(), "data": body},
        });
    }
    let body = body.to_string();
    let (mut parts, _) = response.into_parts();
    parts.status = error.status();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// A caller's `x-request-id` is kept when it is 1–128 characters of `A–Z a–z 0–9 . _ : -`;
/// anything else is replaced, so an id can neither forge fields in the access line (a space
/// and `key=value`) nor bloat the log, the audit rows and Crisp's headers.
fn is_usable_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A random (version 4) UUID for a request that brings no `x-request-id`. The bits come from
/// a per-thread generator seeded once, not from the OS: request ids only need to be unique,
/// and a `getrandom` system call per request was visible in the benchmark's profile.
fn new_request_id() -> HeaderValue {
    let uuid = uuid::Builder::from_random_bytes(fastrand::u128(..).to_le_bytes()).into_uuid();
    let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
    HeaderValue::from_str(uuid.hyphenated().encode_lower(&mut text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Errors produced by layers that only set a status.
fn from_bare_status(status: StatusCode, body_limit: usize) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: body_limit },
        StatusCode::GATEWAY_TIMEOUT | StatusCode::REQUEST_TIMEOUT => ApiError::Timeout,
        StatusCode::NOT_FOUND => ApiError::not_found(
            Reason::NotFound,
            "No such endpoint; see GET /api/crisp/_endpoints.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            message: "This endpoint does not accept that HTTP method.".into(),
        },
        s if s.is_client_error() => ApiError::bad_request(
            Reason::BadRequest,
            format!("The request was refused ({s})."),
        ),
        s => ApiError::Internal(format!("a layer answered {s}")),
    }
}

pub async fn no_route() -> ApiError {
    ApiError::not_found(
        Reason::NotFound,
        "No such endpoint. Actions are `POST /api/crisp/<action>`; the list is at GET /api/crisp/_endpoints.",
    )
}

pub fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    // The panic message may quote request data, so it is not echoed; the panic hook logs it.
    ApiError::Internal("a handler panicked".into()).into_response()
}

/// Leaves the error in the response for `finish` to render, with the headers its status needs.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status().into_response();
        if matches!(self, ApiError::Unauthorized | ApiError::AdminUnauthorized) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response.extensions_mut().insert(ErrorSlot(Arc::new(self)));
        response
    }
}
