//! `GET /api/crisp/_endpoints`: the catalog as JSON, for people and programs finding their way,
//! whole or filtered (`?q=reply to a customer&domain=conversations&write=true`), and
//! `GET /api/crisp/_endpoints/<action>`: one action in full (fields with their types, tiers, an
//! example, the result's type).

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::extract::{Path, Query};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG, Origin, ParamKind, Shape, Ty, search};
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
                            ParamKind::Option => "gateway",
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

/// The entries without their parameters, notes and descriptions: what the list shows unless
/// `?view=full` (`_endpoints/<action>` has everything about one action).
static COMPACT: LazyLock<Vec<Value>> = LazyLock::new(|| {
    ENTRIES
        .iter()
        .map(|entry| {
            let mut entry = entry.clone();
            if let Value::Object(object) = &mut entry {
                for long in ["params", "notes", "description"] {
                    object.remove(long);
                }
            }
            entry
        })
        .collect()
});

/// The whole list, serialised once, compact and full. Today's API first: the legacy Knowledge
/// Base actions serve only websites not yet moved.
static ENDPOINTS: LazyLock<[Bytes; 2]> = LazyLock::new(|| {
    let list = |entries: &[Value]| {
        let actions: Vec<&Value> = CATALOG.current_first().map(|a| &entries[a.index]).collect();
        Bytes::from(json!({ "count": actions.len(), "actions": actions }).to_string())
    };
    [list(&COMPACT), list(&ENTRIES)]
});

fn json_response(body: impl Into<axum::body::Body>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.into(),
    )
        .into_response()
}

/// `?q=` ranks by the action search (best first), `?domain=` and `?write=true|false` filter.
pub async fn endpoints(
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let bad = |message: String| ApiError::bad_request(Reason::InvalidQuery, message);
    let full = match params.get("view").map(String::as_str) {
        None | Some("compact") => false,
        Some("full") => true,
        Some(other) => {
            return Err(bad(format!(
                "`view` is `compact` (the default) or `full` (with each action's parameters), not `{other}`."
            )));
        }
    };
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "q" | "domain" | "write" | "view"))
    {
        return Err(bad(format!(
            "`{unknown}` is not a filter of `_endpoints`; use `q` (words), `domain`, `write` (true or false) and `view` (compact or full)."
        )));
    }
    if params.keys().all(|k| k == "view") {
        return Ok(json_response(ENDPOINTS[usize::from(full)].clone()));
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
    let entries: &[Value] = if full { &ENTRIES } else { &COMPACT };
    let entry = |a: &Action| &entries[a.index];
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

/// One action in full: what `_endpoints` lists, plus its body's fields with their types and
/// meanings, the type of its result, and an example request the gateway accepts.
pub async fn endpoint(Path(name): Path<String>) -> Result<Response, ApiError> {
    let action = CATALOG.find(&name).ok_or_else(|| {
        ApiError::not_found(
            Reason::UnknownAction,
            format!(
                "There is no action `{name}`. Closest: {}. Find actions with `GET /api/crisp/_endpoints?q=<words>`.",
                CATALOG.closest(&name, 3).join(", ")
            ),
        )
    })?;
    let types = CATALOG.types();
    let mut entry = ENTRIES[action.index].clone();
    entry["body"] = json!({
        "type": action.body.as_ref().map(|t| types.describe(t)),
        "required": action.body_required,
        "fields": fields(action.body.as_ref()),
    });
    entry["query_fields"] = fields(action.query.as_ref());
    entry["result"] = json!({
        "type": action.result.as_ref().map(|t| types.describe(t)),
        "fields": fields(action.result.as_ref()),
    });
    entry["example"] = crate::docs::example::literal_request(action);
    Ok(json_response(entry.to_string()))
}

/// A named object type's fields (of each item, for a list), with their types and meanings.
fn fields(ty: Option<&Ty>) -> Value {
    let types = CATALOG.types();
    match ty {
        Some(Ty::Array(item)) => fields(Some(item)),
        Some(Ty::Named(id)) => match &types.named(*id).shape {
            Shape::Fields(fields) => fields
                .iter()
                .map(|f| {
                    json!({
                        "name": f.name,
                        "type": types.describe(&f.ty),
                        "required": f.required,
                        "about": f.about,
                    })
                })
                .collect(),
            _ => Value::Null,
        },
        _ => Value::Null,
    }
}
