//! `GET /api/crisp/_endpoints`: the catalog as JSON, for people and programs finding their way.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::catalog::{CATALOG, Origin, ParamKind};

/// Built once: the catalog never changes while the process runs.
static ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    // Today's API first: the legacy Knowledge Base actions serve only websites not yet moved.
    let actions: Vec<Value> = CATALOG
        .current_first()
        .map(|a| {
            let params: Vec<Value> = a
                .params
                .iter()
                .map(|p| {
                    json!({
                        "name": p.name,
                        "in": match p.kind {
                            ParamKind::Account => "account",
                            ParamKind::Path => "path",
                            ParamKind::Body => "body",
                            ParamKind::Query => "query",
                        },
                        "required": p.required,
                        "default": p.default,
                    })
                })
                .collect();
            json!({
                "name": a.slug,
                "tool": a.tool,
                "title": a.title,
                "description": a.description(),
                "endpoint": format!("POST /api/crisp/{}", a.slug),
                "crisp_method": a.route.as_ref().map(|r| r.method.as_str()),
                "crisp_path": a.route.as_ref().map(|r| r.path.as_str()),
                "write": a.write,
                "domain": a.domain,
                "origin": match a.origin {
                    Origin::Facade => "facade",
                    Origin::Crisp => "crisp",
                },
                "legacy": a.legacy,
                "tiers": a.tiers,
                "notes": a.notes,
                "params": params,
            })
        })
        .collect();
    json!({ "count": actions.len(), "actions": actions }).to_string()
});

pub async fn endpoints() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ENDPOINTS.as_str(),
    )
}
