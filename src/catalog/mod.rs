//! The action catalog: the façade's 237 actions and the routes Crisp's current API added,
//! compiled once from `actions.toml`.
//!
//! Everything that lists or routes actions (the `/api/crisp/<action>` handler, `_endpoints`,
//! the sandbox) reads this one table; nothing restates an action by hand.

pub mod search;
mod template;
mod types;

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::Deserialize;

use crate::store::Tier;

pub use template::{COMPONENT, PathTemplate, Segment};
pub use types::{Field, Mismatch, Named, Shape, Ty, TypeId, Types};

/// How many actions the façade documents; a catalog with any other count of façade actions is a
/// broken build (their slugs are kept forever).
pub const FACADE_ACTIONS: usize = 237;

/// How many actions come from Crisp's current API beyond the façade.
pub const CRISP_ACTIONS: usize = 30;

const SOURCE: &str = include_str!("actions.toml");
const TYPES: &str = include_str!("types.toml");

/// The catalog, parsed and validated on first use. `main` touches it at start-up so a broken
/// data file stops the process before it serves anything.
pub static CATALOG: LazyLock<Catalog> = LazyLock::new(|| match Catalog::parse(SOURCE, TYPES) {
    Ok(catalog) => catalog,
    Err(problem) => panic!("the embedded action catalog is invalid: {problem}"),
});

/// The HTTP method of the real Crisp call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
        }
    }

    /// Whether the Crisp call changes state (everything but GET and HEAD).
    pub fn is_write(self) -> bool {
        !matches!(self, Self::Get | Self::Head)
    }
}

/// Where the gateway takes one request field from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// Picks one of the workspace's Crisp accounts by id or label.
    Account,
    /// A `{name}` segment of the Crisp path.
    Path,
    /// The upstream JSON body (write actions).
    Body,
    /// The upstream query string (read actions).
    Query,
}

/// One field an action accepts in its JSON request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub kind: ParamKind,
    pub required: bool,
    /// The default, when the gateway supplies one (`pageNumber` = 1, `websiteID` = the account's).
    pub default: Option<&'static str>,
}

/// The Crisp call behind an action; `None` for gateway-answered actions (`list/accounts`).
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: PathTemplate,
}

/// Where an action's name comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// One of the hosted façade's actions, whose names callers depend on.
    Facade,
    /// A route of Crisp's current API that the façade never had, named in the façade's style.
    Crisp,
}

#[derive(Debug)]
pub struct Action {
    /// Its position in the catalog (`CATALOG.actions()[index]`), for per-action tables.
    pub index: usize,
    /// The façade's slug, e.g. `list/conversations`.
    pub slug: &'static str,
    /// The MCP tool id, `crisp_` + the slug with `_` for `/`.
    pub tool: String,
    pub title: &'static str,
    pub route: Option<Route>,
    pub write: bool,
    /// A Crisp domain used to group actions (`conversations`, `people`, `helpdesk`, …).
    pub domain: &'static str,
    /// Body and query notes from the Crisp API reference, for documentation.
    pub notes: Option<&'static str>,
    pub params: Vec<Param>,
    pub origin: Origin,
    /// An old Knowledge Base route (`helpdesk/locale/…`) that Crisp's current client no longer
    /// sends: for websites not yet moved to Crisp's new Knowledge Base.
    pub legacy: bool,
    /// The token tiers Crisp documents for the route; empty when it documents none.
    pub tiers: Vec<Tier>,
    /// The Crisp body's type (writes that send one).
    pub body: Option<Ty>,
    /// Whether the caller must send `body`: its type has a required field.
    pub body_required: bool,
    /// The type of Crisp's `data` on success, where the catalog knows it.
    pub result: Option<Ty>,
    /// The query parameters the catalog knows (reads).
    pub query: Option<Ty>,
}

impl Action {
    pub fn param(&self, name: &str) -> Option<&Param> {
        self.params.iter().find(|p| p.name == name)
    }

    /// Whether an account of this tier may make the call, as far as Crisp documents it.
    pub fn allows(&self, tier: Tier) -> bool {
        self.tiers.is_empty() || self.tiers.contains(&tier)
    }

