//! JSON input schemas and annotations of MCP tools, derived from the catalog's parameters.
//!
//! Types stay plain (`string`, `integer`, `object`): some agent runtimes refuse `type` arrays
//! and `anyOf`, and the gateway accepts more than the schema says anyway (a `body` or `query`
//! given as a JSON string, a `pageNumber` given as text), exactly as the REST endpoint does.

use rmcp::model::{JsonObject, ToolAnnotations};
use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG, Method, Param, ParamKind, Shape, Ty, Types};
use crate::docs::schema::{self as types_schema, Refs};

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

/// The tool's `outputSchema`: the structured content of a successful call, which is the REST
/// success envelope (`handler::run`), with `result` typed by the catalog and every named type
/// it reaches in `$defs`, so the schema stands alone. `None` where the catalog does not know the
/// result's type: MCP clients check structured content against a declared schema.
pub fn output(action: &Action) -> Option<JsonObject> {
    let types = CATALOG.types();
    let (result, reach) = if action.is_head() {
        (
            json!({
                "type": "object",
                "properties": { "exists": { "type": "boolean", "description": "Whether Crisp has it." } },
                "required": ["exists"],
            }),
            None,
        )
    } else {
        let ty = action.result.as_ref()?;
        (types_schema::ty(types, ty, Refs::Defs), Some(ty))
    };
    let mut root = serde_json::Map::new();
    root.insert("type".into(), "object".into());
    root.insert(
        "properties".into(),
        json!({
            "ok": { "type": "boolean", "description": "Always true on success." },
            "tool": { "type": "string", "description": "The action's tool id." },
            "result": types_schema::described(result, "Crisp's `data`; the text content holds the same JSON."),
        }),
    );
    root.insert("required".into(), json!(["ok", "tool", "result"]));
    let mut schema = match reach {
        Some(ty) => types_schema::self_contained(types, root, ty),
        None => root,
    };
    // `fields` may keep any subset of a result's fields, and clients check every answer
    // against this schema: inside the result, no field is required.
    if let Some(Value::Object(defs)) = schema.get_mut("$defs") {
        for def in defs.values_mut() {
            if let Value::Object(def) = def {
                def.remove("required");
            }
        }
    }
    Some(schema)
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
        // `list/accounts` is answered by the gateway: `account` narrows its list.
        ParamKind::Account if action.route.is_none() => json!({
            "type": "string",
            "description": "Only this connected Crisp account, by id or label; all of the workspace's accounts when absent.",
        }),
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
        ParamKind::Body => typed_body(action),
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

/// The body with its fields named and typed from the catalog, in plain types: a union is left
/// untyped (its description says what it takes), so every agent runtime reads the schema.
fn typed_body(action: &Action) -> Value {
    let types = CATALOG.types();
    let Some(ty) = &action.body else {
        return body(action.notes);
    };
    let mut schema = plain(types, ty, 2);
    let description = format!(
        "The Crisp request body ({}): a JSON object (a string holding one is accepted too). Fields not listed pass through to Crisp.",
        types.describe(ty)
    );
    if let Value::Object(object) = &mut schema {
        object.insert("description".into(), description.into());
    }
    schema
}

/// A type in the plainest JSON Schema that says it: `depth` levels of named objects get
/// their properties, deeper ones are plain objects.
fn plain(types: &Types, ty: &Ty, depth: usize) -> Value {
    match ty {
        Ty::String => json!({"type": "string"}),
        Ty::Integer => json!({"type": "integer"}),
        Ty::Number => json!({"type": "number"}),
        Ty::Boolean => json!({"type": "boolean"}),
        Ty::Object => json!({"type": "object"}),
        Ty::Any | Ty::Null => json!({}),
        Ty::Array(item) => json!({"type": "array", "items": plain(types, item, depth)}),
        Ty::Union(members) => {
            let real: Vec<&Ty> = members.iter().filter(|m| **m != Ty::Null).collect();
            match real.as_slice() {
                [one] => plain(types, one, depth),
                _ => json!({"description": format!("One of: {}.", types.describe(ty))}),
            }
        }
        Ty::Named(id) => {
            let named = types.named(*id);
            match &named.shape {
                Shape::Enum(values) => json!({"type": "string", "enum": values}),
                Shape::Map(_) => json!({"type": "object", "description": named.about}),
                Shape::Fields(_) if depth == 0 => {
                    json!({"type": "object", "description": format!("{} ({})", named.about, named.name)})
                }
                Shape::Fields(fields) => {
                    let mut properties = serde_json::Map::new();
                    for field in fields {
                        let mut schema = plain(types, &field.ty, depth - 1);
                        if let Value::Object(object) = &mut schema {
                            let text = match object.get("description").and_then(Value::as_str) {
                                Some(more) => format!("{} {more}", field.about),
                                None => field.about.to_owned(),
                            };
                            object.insert("description".into(), text.into());
                        }
                        properties.insert(field.name.to_owned(), schema);
                    }
                    let required: Vec<&str> = fields
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name)
                        .collect();
                    let mut schema = json!({"type": "object", "properties": properties});
                    if !required.is_empty() {
                        schema["required"] = json!(required);
                    }
                    schema
                }
            }
        }
    }
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
    fn bodies_name_their_fields_in_plain_types() {
        let action = CATALOG.get("send/message/in/conversation").expect("action");
        let schema = Value::Object(for_action(action));
        let body = &schema["properties"]["body"];
        assert_eq!(body["type"], "object");
        assert_eq!(
            body["required"],
            json!(["type", "from", "origin", "content"])
        );
        assert_eq!(
            body["properties"]["from"]["enum"],
            json!(["user", "operator"])
        );
        assert_eq!(body["properties"]["origin"]["type"], "string");
        // A union stays untyped, described in words, for runtimes that refuse `anyOf`.
        assert!(body["properties"]["content"].get("type").is_none());
        assert!(!body.to_string().contains("anyOf"));
        assert_eq!(schema["required"], json!(["sessionID", "body"]));
    }

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
            [
                "account",
                "websiteID",
                "sessionID",
                "fingerprint",
                "query",
                "fields"
            ]
        );
        assert_eq!(schema["additionalProperties"], false);
        let accounts = Value::Object(for_action(CATALOG.get("list/accounts").expect("action")));
        assert!(accounts.get("required").is_none());
    }

    #[test]
    fn output_schemas_stand_alone() {
        let action = CATALOG.get("get/conversation").expect("action");
        let schema = Value::Object(output(action).expect("typed result"));
        assert_eq!(schema["type"], "object");
        assert_eq!(
            schema["properties"]["result"]["$ref"],
            "#/$defs/Conversation"
        );
        let defs = schema["$defs"].as_object().expect("$defs");
        // Every reference resolves inside the schema, and nothing unreached is carried.
        let text = schema.to_string();
        let mut referenced: Vec<&str> = text
            .split("\"#/$defs/")
            .skip(1)
            .map(|piece| &piece[..piece.find('"').expect("end")])
            .collect();
        referenced.sort_unstable();
        referenced.dedup();
        let mut defined: Vec<&str> = defs.keys().map(String::as_str).collect();
        defined.sort_unstable();
        assert_eq!(referenced, defined);
        assert!(!text.contains("#/components/"));

        let send = CATALOG.get("check/conversation/exists").expect("action");
        let head = Value::Object(output(send).expect("HEAD answers existence"));
        assert!(head.get("$defs").is_none());
        assert_eq!(head["properties"]["result"]["required"], json!(["exists"]));
        let untyped = CATALOG
            .actions()
            .iter()
            .find(|a| a.result.is_none() && !a.is_head())
            .expect("an action without a result type");
        assert!(output(untyped).is_none());
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
