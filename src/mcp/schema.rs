//! JSON input schemas and annotations of MCP tools, derived from the catalog's parameters.
//!
//! Types stay plain (`string`, `integer`, `object`): some agent runtimes refuse `type` arrays
//! and `anyOf`, and the gateway accepts more than the schema says anyway (a `body` or `query`
//! given as a JSON string, a `pageNumber` given as text), exactly as the REST endpoint does.

use rmcp::model::{JsonObject, ToolAnnotations};
use serde_json::{Value, json};

use crate::catalog::{Action, Method, Param, ParamKind};

/// The input schema of the tool that calls `action` directly.
pub fn for_action(action: &Action) -> JsonObject {
    let mut properties = serde_json::Map::new();
    let mut required = Vec::new();
    for param in &action.params {
        properties.insert(param.name.to_owned(), param_schema(action, param));
        if param.required {
            required.push(Value::from(param.name));
        }
    }
    object(properties, required)
}

/// `{"type":"object","properties":…,"required":…}`, closed: an unknown field is refused by the
/// gateway, so the schema says so.
pub fn object(properties: serde_json::Map<String, Value>, required: Vec<Value>) -> JsonObject {
    let mut schema = serde_json::Map::new();
    schema.insert("type".into(), "object".into());
    schema.insert("properties".into(), Value::Object(properties));
    if !required.is_empty() {
        schema.insert("required".into(), Value::Array(required));
    }
    schema.insert("additionalProperties".into(), false.into());
    schema
}

fn param_schema(action: &Action, param: &Param) -> Value {
    match param.kind {
        ParamKind::Account => account(),
        ParamKind::Path => match param.name {
            "websiteID" => website_id(),
            "pageNumber" => page_number(),
            name => {
                let path = action.route.as_ref().map_or("", |r| r.path.as_str());
                json!({
                    "type": "string",
                    "description": format!("Fills `{{{name}}}` in the Crisp path {path}."),
                })
            }
        },
        ParamKind::Body => body(action.notes),
        ParamKind::Query => query(action.notes),
        ParamKind::Option => crate::docs::options::schema(param.name),
    }
}

pub fn account() -> Value {
    json!({
        "type": "string",
        "description": "Which connected Crisp account to use, by id or label (see crisp_list_accounts); defaults to the workspace's default account.",
    })
}

pub fn website_id() -> Value {
    json!({
        "type": "string",
        "description": "The Crisp website id; defaults to the chosen account's website, and must be one of its `websites` (see crisp_list_accounts).",
    })
}

pub fn page_number() -> Value {
    json!({
        "type": "integer",
        "minimum": 1,
        "default": 1,
        "description": "The page to read; pages start at 1.",
    })
}

pub fn body(notes: Option<&str>) -> Value {
    let mut description =
        "The Crisp request body: a JSON object (a string holding one is accepted too).".to_owned();
    if let Some(notes) = notes {
        description.push_str(" Crisp reference: ");
        description.push_str(notes);
    }
    json!({ "type": "object", "description": description })
}

pub fn query(notes: Option<&str>) -> Value {
    let mut description = "Crisp query parameters: a JSON object such as {\"per_page\":50} (a query string such as \"per_page=50&filter_unread=1\" is accepted too).".to_owned();
    if let Some(notes) = notes {
        description.push_str(" Crisp reference: ");
        description.push_str(notes);
    }
    json!({ "type": "object", "description": description })
}

/// Hints for clients: reads are read-only; deletes and removals are destructive; other writes
/// add or change data. Every call but `list/accounts` reaches Crisp, outside the gateway.
pub fn annotations(action: &Action) -> ToolAnnotations {
    let method = action.route.as_ref().map(|r| r.method);
    let annotations = ToolAnnotations::with_title(action.title)
        .read_only(!action.write)
        .open_world(action.route.is_some());
    if !action.write {
        return annotations;
    }
    annotations
        .destructive(is_removal(action))
        .idempotent(matches!(method, Some(Method::Put | Method::Delete)))
}

/// A DELETE, or a write whose name says it removes (`batch/remove/people` is a PATCH).
pub fn is_removal(action: &Action) -> bool {
    action
        .route
        .as_ref()
        .is_some_and(|r| r.method == Method::Delete)
        || action
            .slug
            .split('/')
            .any(|w| matches!(w, "remove" | "delete"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    #[test]
    fn schema_follows_the_catalog() {
        let action = CATALOG.get("get/message/in/conversation").expect("action");
        let schema = Value::Object(for_action(action));
        assert_eq!(schema["required"], json!(["sessionID", "fingerprint"]));
        let names: Vec<_> = schema["properties"]
            .as_object()
            .expect("properties")
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            names,
            ["account", "websiteID", "sessionID", "fingerprint", "query"]
        );
        assert_eq!(schema["additionalProperties"], false);
        let accounts = Value::Object(for_action(CATALOG.get("list/accounts").expect("action")));
        assert!(accounts.get("required").is_none());
    }

    #[test]
    fn annotations_follow_the_method() {
        let hints = |slug| {
            let a = annotations(CATALOG.get(slug).expect("action"));
            (a.read_only_hint, a.destructive_hint)
        };
        assert_eq!(hints("list/conversations"), (Some(true), None));
        assert_eq!(hints("check/conversation/exists"), (Some(true), None));
        assert_eq!(hints("remove/conversation"), (Some(false), Some(true)));
        assert_eq!(hints("batch/remove/people"), (Some(false), Some(true)));
        assert_eq!(
            hints("send/message/in/conversation"),
            (Some(false), Some(false))
        );
    }
}
