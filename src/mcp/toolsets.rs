//! Toolsets: which tools an MCP endpoint offers, built once from the catalog.
//!
//! `/mcp` offers four meta-tools that reach every action; `/mcp/essentials` the connector's 16
//! tools; `/mcp/all` one tool per action; `/mcp/x/<domain>` the actions of one Crisp domain.
//! A `toolsets=a,b` query parameter picks a union instead. The lists are built once; what a
//! key may see is filtered per request, at list time.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use rmcp::model::{Tool, ToolAnnotations};
use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG};
use crate::error::{ApiError, Reason};

use super::essentials::{ESSENTIALS, Essential};
use super::schema;

/// What a tool runs.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    Search,
    Describe,
    Call,
    Action(&'static Action),
    Essential(&'static Essential, &'static Action),
}

impl Target {
    /// The catalog action behind the tool, for scope filtering; `None` for the meta-tools,
    /// which every key sees (they filter or check per action themselves).
    pub fn action(self) -> Option<&'static Action> {
        match self {
            Self::Action(action) | Self::Essential(_, action) => Some(action),
            Self::Search | Self::Describe | Self::Call => None,
        }
    }
}

#[derive(Debug)]
pub struct Entry {
    pub tool: Tool,
    pub target: Target,
}

/// A fixed list of tools with a name index.
pub struct ToolList {
    entries: Vec<Arc<Entry>>,
    by_name: HashMap<String, usize>,
}

impl ToolList {
    fn new(entries: Vec<Arc<Entry>>) -> Self {
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.tool.name.to_string(), i))
            .collect();
        Self { entries, by_name }
    }

    fn get(&self, name: &str) -> Option<&Arc<Entry>> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }
}

/// One tool per catalog action, named `crisp_` + the slug with `_`.
static ALL: LazyLock<ToolList> = LazyLock::new(|| {
    ToolList::new(
        CATALOG
            .current_first()
            .map(|action| {
                let tool = Tool::new(
                    action.tool.clone(),
                    action_description(action),
                    schema::for_action(action),
                )
                .with_title(action.title)
                .with_annotations(schema::annotations(action));
                let tool = match schema::output(action) {
                    Some(output) => tool.with_raw_output_schema(Arc::new(output)),
                    None => tool,
                };
                Arc::new(Entry {
                    tool,
                    target: Target::Action(action),
                })
            })
            .collect(),
    )
});

static ESSENTIAL_TOOLS: LazyLock<ToolList> = LazyLock::new(|| {
    ToolList::new(
        ESSENTIALS
            .iter()
            .filter_map(|essential| {
                // The table is checked against the catalog by a test; a stale row is dropped
                // rather than crashing a request.
                let action = essential.action()?;
                let tool = Tool::new(
                    essential.name,
                    essential.description(action),
                    essential.input_schema(action),
                )
                .with_title(action.title)
                .with_annotations(schema::annotations(action));
                // An essential answers with its action's envelope (`handler::run`).
                let tool = match schema::output(action) {
                    Some(output) => tool.with_raw_output_schema(Arc::new(output)),
                    None => tool,
                };
                Some(Arc::new(Entry {
                    tool,
                    target: Target::Essential(essential, action),
                }))
            })
            .collect(),
    )
});

static META: LazyLock<ToolList> = LazyLock::new(|| {
    let read = |title: &str| {
        ToolAnnotations::with_title(title)
            .read_only(true)
            .open_world(false)
    };
    let search = Tool::new(
        "crisp_search_actions",
        format!(
            "Find Crisp actions by words (e.g. \"send message\", \"helpdesk article\", \"people segments\"). \
             Returns up to `limit` actions the key may call, with their tool id, title, HTTP route and input schema. \
             All {} actions of the Crisp REST API v1 are reachable: search here, then run one with crisp_call_action.",
            CATALOG.actions().len()
        ),
        schema::object(
            json_object(json!({
                "query": {"type": "string", "description": "Words to look for in action names, titles and Crisp domains."},
                "domain": {"type": "string", "description": format!("Only actions of this Crisp domain: {}.", domains().join(", "))},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10, "description": "How many actions to return."},
            })),
            vec!["query".into()],
        ),
    )
    .with_title("Search Crisp actions")
    .with_annotations(read("Search Crisp actions"));
    let describe = Tool::new(
        "crisp_describe_action",
        "Describe one Crisp action (by slug such as `list/conversations` or tool id such as `crisp_list_conversations`): \
         its HTTP route, whether it writes, Crisp's notes on its body or query, and its input schema for crisp_call_action.",
        schema::object(
            json_object(json!({
                "action": {"type": "string", "description": "A slug (`get/conversation`) or tool id (`crisp_get_conversation`)."},
            })),
            vec!["action".into()],
        ),
    )
    .with_title("Describe a Crisp action")
    .with_annotations(read("Describe a Crisp action"));
    let call = Tool::new(
        "crisp_call_action",
        "Run any Crisp action through the gateway: `action` is a slug or tool id (find them with crisp_search_actions), \
         `arguments` its fields as an object (see crisp_describe_action), e.g. \
         {\"action\":\"send/message/in/conversation\",\"arguments\":{\"sessionID\":\"session_…\",\"body\":{\"type\":\"text\",\"from\":\"operator\",\"origin\":\"chat\",\"content\":\"Hi\"}}}. \
         Returns Crisp's data.",
        schema::object(
            json_object(json!({
                "action": {"type": "string", "description": "A slug (`list/conversations`) or tool id (`crisp_list_conversations`)."},
                "arguments": {"type": "object", "description": "The action's fields: account, websiteID, path parameters, body (writes) or query (reads)."},
            })),
            vec!["action".into()],
        ),
    )
    .with_title("Call a Crisp action")
    .with_annotations(
        ToolAnnotations::with_title("Call a Crisp action")
            .read_only(false)
            .destructive(true)
            .open_world(true),
    );
    let mut entries = vec![
        Arc::new(Entry {
            tool: search,
            target: Target::Search,
        }),
        Arc::new(Entry {
            tool: describe,
            target: Target::Describe,
        }),
        Arc::new(Entry {
            tool: call,
            target: Target::Call,
        }),
    ];
    if let Some(accounts) = CATALOG.get("list/accounts").and_then(|a| ALL.get(&a.tool)) {
        entries.push(accounts.clone());
    }
    ToolList::new(entries)
});