    /// One paragraph for tool lists and discovery: the title, the Crisp route, and what a
    /// caller must know before calling (legacy Knowledge Base, documented tiers, Crisp's notes).
    pub fn description(&self) -> String {
        let mut text = self.title.to_owned();
        match &self.route {
            Some(route) => {
                text.push_str(&format!(
                    " — Crisp {} {}.",
                    route.method.as_str(),
                    route.path.as_str()
                ));
                if self.is_head() {
                    text.push_str(" Answers {\"exists\":true|false}.");
                }
            }
            None => text
                .push_str(" — answered by the gateway: the workspace's connected Crisp accounts."),
        }
        if self.legacy {
            text.push(' ');
            text.push_str(LEGACY_NOTE);
        }
        if !self.tiers.is_empty() {
            let tiers: Vec<&str> = self.tiers.iter().map(|t| t.as_str()).collect();
            text.push_str(&format!(
                " Crisp token tiers: {} (an account of another tier is refused).",
                tiers.join(", ")
            ));
        }
        if let Some(notes) = self.notes {
            text.push_str(" Notes: ");
            text.push_str(notes);
        }
        text
    }

    /// A Crisp HEAD call answers with existence only.
    pub fn is_head(&self) -> bool {
        self.route
            .as_ref()
            .is_some_and(|r| r.method == Method::Head)
    }
}

/// What every legacy action's description says first.
pub const LEGACY_NOTE: &str = "For websites not yet moved to Crisp's new Knowledge Base: Crisp's \
    current API no longer has this route; websites on the new Knowledge Base use the helpdesk \
    tree, page and history actions.";

/// The path under which every action is served: `POST /api/crisp/<slug>`.
pub const ACTION_PATH: &str = "/api/crisp/";

/// What a request's path names, read once at the edge (`http::envelope`) and carried in the
/// request's extensions to the handler and the auth layer's audit.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// `/api/crisp/<name>` naming a catalog action, by its slug (`by_slug`) or its tool id.
    Action {
        action: &'static Action,
        by_slug: bool,
    },
    /// `/api/crisp/report`.
    Report,
    /// `/mcp` and below.
    Mcp,
    /// Anything else, an unknown action included.
    Other,
}

impl Target {
    pub fn of_path(path: &str) -> Self {
        match path.strip_prefix(ACTION_PATH) {
            Some("report") => Self::Report,
            Some(name) => match CATALOG.get(name) {
                Some(action) => Self::Action {
                    action,
                    by_slug: true,
                },
                None => CATALOG
                    .find(name)
                    .map_or(Self::Other, |action| Self::Action {
                        action,
                        by_slug: false,
                    }),
            },
            None if path == "/mcp" || path.starts_with("/mcp/") => Self::Mcp,
            None => Self::Other,
        }
    }

    /// The action a call is audited under: a catalog slug, `report`, `mcp`, or `unknown` —
    /// never the caller's text.
    pub fn audited(self) -> &'static str {
        match self {
            Self::Action { action, .. } => action.slug,
            Self::Report => "report",
            Self::Mcp => "mcp",
            Self::Other => "unknown",
        }
    }

    /// The action, when the path names it by its slug (the only way it can be called).
    pub fn callable(self) -> Option<&'static Action> {
        match self {
            Self::Action {
                action,
                by_slug: true,
            } => Some(action),
            _ => None,
        }
    }
}

pub struct Catalog {
    actions: Vec<Action>,
    types: Types,
    // foldhash: looked up on every request, and the keys are the catalog's own.
    by_slug: HashMap<&'static str, usize, foldhash::fast::RandomState>,
    by_tool: HashMap<String, usize, foldhash::fast::RandomState>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    action: Vec<RawAction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAction {
    slug: String,
    title: String,
    method: Option<Method>,
    path: Option<String>,
    write: bool,
    domain: String,
    notes: Option<String>,
    #[serde(default)]
    origin: Option<Origin>,
    #[serde(default)]
    legacy: bool,
    #[serde(default)]
    tiers: Vec<String>,
    body: Option<String>,
    result: Option<String>,
    query: Option<String>,
}

impl Catalog {
    /// Parses and validates a catalog. The strings live for the whole process, so they are leaked
    /// once here rather than cloned on every request.
    fn parse(source: &str, types: &str) -> Result<Self, String> {
        let types = Types::parse(types)?;
        let raw: RawCatalog = toml::from_str(source).map_err(|e| e.to_string())?;
        let mut actions = Vec::with_capacity(raw.action.len());
        for (index, raw) in raw.action.into_iter().enumerate() {
            actions.push(compile(index, raw, &types)?);
        }
        let facade = actions
            .iter()
            .filter(|a| a.origin == Origin::Facade)
            .count();
        if facade != FACADE_ACTIONS || actions.len() != FACADE_ACTIONS + CRISP_ACTIONS {
            return Err(format!(
                "expected {FACADE_ACTIONS} façade actions and {CRISP_ACTIONS} from Crisp's current API, found {facade} and {}",
                actions.len() - facade
            ));
        }
        let mut by_slug = HashMap::with_capacity_and_hasher(actions.len(), Default::default());
        let mut by_tool = HashMap::with_capacity_and_hasher(actions.len(), Default::default());
        for (i, action) in actions.iter().enumerate() {
            if by_slug.insert(action.slug, i).is_some() {
                return Err(format!("duplicate slug `{}`", action.slug));
            }
            if by_tool.insert(action.tool.clone(), i).is_some() {
                return Err(format!("duplicate tool id `{}`", action.tool));
            }
        }
        Ok(Self {
            actions,
            types,
            by_slug,
            by_tool,
        })
    }

    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Every action, today's API first and the legacy Knowledge Base actions last (each group
    /// in catalog order): the order lists for people and agents use.
    pub fn current_first(&self) -> impl Iterator<Item = &Action> {
        let (current, legacy): (Vec<&Action>, Vec<&Action>) =
            self.actions.iter().partition(|a| !a.legacy);
        current.into_iter().chain(legacy)
    }

