//! The documents generated from the action catalog: OpenAPI, the Postman collection and llms.txt.
//!
//! Each is built once per process from `catalog::CATALOG` and served as is; `crisp-gateway
//! openapi` writes the first two under `openapi/`, and a test fails when the committed files
//! differ from what the code generates.

pub mod example;
mod llms;
mod openapi;
pub mod options;
mod postman;
pub mod schema;

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::catalog::{Action, CATALOG, ParamKind};

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

/// A request body that the action accepts, for examples in every document.
pub fn example_request(action: &Action) -> Value {
    let mut object = Map::new();
    for param in action.params.iter().filter(|p| p.required) {
        let value = match param.kind {
            ParamKind::Body => match &action.body {
                Some(ty) => example_body(action, schema::example(CATALOG.types(), ty)),
                None => continue,
            },
            _ => json!(example_path_value(param.name)),
        };
        object.insert(param.name.to_owned(), value);
    }
    Value::Object(object)
}

/// The example of a body type, with values Crisp would take for its common fields where the
/// type allows them.
fn example_body(action: &Action, body: Value) -> Value {
    let (Some(ty), Value::Object(fields)) = (&action.body, &body) else {
        return body;
    };
    let mut better = fields.clone();
    for (name, value) in fields {
        let known = match name.as_str() {
            "type" => "text",
            "from" => "operator",
            "origin" => "chat",
            "content" => "Hello from crisp-gateway",
            "email" => "jane@example.com",
            "locale" => "en",
            "nickname" => "Jane",
            _ => continue,
        };
        if !value.is_string() {
            continue;
        }
        let mut candidate = better.clone();
        candidate.insert(name.clone(), json!(known));
        let candidate = Value::Object(candidate);
        if CATALOG.types().check(ty, &candidate, "body").is_ok()
            && let Value::Object(candidate) = candidate
        {
            better = candidate;
        }
    }
    Value::Object(better)
}

fn example_path_value(name: &str) -> String {
    match name {
        "locale" => "en".into(),
        _ => format!("example-{name}"),
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
        (ParamKind::Body, _) => match &action.body {
            Some(_) => "The Crisp request body. Its JSON text, in a string, is accepted too; \
                fields the catalog does not list pass through to Crisp unchecked."
                .into(),
            None => {
                "Crisp takes no body for this call; leave it out (an object given is passed on)."
                    .into()
            }
        },
        (ParamKind::Query, _) => {
            let mut text = "Crisp query parameters: an object such as {\"per_page\":20}. A string \
                holding one, or a query string such as \"per_page=20&filter_unread=1\", is accepted too."
                .to_owned();
            if action.query.is_none()
                && let Some(notes) = action.notes
            {
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
