//! The generated documents over HTTP: `/openapi.json`, `/postman.json`, `/llms.txt`, and the
//! Swagger UI at `/docs`, whose assets are compiled into the binary (no CDN needed).

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::app::AppState;
use crate::docs::{LLMS_TXT, OPENAPI_JSON, POSTMAN_JSON};

pub fn routes() -> Router<AppState> {
    // Several hundred operations: a filter box (by tag) and a link per operation
    // (`/docs#/conversations/crisp_list_conversations`) make one findable and shareable.
    let ui = SwaggerUi::new("/docs").config(
        Config::new(["/openapi.json"])
            .persist_authorization(true)
            .display_operation_id(true)
            .filter(true)
            .deep_linking(true),
    );
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/postman.json", get(postman))
        .route("/llms.txt", get(llms))
        .merge(ui)
}

fn typed(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
}

async fn openapi() -> impl IntoResponse {
    typed("application/json", OPENAPI_JSON.as_str())
}

async fn postman() -> impl IntoResponse {
    typed("application/json", POSTMAN_JSON.as_str())
}

async fn llms() -> impl IntoResponse {
    typed("text/plain; charset=utf-8", LLMS_TXT.as_str())
}
