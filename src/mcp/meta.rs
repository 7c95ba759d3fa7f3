//! The meta-tools' answers: searching and describing catalog actions, and reading the target
//! of `crisp_call_action`. Running an action is `call::execute`, as for every front end.

use serde_json::{Map, Value, json};

use crate::auth::Scope;
use crate::catalog::{Action, CATALOG, search};
use crate::error::{ApiError, Reason};

use super::schema;

const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 50;

/// `crisp_search_actions`: the actions the key may call that best match the words.
pub fn search(scope: &Scope, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
    let query = text_field(arguments, "query", "crisp_search_actions")?.unwrap_or_default();
    let domain = text_field(arguments, "domain", "crisp_search_actions")?;
    let limit = match arguments.get("limit") {
        None | Some(Value::Null) => DEFAULT_LIMIT,
        Some(value) => value
            .as_u64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    Reason::InvalidField,
                    format!("`limit` must be a whole number from 1 to {MAX_LIMIT}."),
                )
            })?,
    };
    if let Some(unknown) = arguments
        .keys()
        .find(|k| !matches!(k.as_str(), "query" | "domain" | "limit"))
    {
        return Err(ApiError::bad_request(
            Reason::UnknownField,
            format!(
                "`{unknown}` is not a field of `crisp_search_actions`; its fields are: query (required), domain, limit."
            ),
        ));
    }
    if let Some(domain) = &domain
        && !CATALOG.actions().iter().any(|a| a.domain == domain)
    {
        return Err(ApiError::bad_request(
            Reason::InvalidField,
            format!(
                "There is no domain `{domain}`; use one of: {}.",
                super::toolsets::domains().join(", ")
            ),
        ));
    }
    let in_reach = |a: &Action| scope.permits(a) && domain.as_deref().is_none_or(|d| a.domain == d);
    // No words: every action in reach, in catalog order, legacy ones last.
    let scored: Vec<&Action> = if query.trim().is_empty() {
        let mut all: Vec<&Action> = CATALOG.actions().iter().filter(|a| in_reach(a)).collect();
        all.sort_by_key(|a| a.legacy);
        all
    } else {
        search::rank(&query)
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| in_reach(a))
            .collect()
    };
    let total = scored.len();
    let actions: Vec<Value> = scored.into_iter().take(limit).map(summary).collect();
    let mut answer = json!({ "actions": actions, "matches": total });
    if total == 0 {
        answer["hint"] = format!(
            "No action the key may call matched. Closest names: {}. Try other words, or no `domain`.",
            CATALOG.closest(&query, 3).join(", ")
        )
        .into();
    }
    Ok(answer)
}

/// `crisp_describe_action`: one action in full.
pub fn describe(scope: &Scope, arguments: &Map<String, Value>) -> Result<Value, ApiError> {
    let action = target(arguments, "crisp_describe_action")?;
    scope.check(action)?;
    let mut answer = summary(action);
    answer["notes"] = action.notes.into();
    answer["call_with"] = json!({
        "tool": "crisp_call_action",
        "arguments": { "action": action.slug, "arguments": example_arguments(action) },
    });
    Ok(answer)
}

/// The action named by the `action` field (a slug or a tool id).
pub fn target(arguments: &Map<String, Value>, tool: &str) -> Result<&'static Action, ApiError> {
    let Some(name) = text_field(arguments, "action", tool)? else {
        return Err(ApiError::bad_request(
            Reason::MissingField,
            format!(
                "`action` is required by `{tool}`: a slug such as `list/conversations` or a tool id such as `crisp_list_conversations`."
            ),
        ));
    };
    let name = name.trim().trim_matches('/');
    CATALOG.find(name).ok_or_else(|| {
        ApiError::not_found(
            Reason::UnknownAction,
            format!(
                "There is no action `{}`. Closest: {}. Find actions with crisp_search_actions.",
                crate::kernel::text::truncate(name, 128),
                CATALOG
                    .closest(name, 3)
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

fn text_field(
    arguments: &Map<String, Value>,
    name: &str,
    tool: &str,
) -> Result<Option<String>, ApiError> {
    match arguments.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(
            Reason::InvalidField,
            format!("`{name}` of `{tool}` must be a string."),
        )),
    }
}

fn summary(action: &Action) -> Value {
    let (method, path) = action
        .route
        .as_ref()
        .map_or(("GATEWAY", ""), |r| (r.method.as_str(), r.path.as_str()));
    json!({
        "action": action.slug,
        "tool": action.tool,
        "title": action.title,
        "method": method,
        "path": path,
        "write": action.write,
        "domain": action.domain,
        "legacy": action.legacy,
        "tiers": action.tiers,
        "description": action.description(),
        "input_schema": schema::for_action(action),
    })
}

/// The required fields with placeholder values, so the call is one copy-edit away.
fn example_arguments(action: &Action) -> Value {
    let mut example = Map::new();
    for param in action.params.iter().filter(|p| p.required) {
        example.insert(param.name.to_owned(), format!("<{}>", param.name).into());
    }
    Value::Object(example)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn search_finds_by_words() {
        let found = search(
            &Scope::default(),
            &object(json!({"query": "send message conversation"})),
        )
        .expect("search");
        assert_eq!(
            found["actions"][0]["action"], "send/message/in/conversation",
            "{found}"
        );
        let people = search(
            &Scope::default(),
            &object(json!({"query": "profiles", "domain": "people", "limit": 3})),
        )
        .expect("search");
        assert_eq!(people["actions"].as_array().expect("list").len(), 3);
        assert_eq!(people["actions"][0]["action"], "list/people/profiles");
    }

    #[test]
    fn legacy_knowledge_base_actions_rank_after_todays() {
        let found = search(
            &Scope::default(),
            &object(json!({"query": "helpdesk", "limit": 50})),
        )
        .expect("search");
        let actions = found["actions"].as_array().expect("list");
        let legacy: Vec<bool> = actions
            .iter()
            .map(|a| a["legacy"].as_bool().expect("legacy flag"))
            .collect();
        assert!(legacy.contains(&true) && legacy.contains(&false), "{found}");
        assert!(
            legacy.windows(2).all(|w| w[0] <= w[1]),
            "a legacy action ranks above a current one: {found}"
        );
        let old = actions
            .iter()
            .find(|a| a["legacy"] == true)
            .expect("a legacy action");
        assert!(
            old["description"].as_str().is_some_and(
                |d| d.contains("For websites not yet moved to Crisp's new Knowledge Base")
            ),
            "{old}"
        );
    }

    #[test]
    fn search_respects_the_scope() {
        let read_only = Scope::from_record(true, None);
        let found =
            search(&read_only, &object(json!({"query": "remove conversation"}))).expect("search");
        for action in found["actions"].as_array().expect("list") {
            assert_eq!(action["write"], false, "{action}");
        }
        let err = describe(
            &read_only,
            &object(json!({"action": "remove/conversation"})),
        )
        .expect_err("hidden");
        assert_eq!(err.reason(), "write_not_allowed");
    }

    #[test]
    fn describe_by_tool_id_and_near_miss() {
        let described = describe(
            &Scope::default(),
            &object(json!({"action": "crisp_get_conversation"})),
        )
        .expect("describe");
        assert_eq!(described["action"], "get/conversation");
        assert_eq!(
            described["call_with"]["arguments"]["arguments"],
            json!({"sessionID": "<sessionID>"})
        );
        let err = describe(
            &Scope::default(),
            &object(json!({"action": "get/conversations"})),
        )
        .expect_err("unknown");
        assert!(
            err.message().contains("`get/conversation`"),
            "{}",
            err.message()
        );
    }
}
