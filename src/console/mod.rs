//! The admin listener: the JSON admin API (`api/`, under `/admin/v1`) and the web console
//! (`web/`, under `/admin/`), both calling the use cases in `crate::admin`.
//!
//! It runs on its own address (`admin_listen`, loopback by default) through the same accept
//! loop as the gateway. Requests authenticate with an admin token (`Authorization: Bearer
//! sk_admin_…`) or a console session cookie; a change made with a cookie must also carry the
//! session's CSRF token and come from the console's own origin.

pub mod api;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use subtle::ConstantTimeEq;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::auth::{AdminPrincipal, AdminToken};
use crate::error::{ApiError, Reason};
use crate::forward::CrispClient;

use web::session::{CSRF_HEADER, SESSION_COOKIE, Sessions};

/// What the admin listener's handlers share.
pub struct Console {
    pub app: AppState,
    pub sessions: Sessions,
    /// The client account tests call Crisp with (no retries, no shaping: one honest probe).
    pub checks: CrispClient,
}

pub type ConsoleState = Arc<Console>;

/// The admin listener's router: the API and the console behind the auth layer, the sign-in
/// page and the assets before it.
pub fn router(app: AppState) -> Result<Router, String> {
    let checks = CrispClient::for_checks(&app.config.crisp())
        .map_err(|e| format!("cannot build the Crisp client for account tests: {e}"))?;
    let body_limit = app.config.body_limit;
    let state = Arc::new(Console {
        sessions: Sessions::new(web::session::SESSION_TTL),
        checks,
        app,
    });
    let authenticated = axum::middleware::from_fn_with_state(state.clone(), require_admin);
    let protected = Router::new()
        .nest("/admin/v1", api::routes())
        .merge(web::protected_routes())
        .layer(authenticated);
    let stack = ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(state.clone(), finish))
        .layer(CatchPanicLayer::custom(
            crate::http::envelope::panic_response,
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(30),
        ))
        .layer(RequestBodyLimitLayer::new(body_limit));
    Ok(protected
        .merge(web::public_routes())
        .route(
            "/admin/v1/openapi.json",
            axum::routing::get(api::openapi::serve),
        )
        .fallback(no_route)
        .layer(stack)
        .with_state(state))
}

async fn no_route() -> ApiError {
    ApiError::not_found(
        Reason::NotFound,
        "No such admin endpoint. The admin API is under /admin/v1 (see /admin/v1/openapi.json); the console is at /admin/.",
    )
}

/// The outermost layer: a request id, the error envelope, the security headers every answer
/// carries, and one access-log line (never a token, a cookie or a body).
async fn finish(State(state): State<ConsoleState>, mut request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = crate::http::envelope::request_id(&mut request);
    let method = request.method().clone();
    let path = crate::kernel::text::truncate(request.uri().path(), 128).to_owned();
    let response = next.run(request).await;
    let mut response = crate::http::envelope::render(
        response,
        state.app.config.body_limit,
        id.to_str().unwrap_or_default(),
    );
    web::security_headers(response.headers_mut());
    response
        .headers_mut()
        .insert(crate::kernel::request_id::REQUEST_ID, id.clone());
    let status = response.status().as_u16();
    // A flood of refused admin requests (bad tokens, CSRF) gets the main listener's log budget
    // and its once-a-second count, not a line each.
    if status >= 400
        && !crate::telemetry::gate::allow(crate::telemetry::gate::Kind::RefusedRequest, status)
    {
        return response;
    }
    tracing::info!(
        request_id = id.to_str().unwrap_or_default(),
        method = %method,
        path = path.as_str(),
        status,
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "admin request"
    );
    response
}

/// The auth layer: an admin token in `Authorization`, or a console session cookie (with its
/// CSRF token and the console's origin on every change) becomes an [`AdminPrincipal`].
async fn require_admin(
    State(state): State<ConsoleState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let client = crate::auth::client_ip(&request);
    let headers = request.headers();
    let principal = if let Some(authorization) = headers.get(header::AUTHORIZATION) {
        let presented = AdminToken::from_authorization(authorization.to_str().ok());
        state
            .app
            .admin_keyring
            .authenticate(presented.as_ref(), client)
            .await?
    } else if let Some(session_id) = web::session::cookie(headers, SESSION_COOKIE) {
        let session = state
            .sessions
            .find(&session_id, &state.app.admin_keyring)
            .ok_or(ApiError::AdminUnauthorized)?;
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            check_csrf(headers, &session.csrf)?;
        }
        AdminPrincipal {
            token_id: session.token_id,
        }
    } else {
        return Err(ApiError::AdminUnauthorized);
    };
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

fn csrf_refused(message: &str) -> ApiError {
    ApiError::Forbidden {
        reason: Reason::CsrfRefused,
        message: message.to_owned(),
    }
}

/// A change made with the session cookie must come from the console's own pages: the
/// `Origin` is this listener's, and the per-session CSRF token rides in a header that
/// another site cannot set.
fn check_csrf(headers: &axum::http::HeaderMap, expected: &str) -> Result<(), ApiError> {
    check_origin(headers)?;
    let presented = headers
        .get(CSRF_HEADER)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !bool::from(presented.ct_eq(expected.as_bytes())) {
        return Err(csrf_refused(
            "This change lacks the session's CSRF token (x-csrf-token); reload /admin/ and try again.",
        ));
    }
    Ok(())
}

/// The request's `Origin` is this listener's own (`http(s)://` and its `Host`).
pub fn check_origin(headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let same_origin = origin.is_some_and(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            == Some(host)
    });
    if !same_origin {
        return Err(csrf_refused(
            "A console change must come from the console's own page (its Origin did not match); reload /admin/ and try again.",
        ));
    }
    Ok(())
}

/// Whether an address is reachable only from this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Warns loudly when the admin listener binds beyond this machine.
pub fn warn_if_exposed(addr: &SocketAddr) {
    if !is_loopback(addr) {
        tracing::warn!(
            %addr,
            "THE ADMIN LISTENER IS REACHABLE FROM OTHER MACHINES: anyone who can reach it may try admin tokens. \
             Keep it on a private network behind a TLS-terminating proxy, never on the public internet \
             (set CRISP_GATEWAY_ADMIN_LISTEN=127.0.0.1:8081 to keep it local, or empty to turn it off)"
        );
    }
}
