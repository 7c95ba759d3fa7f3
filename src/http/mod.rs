//! The HTTP surface: the main listener's front (the edge, then action calls straight to their
//! handler), the router and the middleware stack for the rest, written once, outermost first,
//! and the server that runs them on each listener.

mod actions;
mod discovery;
mod docs;
pub mod envelope;
mod front;
mod health;
mod protocol;
mod report;
pub mod server;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use tokio::sync::Semaphore;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::app::AppState;
use crate::auth::RequireKey;

/// `GET /metrics`, on the main listener or (with `metrics_listen`) on its own.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::telemetry::metrics::render(app.crisp.shaper().queue_depth()),
    )
}

pub use front::Front;

/// The main listener's service: the edge, then an action call straight to its handler, or
/// anything else through the router and its layers.
pub fn service(app: AppState) -> Front {
    let config = &app.config;
    // The key is checked for POST only, so a wrong method is explained without one.
    let authenticated = RequireKey::new(app.key_check());
    let api = Router::new()
        .route(
            "/api/crisp/report",
            post(report::submit.layer(authenticated.clone())),
        )
        .route(
            "/api/crisp/{*action}",
            // Calls to actions go from the edge to their handler (`front`); what reaches the
            // router here names none.
            post(actions::unknown.layer(authenticated)).fallback(actions::wrong_method),
        );
    let public = Router::new()
        .route("/api/crisp/_endpoints", get(discovery::endpoints))
        .route("/api/crisp/_endpoints/{*action}", get(discovery::endpoint))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .merge(docs::routes());

    // Outermost first (`Front`): every response gets a request id, one access-log line and
    // its metrics, and an error envelope if it failed, and past `max_concurrency` requests
    // are shed. Then, for what is not an action call, a panic becomes a 500, and the deadline
    // and the body cap apply to the rest.
    let cap = server::concurrency_cap(config);
    tracing::info!(
        max_concurrency = cap,
        memory_budget_mib = config.memory_budget() >> 20,
        "calls in flight are capped"
    );
    let edge = envelope::Edge {
        body_limit: config.body_limit,
        in_flight: Arc::new(Semaphore::new(cap)),
    };
    let stack = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(envelope::panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            config.request_timeout + front::DEADLINE_MARGIN,
        ))
        .layer(RequestBodyLimitLayer::new(config.body_limit))
        .layer(DefaultBodyLimit::max(config.body_limit));

    let public = if config.metrics_listen.is_none() {
        public.merge(metrics_router())
    } else {
        public
    };
    let router = public
        .merge(api)
        .merge(crate::mcp::router(app.clone(), &config.mcp_allowed_hosts))
        .fallback(envelope::no_route)
        .layer(stack)
        .with_state(app.clone());
    Front::new(app, edge, router)
}
