//! The documents generated from the action catalog: OpenAPI, the Postman collection and llms.txt.
//!
//! Each is built once per process from `catalog::CATALOG` and served as is; `crisp-gateway
//! openapi` writes the first two under `openapi/`, and a test fails when the committed files
//! differ from what the code generates.

pub mod example;
mod llms;
pub mod notes;
mod openapi;
pub mod options;
mod postman;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::catalog::{Action, ParamKind};
use notes::{Field, Shape};

pub use openapi::document as openapi_document;

/// The OpenAPI 3.1 document, pretty-printed, as committed in `openapi/crisp-gateway.json`.
pub static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| pretty(&openapi::json()));
/// The Postman v2.1 collection, as committed in `openapi/crisp-gateway.postman.json`.
pub static POSTMAN_JSON: LazyLock<String> = LazyLock::new(|| pretty(&postman::collection()));
/// The page an agent reads before calling.
pub static LLMS_TXT: LazyLock<String> = LazyLock::new(llms::text);

/// The committed files, relative to the repository root, with their generated contents.
pub fn files() -> [(&'static str, &'static str); 2] {
    [
        ("crisp-gateway.json", OPENAPI_JSON.as_str()),
        ("crisp-gateway.postman.json", POSTMAN_JSON.as_str()),
    ]
}

/// Where the committed documents live in the repository.
pub const DIR: &str = "openapi";

/// Writes the documents into `dir`; returns the paths written.
pub fn write(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    files()
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            std::fs::write(&path, text)?;
            Ok(path)
        })
        .collect()
}

/// The documents in `dir` that are missing or differ from the generated ones.
pub fn stale(dir: &Path) -> Vec<PathBuf> {
    files()
        .into_iter()
        .map(|(name, text)| (dir.join(name), text))
        .filter(|(path, text)| std::fs::read_to_string(path).ok().as_deref() != Some(*text))
        .map(|(path, _)| path)
        .collect()
}

fn pretty(value: &Value) -> String {
    // Serialising a `Value` cannot fail: its keys are strings and it has no custom types.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

/// The body fields a write action's note names (`None` for reads and unreadable notes).
fn body_fields(action: &Action) -> Option<Vec<Field>> {
    if !action.write {
        return None;
    }
    action.notes.and_then(notes::body_fields)
}

/// A request body that the action accepts, for examples in every document.
pub fn example_request(action: &Action) -> Value {
    let mut object = Map::new();
    for param in action.params.iter().filter(|p| p.required) {
        object.insert(param.name.to_owned(), json!(example_path_value(param.name)));
    }
    if action.param("body").is_some()
        && let Some(fields) = body_fields(action)
    {
        object.insert("body".into(), example_object(&fields));
    }
    Value::Object(object)
}

fn example_path_value(name: &str) -> String {
    match name {
        "locale" => "en".into(),
        _ => format!("example-{name}"),
    }
}

/// An object with the note's required fields (or all of them, when every one is optional).
fn example_object(fields: &[Field]) -> Value {
    let all_optional = fields.iter().all(|f| f.optional);
    Value::Object(
        fields
            .iter()
            .filter(|f| all_optional || !f.optional)
            .map(|f| (f.name.clone(), example_value(f)))
            .collect(),
    )
}

fn example_value(field: &Field) -> Value {
    if let Some(default) = &field.default {
        return json!(default);
    }
    match &field.shape {
        Shape::Bool => json!(true),
        Shape::Enum(choices) => json!(choices.first()),
        Shape::Object(fields) if fields.is_empty() => json!({}),
        Shape::Object(fields) => example_object(fields),
        Shape::Array(Some(fields)) => json!([example_object(fields)]),
        Shape::Array(None) => json!([]),
        // Common Crisp field names get a value Crisp would take; the rest a placeholder.
        Shape::Any | Shape::String => json!(match field.name.as_str() {
            "type" => "text",
            "from" => "operator",
            "origin" => "chat",
            "content" => "Hello from crisp-gateway",
            "email" => "jane@example.com",
            "locale" => "en",
            "role" => "member",
            "period" => "monthly",
            _ => "example",
        }),
    }
}

/// How a parameter is described to people, in every document.
fn param_description(action: &Action, kind: ParamKind, name: &str) -> String {
    match (kind, name) {
        (ParamKind::Option, name) => options::description(name),
        (ParamKind::Account, _) => {
            "Which of the workspace's Crisp accounts to use, by id or label \
            (see `list/accounts`). Defaults to the workspace's default account."
                .into()
        }
        (ParamKind::Path, "websiteID") => {
            "The Crisp website id. Defaults to the website of the chosen account; must be one of \
            its `websites` (see `list/accounts`), else 403 `website_not_allowed`."
                .into()
        }
        (ParamKind::Path, "pageNumber") => {
            "The page to read, from 1 (the default). A number or its decimal text.".into()
        }
        (ParamKind::Path, name) => format!(
            "Fills `{{{name}}}` in the Crisp path {}. One path segment: any text except empty, \
             blank, `.` or `..`; it is percent-encoded.",
            action
                .route
                .as_ref()
                .map(|r| r.path.as_str())
                .unwrap_or_default()
        ),
        (ParamKind::Body, _) => {
            let mut text =
                "The Crisp request body: a JSON object (or a string holding one).".to_owned();
            if let Some(notes) = action.notes {
                text.push_str(&format!(" Crisp API reference: {notes}."));
            }
            text
        }
        (ParamKind::Query, _) => {
            let mut text = "Crisp query parameters: an object such as {\"per_page\":20}, a string \
                holding one, or a query string such as \"per_page=20&filter_unread=1\"."
                .to_owned();
            if let Some(notes) = action.notes {
                text.push_str(&format!(" Crisp API reference: {notes}."));
            }
            text
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;

    /// The committed documents are what the code generates; run `cargo run -- openapi` after
    /// changing the catalog or the generators.
    #[test]
    fn committed_documents_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR);
        let stale = stale(&dir);
        assert!(
            stale.is_empty(),
            "{stale:?} differ from the generated documents; run `cargo run -- openapi` and commit"
        );
    }

    #[test]
    fn every_example_is_accepted_by_the_gateway() {
        for action in CATALOG.actions() {
            let Value::Object(example) = example_request(action) else {
                panic!("{} example is not an object", action.slug);
            };
            let args = crate::call::args::from_object(action, example)
                .unwrap_or_else(|e| panic!("{}: {}", action.slug, e.message()));
            assert_eq!(args.body_problem, None, "{}", action.slug);
        }
    }

    #[test]
    fn send_message_example_is_a_real_message() {
        let action = CATALOG
            .get("send/message/in/conversation")
            .expect("action exists");
        assert_eq!(
            example_request(action),
            json!({
                "sessionID": "example-sessionID",
                "body": {"type": "text", "from": "operator", "origin": "chat", "content": "Hello from crisp-gateway"}
            })
        );
    }
}
