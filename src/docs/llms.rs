//! `llms.txt`: what the gateway is, how to call it, and every action with its parameters.

use std::fmt::Write;

use crate::catalog::{CATALOG, ParamKind, Shape};

pub fn text() -> String {
    let types = CATALOG.types();
    let mut out = String::new();
    out.push_str(HEADER);
    let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    for domain in domains {
        let _ = writeln!(out, "\n## {domain}\n");
        // Current actions first: a legacy one is for websites still on the old Knowledge Base.
        let mut actions: Vec<_> = CATALOG
            .actions()
            .iter()
            .filter(|a| a.domain == domain)
            .collect();
        actions.sort_by_key(|a| a.legacy);
        for action in actions {
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
            if action.legacy {
                out.push_str(" Legacy: for websites not yet moved to Crisp's new Knowledge Base.");
            }
            if !action.tiers.is_empty() {
                let tiers: Vec<&str> = action.tiers.iter().map(|t| t.as_str()).collect();
                let _ = write!(out, " Tiers: {}.", tiers.join(", "));
            }
            if let Some(body) = &action.body {
                let _ = write!(out, " Body: `{}`.", types.describe(body));
            }
            if let Some(query) = &action.query {
                let _ = write!(out, " Query: `{}`.", types.describe(query));
            }
            if let Some(result) = &action.result {
                let _ = write!(out, " Result: `{}`.", types.describe(result));
            }
            if let Some(notes) = action.notes {
                let _ = write!(out, " Notes: {notes}.");
            }
            out.push('\n');
        }
    }
    out.push_str("\n# Types\n\nFields marked (required) must be sent; others are optional. Fields a type does not list pass through to Crisp unchecked.\n");
    for named in types.all() {
        let _ = writeln!(out, "\n## {}\n\n{}", named.name, named.about);
        match &named.shape {
            Shape::Fields(fields) => {
                for field in fields {
                    let _ = writeln!(
                        out,
                        "- `{}`: `{}`{} — {}",
                        field.name,
                        types.describe(&field.ty),
                        if field.required { " (required)" } else { "" },
                        field.about
                    );
                }
            }
            Shape::Enum(values) => {
                let values: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
                let _ = writeln!(out, "One of: {}.", values.join(", "));
            }
            Shape::Map(value) => {
                let _ = writeln!(
                    out,
                    "An object whose values are `{}`.",
                    types.describe(value)
                );
            }
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
Unknown fields are refused with a 400 that names the closest field. A `body` is checked
against the action's body type (listed under each action, defined under Types below): a
missing required field or a wrong type is 400 `invalid_body` naming the field and the type;
fields the type does not list pass through.

## Tiers

Each Crisp account is linked with its token's tier: `website` (a token from the workspace's
settings), `plugin` (a Marketplace plugin token) or `user` (an operator's own keypair). Some
actions name the tiers Crisp accepts (`Tiers:` below); a call the account's tier cannot make is
refused with 403 `tier_not_allowed`, which names the tiers it needs.

## Legacy actions

Actions marked `Legacy` are the old Knowledge Base's `helpdesk/locale/…` routes, for websites
not yet moved to Crisp's new Knowledge Base; the `helpdesk/tree/…`, `helpdesk/page/…` and
`helpdesk/history/…` actions are the current ones.

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
        assert!(text.contains("Body: `MessageNew`."));
        assert!(text.contains("\n## MessageNew\n"));
        assert!(text.contains("Tiers: user."));
        let current = text.find("- `list/helpdesk/tree` — ").expect("current");
        let legacy = text
            .find("- `list/helpdesk/locale/articles` — ")
            .expect("legacy");
        assert!(current < legacy, "legacy actions come after current ones");
    }
}
