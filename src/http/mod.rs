//! The HTTP surface: the router and the middleware stack, written once, outermost first.

mod actions;
mod discovery;
mod envelope;
mod health;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::auth::require_key;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(app: AppState) -> Router {
    let config = &app.config;
    // The key is checked for POST only, so a wrong method is explained without one.
    let authenticated = axum::middleware::from_fn_with_state(app.clone(), require_key);
    let api = Router::new().route(
        "/api/crisp/{*action}",
        post(actions::call.layer(authenticated)).fallback(actions::wrong_method),
    );
    let public = Router::new()
        .route("/api/crisp/_endpoints", get(discovery::endpoints))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready));

    // Outermost first: every response gets a request id, is traced, survives a panic, and
    // meets the deadline; bodies are capped before anything reads them.
    let stack = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            envelope::render_errors,
        ))
        .layer(CatchPanicLayer::custom(envelope::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout + Duration::from_millis(100),
        ))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(DefaultBodyLimit::max(config.body_limit))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            config.max_concurrency,
        ));

    public
        .merge(api)
        .merge(crate::mcp::router(app.clone()))
        .fallback(envelope::no_route)
        .layer(stack)
        .with_state(app)
}