    /// The named types that bodies, results and queries refer to.
    pub fn types(&self) -> &Types {
        &self.types
    }

    pub fn get(&self, slug: &str) -> Option<&Action> {
        self.by_slug.get(slug).map(|&i| &self.actions[i])
    }

    /// Finds an action by slug or by tool id (`crisp_list_conversations`).
    pub fn find(&self, slug_or_tool: &str) -> Option<&Action> {
        self.get(slug_or_tool)
            .or_else(|| self.by_tool.get(slug_or_tool).map(|&i| &self.actions[i]))
    }

    /// The slugs closest to a mistyped one, best first, for "did you mean" messages: the
    /// same ranking as the action search.
    pub fn closest(&self, wanted: &str, limit: usize) -> Vec<&'static str> {
        search::closest(wanted, limit)
    }
}

pub fn tool_id(slug: &str) -> String {
    format!("crisp_{}", slug.replace('/', "_"))
}

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn compile(index: usize, raw: RawAction, types: &Types) -> Result<Action, String> {
    let slug = raw.slug;
    let valid_slug = !slug.is_empty()
        && slug
            .split('/')
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    if !valid_slug {
        return Err(format!(
            "slug `{slug}` must be lowercase words joined by `/`"
        ));
    }
    let route = match (raw.method, raw.path) {
        (Some(method), Some(path)) => {
            let path = PathTemplate::parse(leak(path))
                .map_err(|e| format!("action `{slug}`: path: {e}"))?;
            if raw.write != method.is_write() {
                return Err(format!(
                    "action `{slug}`: write flag {} contradicts method {}",
                    raw.write,
                    method.as_str()
                ));
            }
            Some(Route { method, path })
        }
        (None, None) => None,
        _ => {
            return Err(format!(
                "action `{slug}` needs both method and path, or neither"
            ));
        }
    };
    let typed = |text: &Option<String>, what: &str| {
        text.as_deref()
            .filter(|t| *t != "none")
            .map(|t| types.expr(t))
            .transpose()
            .map_err(|e| format!("action `{slug}`: {what}: {e}"))
    };
    if raw.body.is_some() && !raw.write {
        return Err(format!(
            "action `{slug}`: a read sends no body; use `query`"
        ));
    }
    if raw.write && route.is_some() && raw.body.is_none() {
        return Err(format!(
            "action `{slug}`: a write declares its body: `body = \"TypeName\"` or `body = \"none\"`"
        ));
    }
    if raw.query.is_some() && raw.write {
        return Err(format!(
            "action `{slug}`: a write sends `body`, not `query`"
        ));
    }
    let body = typed(&raw.body, "body")?;
    let body_required = body.as_ref().is_some_and(|ty| types.requires_value(ty));
    let result = typed(&raw.result, "result")?;
    let query = typed(&raw.query, "query")?;
    let mut params = vec![Param {
        name: "account",
        kind: ParamKind::Account,
        required: false,
        default: None,
    }];
    if let Some(route) = &route {
        // `websiteID` first, then the other path parameters in path order, then `pageNumber`:
        // the order the façade documents them in.
        let names = route.path.params();
        let defaulted = |name: &str| match name {
            "websiteID" => Some("the account's website id"),
            "pageNumber" => Some("1"),
            _ => None,
        };
        let mut ordered: Vec<&'static str> = names
            .iter()
            .copied()
            .filter(|n| *n == "websiteID")
            .collect();
        ordered.extend(names.iter().copied().filter(|n| defaulted(n).is_none()));
        ordered.extend(names.iter().copied().filter(|n| *n == "pageNumber"));
        for name in ordered {
            params.push(Param {
                name,
                kind: ParamKind::Path,
                required: defaulted(name).is_none(),
                default: defaulted(name),
            });
        }
        params.push(if raw.write {
            Param {
                name: "body",
                kind: ParamKind::Body,
                required: body_required,
                default: None,
            }
        } else {
            Param {
                name: "query",
                kind: ParamKind::Query,
                required: false,
                default: None,
            }
        });
    }
    let tiers = raw
        .tiers
        .iter()
        .map(|t| t.parse::<Tier>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("action `{slug}`: tiers: {e}"))?;
    if raw.legacy && raw.origin == Some(Origin::Crisp) {
        return Err(format!(
            "action `{slug}`: an action from Crisp's current API cannot be legacy"
        ));
    }
    if raw.title.trim().is_empty() {
        return Err(format!("action `{slug}` has no title"));
    }
    Ok(Action {
        index,
        tool: tool_id(&slug),
        slug: leak(slug),
        title: leak(raw.title),
        route,
        write: raw.write,
        domain: leak(raw.domain),
        notes: raw.notes.map(leak),
        params,
        origin: raw.origin.unwrap_or(Origin::Facade),
        legacy: raw.legacy,
        tiers,
        body,
        body_required,
        result,
        query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_is_valid_and_complete() {
        let catalog = &*CATALOG;
        assert_eq!(catalog.actions().len(), FACADE_ACTIONS + CRISP_ACTIONS);
        let typed = catalog
            .actions()
            .iter()
            .filter(|a| a.result.is_some())
            .count();
        assert!(typed >= 80, "{typed} actions have a typed result");
        let legacy = catalog.actions().iter().filter(|a| a.legacy).count();
        assert_eq!(
            legacy, 35,
            "the old Knowledge Base's helpdesk/locale routes"
        );
        let counts = |m: Method| {
            catalog
                .actions()
                .iter()
                .filter(|a| a.route.as_ref().is_some_and(|r| r.method == m))
                .count()
        };
        assert_eq!(
            [
                counts(Method::Get),
                counts(Method::Head),
                counts(Method::Post),
                counts(Method::Put),
                counts(Method::Patch),
                counts(Method::Delete)
            ],
            [106, 15, 54, 14, 48, 29]
        );
    }

    #[test]
    fn swapped_titles_are_fixed() {
        assert_eq!(
            CATALOG.get("get/people/profile").map(|a| a.title),
            Some("Get People Profile")
        );
        assert_eq!(
            CATALOG.get("save/people/profile").map(|a| a.title),
            Some("Save People Profile")
        );
        assert_eq!(
            CATALOG.get("list/accounts").map(|a| a.title),
            Some("List Accounts")
        );
    }

    #[test]
    fn params_follow_the_facade_order() {
        let action = CATALOG
            .get("list/campaign/statistics")
            .expect("action exists");
        let names: Vec<_> = action.params.iter().map(|p| (p.name, p.required)).collect();
        assert_eq!(
            names,
            [
                ("account", false),
                ("websiteID", false),
                ("campaignID", true),
                ("action", true),
                ("pageNumber", false),
                ("query", false)
            ]
        );
        let accounts = CATALOG.get("list/accounts").expect("action exists");
        assert_eq!(accounts.params.len(), 1);
        assert!(accounts.route.is_none());
    }

    #[test]
    fn lookups_by_tool_and_near_misses() {
        assert_eq!(
            CATALOG.find("crisp_list_conversations").map(|a| a.slug),
            Some("list/conversations")
        );
        assert_eq!(
            CATALOG.closest("list/conversation", 1),
            ["list/conversations"]
        );
        assert_eq!(
            CATALOG.closest("conversations/list", 1),
            ["list/conversations"]
        );
    }

    #[test]
    fn broken_catalogs_are_refused() {
        let one = |body: &str| format!("[[action]]\n{body}\n");
        let cases = [
            (
                one(
                    "slug = \"a/b\"\ntitle = \"T\"\nmethod = \"GET\"\npath = \"/x/{id\"\nwrite = false\ndomain = \"d\"",
                ),
                "path",
            ),
            (
                one(
                    "slug = \"a/b\"\ntitle = \"T\"\nmethod = \"GET\"\npath = \"/x\"\nwrite = true\ndomain = \"d\"",
                ),
                "contradicts",
            ),
            (
                one("slug = \"A b\"\ntitle = \"T\"\nwrite = false\ndomain = \"d\""),
                "lowercase",
            ),
            (
                one(
                    "slug = \"a/b\"\ntitle = \"T\"\nmethod = \"FETCH\"\npath = \"/x\"\nwrite = false\ndomain = \"d\"",
                ),
                "FETCH",
            ),
            (
                one("slug = \"a/b\"\ntitle = \"T\"\nwrite = false\ndomain = \"d\""),
                "expected 237 façade actions",
            ),
        ];
        for (source, needle) in cases {
            let err = Catalog::parse(&source, "").err().expect("must be refused");
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
