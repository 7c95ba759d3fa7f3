//! The MCP endpoint: every catalog action as a tool over streamable HTTP, with the REST keys.
//!
//! `POST /mcp` (and `/mcp/essentials`, `/mcp/all`, `/mcp/x/<domain>`) speaks the MCP
//! streamable HTTP transport through rmcp. The bearer key is checked by the same layer as
//! REST before rmcp reads a byte, so a bad key is a plain 401 with the JSON error envelope.
//! The transport runs stateless with JSON answers: any replica behind a load balancer can
//! serve any request, so GET (server streams) and DELETE (sessions) answer 405.

mod essentials;
mod handler;
mod meta;
mod schema;
mod toolsets;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::app::AppState;
use crate::auth::RequireKey;
use crate::error::{ApiError, ErrorSlot, Reason};

pub use essentials::{ESSENTIALS, Essential};
pub use toolsets::Selection;

/// The MCP routes, ready to merge into the gateway's router (which adds the request id,
/// tracing, timeout, body limit and error rendering around them). `allowed_hosts` is the
/// `mcp_allowed_hosts` setting: the `Host` headers MCP requests may carry, or empty for any.
pub fn router<S>(app: AppState, allowed_hosts: &[String]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let config = transport_config(app.config.body_limit, allowed_hosts);
    let body_limit = app.config.body_limit;
    let factory_app = app.clone();
    let service = StreamableHttpService::new(
        move || Ok(handler::Handler::new(factory_app.clone())),
        Arc::new(LocalSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service.clone())
        .route_service("/mcp/essentials", service.clone())
        .route_service("/mcp/all", service.clone())
        .route_service("/mcp/x/{domain}", service)
        // Innermost first: rmcp's plain-text refusals become API errors, the toolset is
        // chosen, and (outermost) the key is checked before anything else.
        .layer(middleware::from_fn_with_state(body_limit, transport_errors))
        .layer(middleware::from_fn(select_toolset))
        .layer(RequireKey::new(app.key_check()))
}

/// Stateless JSON mode, bodies capped like REST bodies, and `Host` checked only when
/// configured: rmcp's default (loopback names only) would refuse every request to a deployed
/// gateway. The check guards unauthenticated local servers against DNS rebinding; here every
/// request needs a bearer key, which a rebinding page does not have.
fn transport_config(body_limit: usize, allowed_hosts: &[String]) -> StreamableHttpServerConfig {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(body_limit);
    if allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(allowed_hosts.iter().cloned())
    }
}

/// Puts the request's `Selection` in its extensions: by path, or by the `toolsets` query
/// parameter when present.
async fn select_toolset(mut request: Request, next: Next) -> Result<Response, ApiError> {
    let from_query = request.uri().query().and_then(|query| {
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(name, _)| *name == "toolsets")
            .map(|(_, value)| {
                percent_encoding::percent_decode_str(&value.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            })
    });
    let path = request.uri().path();
    let selection = match from_query {
        Some(list) => Selection::parse(&list)?,
        None => match path.trim_end_matches('/') {
            "/mcp/essentials" => Selection::essentials(),
            "/mcp/all" => Selection::all(),
            other => match other.strip_prefix("/mcp/x/") {
                Some(domain) => Selection::domain(domain)?,
                None => Selection::meta(),
            },
        },
    };
    request.extensions_mut().insert(selection);
    Ok(next.run(request).await)
}

/// rmcp answers transport mistakes (wrong method, missing `Accept`, unknown session) with a
/// plain-text body; the gateway answers every error with its JSON envelope, so the text is
/// carried over into an `ApiError` (its JSON-RPC errors are JSON already and pass as they are).
async fn transport_errors(
    State(body_limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error())
        || is_json
        || response.extensions().get::<ErrorSlot>().is_some()
    {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed {
            message: "The MCP endpoint is stateless streamable HTTP: send JSON-RPC messages with POST (there are no GET streams or sessions to DELETE).".into(),
        },
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: body_limit },
        StatusCode::FORBIDDEN => ApiError::Forbidden {
            reason: Reason::McpRefused,
            message: format!("{text} (set CRISP_GATEWAY_MCP_ALLOWED_HOSTS to the host names clients use)"),
        },
        StatusCode::NOT_FOUND => ApiError::not_found(Reason::McpSessionNotFound, text),
        s if s.is_client_error() => {
            ApiError::bad_request(Reason::McpTransport, format!("{text} (MCP transport, HTTP {s})"))
        }
        s => ApiError::Internal(format!("the MCP transport answered {s}: {text}")),
    };
    let mut rendered = error.into_response();
    // Keep `Allow` and the like: they tell the client what would work.
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().entry(name).or_insert(value.clone());
        }
    }
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_open_unless_configured() {
        assert!(transport_config(1024, &[]).allowed_hosts.is_empty());
        let limited = transport_config(
            1024,
            &[
                "gw.example.com".to_owned(),
                "gw.example.com:8443".to_owned(),
            ],
        );
        assert_eq!(
            limited.allowed_hosts,
            ["gw.example.com", "gw.example.com:8443"]
        );
        assert!(!limited.legacy_session_mode);
        assert!(limited.json_response);
        assert_eq!(limited.max_request_body_bytes, 1024);
    }
}
