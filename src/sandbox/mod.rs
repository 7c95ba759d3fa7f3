//! A local stand-in for Crisp's REST API v1, for `demo` and for trying the gateway safely.
//!
//! It serves every catalog route under `/v1` the way Crisp frames answers
//! (`{"error":…,"reason":…,"data":…}`), insists on Basic credentials and a valid
//! `X-Crisp-Tier` as Crisp does, and keeps no state: reads answer empty, writes succeed.

use std::net::SocketAddr;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::catalog::{CATALOG, Method, Segment};

pub fn router() -> Router {
    Router::new().fallback(answer)
}

/// Serves the sandbox on `listener` in the background; returns its base URL (with `/v1`).
pub fn spawn(listener: TcpListener) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
    let addr: SocketAddr = listener.local_addr()?;
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router()).await {
            tracing::error!(error = %e, "the sandbox stopped");
        }
    });
    Ok((format!("http://{addr}/v1"), handle))
}

fn envelope(status: StatusCode, error: bool, reason: &str, data: Value) -> Response {
    let body = json!({ "error": error, "reason": reason, "data": data }).to_string();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let credentials = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let pair_ok = credentials
        .as_deref()
        .and_then(|c| c.split_once(':'))
        .is_some_and(|(id, key)| !id.is_empty() && !key.is_empty());
    let tier_ok = headers
        .get("x-crisp-tier")
        .is_some_and(|t| matches!(t.as_bytes(), b"user" | b"website" | b"plugin"));
    pair_ok && tier_ok
}

async fn answer(request: Request) -> Response {
    let method = match *request.method() {
        HttpMethod::GET => Method::Get,
        HttpMethod::HEAD => Method::Head,
        HttpMethod::POST => Method::Post,
        HttpMethod::PUT => Method::Put,
        HttpMethod::PATCH => Method::Patch,
        HttpMethod::DELETE => Method::Delete,
        _ => return not_found(),
    };
    let Some(path) = request.uri().path().strip_prefix("/v1") else {
        return not_found();
    };
    let route = CATALOG
        .actions()
        .iter()
        .filter_map(|a| a.route.as_ref())
        .find(|r| r.method == method && r.path.matches(path).is_some());
    let Some(route) = route else {
        return not_found();
    };
    if !authorized(request.headers()) {
        return envelope(StatusCode::UNAUTHORIZED, true, "unauthorized", json!({}));
    }
    if method == Method::Head {
        return StatusCode::OK.into_response();
    }
    if method.is_write() {
        let reason = match method {
            Method::Post => "added",
            Method::Delete => "deleted",
            _ => "updated",
        };
        let bytes = axum::body::to_bytes(request.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        if !bytes.is_empty() && serde_json::from_slice::<Value>(&bytes).is_err() {
            return envelope(
                StatusCode::BAD_REQUEST,
                true,
                "invalid_data",
                json!({ "message": "the request body is not valid JSON" }),
            );
        }
        return envelope(StatusCode::OK, false, reason, json!({}));
    }
    let is_list = route
        .path
        .segments()
        .contains(&Segment::Param("pageNumber"));
    envelope(
        StatusCode::OK,
        false,
        "resolved",
        if is_list { json!([]) } else { json!({}) },
    )
}

fn not_found() -> Response {
    envelope(
        StatusCode::NOT_FOUND,
        true,
        "not_found",
        json!({ "message": "the route does not exist" }),
    )
}
