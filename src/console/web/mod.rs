//! The web console at `/admin/`: one page, a small vanilla script and a style sheet, all
//! embedded in the binary (nothing from a CDN, works offline). The script calls the admin API
//! with the session cookie and the session's CSRF token.

pub mod session;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{AdminPrincipal, AdminToken};
use crate::error::{ApiError, Reason};

use super::ConsoleState;
use session::{SESSION_COOKIE, cookie, set_cookie};

const INDEX_HTML: &str = include_str!("assets/index.html");
const CONSOLE_JS: &str = include_str!("assets/console.js");
const CONSOLE_CSS: &str = include_str!("assets/console.css");

/// The page, its assets and sign-in: open to anyone who reaches the listener.
pub fn public_routes() -> Router<ConsoleState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route(
            "/admin/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/admin/assets/console.js",
            get(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route(
            "/admin/assets/console.css",
            get(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }),
        )
        .route("/admin/sign-in", post(sign_in))
}

/// The session itself, behind the auth layer.
pub fn protected_routes() -> Router<ConsoleState> {
    Router::new()
        .route("/admin/session", get(current_session))
        .route("/admin/sign-out", post(sign_out))
}

fn asset(content_type: &'static str, text: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type)], text).into_response()
}

/// Headers on every answer of the admin listener: nothing but its own scripts and styles
/// run, it is never framed, never cached, and never sniffed as another type.
pub fn security_headers(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cache-control", "no-store");
    set(headers, "cross-origin-opener-policy", "same-origin");
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    token: String,
}

/// Exchanges an admin token for a session cookie. Failures are slowed per client (the admin
/// keyring's failure limit); the token is never echoed or logged.
async fn sign_in(
    State(state): State<ConsoleState>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let client = crate::auth::client_ip(&request);
    let headers = request.headers().clone();
    // No other site may sign a browser in (with the attacker's token) either.
    super::check_origin(&headers)?;
    let raw: Bytes = axum::body::to_bytes(request.into_body(), 64 * 1024)
        .await
        .map_err(|_| {
            ApiError::bad_request(Reason::UnreadableBody, "The body could not be read.")
        })?;
    let form: SignIn = serde_json::from_slice(&raw).map_err(|_| {
        ApiError::bad_request(
            Reason::InvalidJson,
            "Sign in with a JSON body {\"token\": \"sk_admin_…\"}.",
        )
    })?;
    let keyring = &state.app.admin_keyring;
    keyring.check_client(client)?;
    let presented = AdminToken::parse(form.token.trim());
    let principal = keyring.authenticate(presented.as_ref(), client).await?;
    let Some((id, session)) = state.sessions.start(&principal.token_id) else {
        return Err(ApiError::Overloaded);
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes() == b"https");
    let cookie = set_cookie(&id, state.sessions.seconds_left(&session), secure);
    let mut response = axum::Json(json!({
        "token_id": principal.token_id,
        "csrf_token": session.csrf,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Who is signed in, and the CSRF token the page sends with each change.
async fn current_session(
    State(state): State<ConsoleState>,
    axum::extract::Extension(principal): axum::extract::Extension<AdminPrincipal>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // A bearer caller has no session, so no CSRF token: it needs none.
    let csrf = cookie(&headers, SESSION_COOKIE)
        .and_then(|id| state.sessions.find(&id, &state.app.admin_keyring))
        .map(|s| s.csrf);
    Ok(axum::Json(json!({ "token_id": principal.token_id, "csrf_token": csrf })).into_response())
}

async fn sign_out(State(state): State<ConsoleState>, headers: HeaderMap) -> Response {
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        state.sessions.end(&id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "crisp_admin_session=; Path=/admin; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}
