//! `GET /api/crisp/_endpoints`: the catalog as JSON, for people and programs finding their way,
//! whole or filtered (`?q=reply to a customer&domain=conversations&write=true`).

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::Query;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG, Origin, ParamKind, search};
use crate::error::{ApiError, Reason};

/// Each action's entry by its catalog index, built once: the catalog never changes while the
/// process runs.
static ENTRIES: LazyLock<Vec<Value>> = LazyLock::new(|| {
    CATALOG
        .actions()
        .iter()
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
            let entry = json!({
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
            });
            entry
        })
        .collect()
});

/// The whole list, serialised once. Today's API first: the legacy Knowledge Base actions serve
/// only websites not yet moved.
static ENDPOINTS: LazyLock<String> = LazyLock::new(|| {
    let actions: Vec<&Value> = CATALOG.current_first().map(|a| &ENTRIES[a.index]).collect();
    json!({ "count": actions.len(), "actions": actions }).to_string()
});

fn json_response(body: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// `?q=` ranks by the action search (best first), `?domain=` and `?write=true|false` filter.
pub async fn endpoints(
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    if params.is_empty() {
        return Ok(json_response(ENDPOINTS.clone()));
    }
    let bad = |message: String| ApiError::bad_request(Reason::InvalidQuery, message);
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "q" | "domain" | "write"))
    {
        return Err(bad(format!(
            "`{unknown}` is not a filter of `_endpoints`; use `q` (words), `domain` and `write` (true or false)."
        )));
    }
    let domain = params.get("domain").map(String::as_str);
    if let Some(domain) = domain
        && !CATALOG.actions().iter().any(|a| a.domain == domain)
    {
        let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
        domains.sort_unstable();
        domains.dedup();
        return Err(bad(format!(
            "There is no domain `{domain}`; use one of: {}.",
            domains.join(", ")
        )));
    }
    let write = match params.get("write").map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(other) => return Err(bad(format!("`write` is true or false, not `{other}`."))),
    };
    let keep =
        |a: &Action| domain.is_none_or(|d| a.domain == d) && write.is_none_or(|w| a.write == w);
    let entry = |a: &Action| &ENTRIES[a.index];
    let chosen: Vec<&Value> = match params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty()) {
        Some(q) => search::rank(q)
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| keep(a))
            .map(entry)
            .collect(),
        None => CATALOG
            .current_first()
            .filter(|a| keep(a))
            .map(entry)
            .collect(),
    };
    Ok(json_response(
        json!({ "count": chosen.len(), "actions": chosen }).to_string(),
    ))
}
