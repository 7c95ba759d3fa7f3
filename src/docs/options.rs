//! The gateway's own call options (`dry_run`, `pages`, `fields`) as JSON Schema, for every
//! document that lists an action's fields.

use serde_json::{Value, json};

/// The schema of one option, with what it does in its description.
pub fn schema(name: &str) -> Value {
    match name {
        "dry_run" => json!({
            "type": "boolean",
            "description": "Check everything (key scope, account, tier, websites, body) and answer the exact Crisp request that would be sent — method, path, query, body and account — without sending it. Confirm a write this way before making it.",
        }),
        "pages" => json!({
            "type": "integer",
            "minimum": 1,
            "description": "Fetch this many pages from `pageNumber` on (up to the gateway's `max_pages`, 20 unless configured) and answer them merged into one list; `next_page` says where to go on when more remain. Each page is a Crisp call.",
        }),
        "fields" => json!({
            "type": "array",
            "items": {"type": "string"},
            "description": "Keep only these dotted paths of each result item (`[\"session_id\", \"meta.email\"]`), to keep answers small.",
        }),
        _ => json!({}),
    }
}

/// The one-line description of an option.
pub fn description(name: &str) -> String {
    schema(name)["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
