//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: the database answers).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::app::AppState;
use crate::error::ApiError;

pub async fn alive() -> Json<Value> {
    Json(json!({ "ok": true }))
}

pub async fn ready(State(app): State<AppState>) -> Result<Json<Value>, ApiError> {
    app.store.ping().await?;
    Ok(Json(json!({ "ok": true, "database": "reachable" })))
}