fn json_object(value: Value) -> serde_json::Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

pub fn action_description(action: &Action) -> String {
    let mut text = action.description();
    if action.write {
        // The connector asks agents to confirm writes; this is how they can see one first.
        text.push_str(
            " To confirm before writing, call it with `dry_run: true`: the answer is the exact Crisp request, not sent.",
        );
    }
    text
}

/// The Crisp domains the catalog groups actions into, sorted.
pub fn domains() -> Vec<&'static str> {
    let mut domains: Vec<&'static str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    domains
}

/// One named part of a selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Meta,
    Essentials,
    All,
    Domain(&'static str),
}

/// The toolsets one MCP request was made for, in precedence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection(Vec<Part>);

impl Selection {
    pub fn meta() -> Self {
        Self(vec![Part::Meta])
    }

    /// Parses `default`, `essentials`, `all` or a domain name; a comma list is a union.
    pub fn parse(list: &str) -> Result<Self, ApiError> {
        let mut parts = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let part = match name {
                "default" | "meta" => Part::Meta,
                "essentials" => Part::Essentials,
                "all" => Part::All,
                other => Part::Domain(domain(other)?),
            };
            if !parts.contains(&part) {
                parts.push(part);
            }
        }
        if parts.is_empty() {
            return Ok(Self::meta());
        }
        // The meta-tools and the connector's tools come first: on a shared name
        // (`crisp_list_conversations`) the connector's version, which also accepts the
        // catalog's field names, is the one served.
        parts.sort_by_key(|p| match p {
            Part::Meta => 0,
            Part::Essentials => 1,
            Part::All | Part::Domain(_) => 2,
        });
        Ok(Self(parts))
    }

    pub fn domain(name: &str) -> Result<Self, ApiError> {
        Ok(Self(vec![Part::Domain(domain(name)?)]))
    }

    pub fn essentials() -> Self {
        Self(vec![Part::Essentials])
    }

    pub fn all() -> Self {
        Self(vec![Part::All])
    }

    /// The tools of the selection, first occurrence of a name winning.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for part in &self.0 {
            let list: Box<dyn Iterator<Item = &Arc<Entry>>> = match part {
                Part::Meta => Box::new(META.entries.iter()),
                Part::Essentials => Box::new(ESSENTIAL_TOOLS.entries.iter()),
                Part::All => Box::new(ALL.entries.iter()),
                Part::Domain(domain) => Box::new(
                    ALL.entries
                        .iter()
                        .filter(move |e| e.target.action().is_some_and(|a| a.domain == *domain)),
                ),
            };
            for entry in list {
                if seen.insert(entry.tool.name.clone()) {
                    out.push(entry.clone());
                }
            }
        }
        out
    }

    /// The tool of that name in this selection.
    pub fn find(&self, name: &str) -> Option<Arc<Entry>> {
        self.0.iter().find_map(|part| match part {
            Part::Meta => META.get(name).cloned(),
            Part::Essentials => ESSENTIAL_TOOLS.get(name).cloned(),
            Part::All => ALL.get(name).cloned(),
            Part::Domain(domain) => ALL
                .get(name)
                .filter(|e| e.target.action().is_some_and(|a| a.domain == *domain))
                .cloned(),
        })
    }
}

fn domain(name: &str) -> Result<&'static str, ApiError> {
    let domains = domains();
    domains
        .iter()
        .copied()
        .find(|d| *d == name)
        .ok_or_else(|| {
            ApiError::not_found(
                Reason::UnknownToolset,
                format!(
                    "There is no toolset `{name}`. Use `default`, `essentials`, `all` or a Crisp domain: {}.",
                    domains.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(selection: &Selection) -> Vec<String> {
        selection
            .entries()
            .iter()
            .map(|e| e.tool.name.to_string())
            .collect()
    }

    #[test]
    fn sizes() {
        assert_eq!(
            names(&Selection::meta()),
            [
                "crisp_search_actions",
                "crisp_describe_action",
                "crisp_call_action",
                "crisp_list_accounts"
            ]
        );
        assert_eq!(Selection::essentials().entries().len(), 16);
        assert_eq!(
            Selection::all().entries().len(),
            crate::catalog::CATALOG.actions().len()
        );
        let people = Selection::domain("people").expect("domain");
        assert_eq!(people.entries().len(), 28);
        assert!(Selection::domain("nope").is_err());
    }

    #[test]
    fn unions_prefer_the_connector_tools() {
        let union = Selection::parse("all, essentials").expect("parses");
        let entries = union.entries();
        assert_eq!(
            entries.len(),
            crate::catalog::CATALOG.actions().len() + 16 - shared_names()
        );
        let list = union.find("crisp_list_conversations").expect("tool");
        assert!(matches!(list.target, Target::Essential(..)));
        assert_eq!(Selection::parse("").expect("empty"), Selection::meta());
        let err = Selection::parse("essentials,bogus").expect_err("unknown");
        assert_eq!(err.reason(), "unknown_toolset");
    }

    fn shared_names() -> usize {
        ESSENTIALS
            .iter()
            .filter(|e| CATALOG.find(e.name).is_some())
            .count()
    }
}
