//! `llms.txt`: what the gateway is, how to call it, and every action with its parameters.

use std::fmt::Write;

use crate::catalog::{CATALOG, ParamKind};

pub fn text() -> String {
    let mut out = String::new();
    out.push_str(HEADER);
    let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        let _ = writeln!(out, "\n## {domain}\n");
        for action in CATALOG.actions().iter().filter(|a| a.domain == domain) {
            let crisp = action
                .route
                .as_ref()
                .map(|r| format!("Crisp `{} {}`", r.method.as_str(), r.path.as_str()))
                .unwrap_or_else(|| "answered by the gateway".into());
            let params: Vec<String> = action
                .params
                .iter()
                .map(|p| {
                    let mut text = format!("`{}`", p.name);
                    if p.required {
                        text.push_str(" (required)");
                    } else if let Some(default) = p.default {
                        let _ = write!(text, " (default: {default})");
                    } else if p.kind != ParamKind::Account {
                        text.push_str(" (optional)");
                    }
                    text
                })
                .collect();
            let _ = write!(
                out,
                "- `{}` — {}{}. {crisp}. Tool `{}`. Fields: {}.",
                action.slug,
                action.title,
                if action.write { " [write]" } else { "" },
                action.tool,
                params.join(", ")
            );
            if let Some(notes) = action.notes {
                let _ = write!(out, " Notes: {notes}.");
            }
            out.push('\n');
        }
    }
    out
}

const HEADER: &str = r#"# crisp-gateway

> A self-hosted HTTP gateway that puts the whole Crisp REST API v1 (the façade's 237 actions and
> Crisp's current routes) behind one workspace key. Every action is `POST /api/crisp/<action>` with a JSON object of its fields.

## Authenticate

Send `Authorization: Bearer sk_live_…` with a workspace key (made by `crisp-gateway key create`).
Missing, revoked or expired keys get 401. Keys may be read-only or limited to some actions (403).

## Call

    POST /api/crisp/list/conversations
    Content-Type: application/json

    {"query": {"per_page": 20}}

Fields, by kind:
- `account` (optional): which Crisp account of the workspace, by id or label; see `list/accounts`.
- `websiteID` (optional): defaults to the chosen account's website; must be one of the
  account's `websites` (see `list/accounts`), else 403 `website_not_allowed`.
- path parameters such as `sessionID`, `peopleID`, `locale` (required strings; mind the case:
  `sessionID` but `articleId`).
- `pageNumber` (optional, from 1, default 1) on list actions.
- `body` (write actions): the Crisp request body, a JSON object or a string holding one.
- `query` (read actions): Crisp query parameters, an object, a string holding one, or a query
  string such as `per_page=20&filter_unread=1`.
Unknown fields are refused with a 400 that names the closest field.

## Answers

Success: `{"ok": true, "tool": "crisp_list_conversations", "result": <Crisp data>}`.
HEAD actions (`check/…/exists`) answer `{"exists": true|false}` as `result`.
Error: `{"ok": false, "tool": …, "error": {"status", "reason", "message", "request_id"}}`; the
`message` says what to do, `reason` is stable (`unknown_field`, `missing_field`, `unauthorized`,
`account_not_found`, …). 429 and 503 carry `Retry-After`.

## More

- `GET /api/crisp/_endpoints`: every action as JSON.
- `GET /openapi.json`: the OpenAPI 3.1 document (browse it at `/docs`).
- `GET /postman.json`: a Postman v2.1 collection.
- Each action is also an MCP tool named `crisp_` + the slug with `_` for `/`.

# Actions
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_is_listed_with_its_fields() {
        let text = text();
        for action in CATALOG.actions() {
            assert!(
                text.contains(&format!("- `{}` — ", action.slug)),
                "{} missing",
                action.slug
            );
        }
        assert!(text.contains("`sessionID` (required)"));
        assert!(text.contains("`pageNumber` (default: 1)"));
    }
}
