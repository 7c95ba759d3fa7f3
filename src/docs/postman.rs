//! The Postman v2.1 collection: one folder per Crisp domain, one request per action, in an order
//! that runs top to bottom on a fresh account.
//!
//! `baseUrl` and `apiKey` are collection variables. Ids come from the collection's own earlier
//! requests: the first request makes a conversation and keeps its `session_id` in `sessionID`,
//! the requests below use `{{sessionID}}`; the same for a profile, a team, a campaign, and the
//! rest ([`CHAINED`]). Deletes wait in a last folder until every read is done. Actions an
//! account of the collection's `accountTier` may not call skip themselves, with their reason.
//! Every request carries a test that checks the success envelope, so `newman run` proves the
//! collection against a live gateway (`.ci/checks/postman.sh` does, on the sandbox).

use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG, Method, ParamKind};
use crate::store::Tier;

use super::example;

const SCHEMA: &str = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

/// The folder of deletes and removals, run after every other folder.
pub const CLEAN_UP: &str = "Clean up";

/// The folder of actions the collection's account cannot call; each skips itself.
pub const NOT_RUN: &str = "Not run against the sandbox";

/// The tier the collection assumes its account has (the `accountTier` variable); actions whose
/// documented tiers exclude it skip themselves.
const DEFAULT_TIER: Tier = Tier::Website;

/// A variable an earlier request sets from its result.
#[derive(Debug, Clone, Copy)]
pub struct Chained {
    pub variable: &'static str,
    /// The action whose request keeps it.
    pub by: &'static str,
    /// Where in the gateway's answer the value is.
    pub path: &'static str,
    /// A variable with a default keeps it when the answer carries no id (Crisp's answer, or a
    /// sandbox that keeps no state for the resource); one without must be set, and the
    /// request that keeps it fails otherwise.
    pub has_default: bool,
}

const fn set(variable: &'static str, by: &'static str, path: &'static str) -> Chained {
    Chained {
        variable,
        by,
        path,
        has_default: false,
    }
}

const fn set_or_default(variable: &'static str, by: &'static str, path: &'static str) -> Chained {
    Chained {
        has_default: true,
        ..set(variable, by, path)
    }
}

/// The ids the collection makes and keeps. Paths read `result.a.b`, `result[0]` (an item by
/// position) and `result[a.b=text]` (the first item whose `a.b` is `text`); each keeping script
/// says its path in a comment, so a reader (and `tests/it/docs.rs`) can follow the chain
/// without reading JavaScript.
pub const CHAINED: &[Chained] = &[
    set(
        "userID",
        "list/website/operators",
        "result[0].details.user_id",
    ),
    set(
        "invitedUserID",
        "list/website/operators",
        "result[details.email=ada@example.com].details.user_id",
    ),
    set("peopleID", "add/new/people/profile", "result.people_id"),
    set("sessionID", "create/new/conversation", "result.session_id"),
    set(
        "fingerprint",
        "send/message/in/conversation",
        "result.fingerprint",
    ),
    set("teamID", "create/new/team", "result.team_id"),
    set_or_default("inboxID", "create/new/inbox", "result.inbox_id"),
    set_or_default("campaignID", "create/new/campaign", "result.campaign_id"),
    set_or_default(
        "templateID",
        "create/new/campaign/template",
        "result.template_id",
    ),
    set(
        "changeID",
        "list/helpdesk/history/changes",
        "result[0].change_id",
    ),
    set("entityID", "list/helpdesk/pages", "result[0].entity_id"),
    set_or_default(
        "categoryId",
        "add/helpdesk/locale/category",
        "result.category_id",
    ),
    set_or_default(
        "articleId",
        "add/new/helpdesk/locale/article",
        "result.article_id",
    ),
];

/// Requests that run first in their folder, in this order: the ones that set a chained variable,
/// and the ones that make what the fixed example values name (the Knowledge Base tree path
/// `{{path}}`, whose creation is also the first change of the history).
const RUN_FIRST: &[&str] = &[
    "invite/website/operator",
    "list/website/operators",
    "add/new/people/profile",
    "create/new/conversation",
    "send/message/in/conversation",
    "create/new/team",
    "create/new/inbox",
    "create/new/campaign",
    "create/new/campaign/template",
    "initialize/helpdesk",
    "add/helpdesk/locale",
    "create/helpdesk/tree/path",
    "list/helpdesk/history/changes",
    "list/helpdesk/pages",
    "add/helpdesk/locale/category",
    "add/new/helpdesk/locale/article",
];

/// Variables whose value names what a request of the collection makes, rather than the example
/// value of reference documents (the sandbox already has a `getting-started` page):
/// (variable, value, what makes it).
const MADE_HERE: &[(&str, &str, &str)] = &[(
    "path",
    "postman-example",
    "The Knowledge Base tree path that `create/helpdesk/tree/path` makes.",
)];

/// Path values that are not the variable of the same name: (action, parameter, variable). The
/// membership change and the unlink act on the operator the collection invited, never on the
/// website's owner, so the collection can run again on the same sandbox.
const OTHER_VARIABLE: &[(&str, &str, &str)] = &[
    ("change/operator/membership", "userID", "invitedUserID"),
    ("unlink/operator/from/website", "userID", "invitedUserID"),
];

/// Domains whose folders run first, in this order (later ones use the ids these make); the
/// other domains follow alphabetically.
const FOLDERS_FIRST: &[&str] = &[
    "operators",
    "people",
    "conversations",
    "teams",
    "inboxes",
    "campaigns",
    "helpdesk",
];

/// Where an action runs in the collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// In `RUN_FIRST`: runs first in its folder.
    Sets(usize),
    Read,
    Write,
    /// Deletes or removes something: runs in the clean-up folder.
    Destroys,
}

fn phase(action: &Action) -> Phase {
    if let Some(i) = RUN_FIRST.iter().position(|slug| *slug == action.slug) {
        return Phase::Sets(i);
    }
    let method = action.route.as_ref().map(|r| r.method);
    let destroys = method == Some(Method::Delete)
        || ["remove/", "batch/remove/", "unlink/", "delete/"]
            .iter()
            .any(|p| action.slug.starts_with(p));
    match method {
        _ if destroys => Phase::Destroys,
        Some(m) if m.is_write() => Phase::Write,
        _ => Phase::Read,
    }
}

/// Why the collection's account cannot run an action, if it cannot.
fn not_run_reason(action: &Action) -> Option<String> {
    if action.allows(DEFAULT_TIER) {
        return None;
    }
    let tiers: Vec<&str> = action.tiers.iter().map(|t| t.as_str()).collect();
    Some(format!(
        "Crisp takes this route from {} tokens only; the collection's account is {}-tier \
         (`accountTier`), so the gateway would answer 403 tier_not_allowed. Set `accountTier` \
         to `{}` to run it with such an account.",
        tiers.join(" or "),
        DEFAULT_TIER.as_str(),
        tiers.first().copied().unwrap_or("user"),
    ))
}

/// The folders in run order: `(name, actions)`.
pub fn folders() -> Vec<(String, Vec<&'static Action>)> {
    let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_by_key(|d| {
        (
            FOLDERS_FIRST
                .iter()
                .position(|f| f == d)
                .unwrap_or(usize::MAX),
            *d,
        )
    });
    domains.dedup();
    let runs = |a: &&Action| not_run_reason(a).is_none();
    let mut folders: Vec<(String, Vec<&'static Action>)> = domains
        .into_iter()
        .map(|domain| {
            let mut actions: Vec<&Action> = CATALOG
                .actions()
                .iter()
                .filter(|a| a.domain == domain && phase(a) != Phase::Destroys)
                .filter(runs)
                .collect();
            actions.sort_by_key(|a| phase(a));
            (domain.to_owned(), actions)
        })
        .filter(|(_, actions)| !actions.is_empty())
        .collect();
    // What is below something goes before it (a message before its conversation), and the
    // operator the other removals act as goes last.
    let mut clean_up: Vec<&Action> = CATALOG
        .actions()
        .iter()
        .filter(|a| phase(a) == Phase::Destroys)
        .filter(runs)
        .collect();
    clean_up.sort_by_key(|a| {
        let ids = a
            .params
            .iter()
            .filter(|p| p.kind == ParamKind::Path && p.required)
            .count();
        (a.slug.starts_with("unlink/"), std::cmp::Reverse(ids))
    });
    folders.push((CLEAN_UP.to_owned(), clean_up));
    let not_run: Vec<&Action> = CATALOG.actions().iter().filter(|a| !runs(a)).collect();
    folders.push((NOT_RUN.to_owned(), not_run));
    folders
}

/// The value a path parameter or id takes in the collection: a chained or defaulted variable.
fn variable(param: &str) -> String {
    format!("{{{{{param}}}}}")
}

/// The collection variables: the run's own, then a default for every id that no request sets.
fn variables() -> Vec<Value> {
    let mut names: Vec<&str> = Vec::new();
    for action in CATALOG.actions() {
        for param in action
            .params
            .iter()
            .filter(|p| p.kind == ParamKind::Path && p.required)
        {
            if !names.contains(&param.name) {
                names.push(param.name);
            }
        }
    }
    // Ids used only inside bodies (`inbox_id`, `plugin_id`) need a value too.
    let mut names: Vec<String> = names.into_iter().map(str::to_owned).collect();
    for action in CATALOG.actions() {
        for name in placeholders(&example::request(action, &variable)) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort_unstable();
    let mut out = vec![
        json!({ "key": "baseUrl", "value": "http://127.0.0.1:8080", "type": "string" }),
        json!({ "key": "apiKey", "value": "", "type": "string" }),
        json!({ "key": "accountTier", "value": DEFAULT_TIER.as_str(), "type": "string" }),
    ];
    for name in &names {
        let chained = CHAINED.iter().find(|c| c.variable == name);
        let made_here = MADE_HERE.iter().find(|(v, _, _)| v == name);
        let value = match (chained, made_here) {
            (Some(c), _) if !c.has_default => String::new(),
            (_, Some((_, value, _))) => (*value).to_owned(),
            _ => example::literal_id(name),
        };
        let description = match (chained, made_here) {
            (Some(c), _) => format!("Set by `{}`.", c.by),
            (_, Some((_, _, what))) => (*what).to_owned(),
            _ => "A fixed example value.".to_owned(),
        };
        out.push(json!({
            "key": name, "value": value, "type": "string", "description": description,
        }));
    }
    out
}

/// The `{{name}}` placeholders in a value's strings, in order of appearance.
pub fn placeholders(value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut walk = vec![value];
    while let Some(v) = walk.pop() {
        match v {
            Value::String(text) => {
                let mut rest = text.as_str();
                while let Some((_, after)) = rest.split_once("{{") {
                    let Some((name, tail)) = after.split_once("}}") else {
                        break;
                    };
                    if !found.iter().any(|f| f == name) {
                        found.push(name.to_owned());
                    }
                    rest = tail;
                }
            }
            Value::Array(items) => walk.extend(items.iter().rev()),
            Value::Object(map) => walk.extend(map.values().rev()),
            _ => {}
        }
    }
    found
}

fn collection_items() -> Vec<Value> {
    folders()
        .into_iter()
        .map(|(name, actions)| {
            let description = match name.as_str() {
                CLEAN_UP => "Deletes and removals, run after every read that needs the thing. \
                    What is below something is removed before it."
                    .to_owned(),
                NOT_RUN => "Actions the collection's account cannot call; each request skips \
                    itself (its description says why) unless `accountTier` allows it."
                    .to_owned(),
                _ => format!("The `{name}` actions."),
            };
            let items: Vec<Value> = actions.into_iter().map(request).collect();
            json!({ "name": name, "description": description, "item": items })
        })
        .collect()
}

pub fn collection() -> Value {
    let items = collection_items();
    json!({
        "info": {
            "name": "crisp-gateway",
            "description": "Every Crisp REST API v1 action through crisp-gateway, generated from its action catalog. \
                Set `baseUrl` (default http://127.0.0.1:8080) and `apiKey` (a `sk_live_…` workspace key) \
                in the collection variables, or pass them to newman: `newman run crisp-gateway.postman.json \
                --env-var baseUrl=http://127.0.0.1:8080 --env-var apiKey=sk_live_…`.\n\n\
                The requests run top to bottom and chain their ids: early requests invite an operator, add a \
                profile, create a conversation, a team, an inbox, a campaign and a Knowledge Base page, and \
                keep their ids in collection variables (`sessionID`, `peopleID`, `teamID`…) for the requests \
                below; deletes run last, in `Clean up`, so the collection can run again. Requests the \
                account's tier cannot make (`accountTier`, default `website`) skip themselves, with the \
                reason in their description.\n\n\
                Every write is sent for real: run it against `crisp-gateway sandbox`, not an account \
                whose data matters (it renames the website, unsubscribes its plan, deletes its helpdesk).",
            "version": env!("CARGO_PKG_VERSION"),
            "schema": SCHEMA,
        },
        "auth": {
            "type": "bearer",
            "bearer": [{ "key": "token", "value": "{{apiKey}}", "type": "string" }],
        },
        "variable": variables(),
        "item": items,
    })
}

fn request(action: &Action) -> Value {
    let id = |param: &str| {
        OTHER_VARIABLE
            .iter()
            .find(|(slug, p, _)| *slug == action.slug && *p == param)
            .map_or_else(|| variable(param), |(_, _, other)| variable(other))
    };
    let raw = serde_json::to_string_pretty(&example::request(action, &id)).unwrap_or_default();
    let mut description = action
        .route
        .as_ref()
        .map(|r| format!("Calls Crisp `{} {}`.", r.method.as_str(), r.path.as_str()))
        .unwrap_or_else(|| "Answered by the gateway itself.".into());
    if let Some(notes) = action.notes {
        description.push_str(&format!(" Notes: {notes}."));
    }
    let mut events = Vec::new();
    if let Some(reason) = not_run_reason(action) {
        description = format!("Not run against the sandbox: {reason}\n\n{description}");
        let tiers: Vec<String> = action
            .tiers
            .iter()
            .map(|t| format!("\"{}\"", t.as_str()))
            .collect();
        events.push(json!({
            "listen": "prerequest",
            "script": { "type": "text/javascript", "exec": [
                format!("// {reason}"),
                format!(
                    "if (![{}].includes(pm.variables.get(\"accountTier\"))) {{",
                    tiers.join(", ")
                ),
                "    pm.execution.skipRequest();".to_owned(),
                "}".to_owned(),
            ]},
        }));
    }
    let mut test = vec![
        format!("pm.test(\"{} answers ok\", function () {{", action.slug),
        "    pm.response.to.have.status(200);".into(),
        "    const body = pm.response.json();".into(),
        "    pm.expect(body.ok).to.eql(true);".into(),
        format!("    pm.expect(body.tool).to.eql(\"{}\");", action.tool),
        "    pm.expect(body).to.have.property(\"result\");".into(),
        "});".into(),
    ];
    if action.is_head() {
        test.extend([
            format!("pm.test(\"{} finds it\", function () {{", action.slug),
            "    pm.expect(pm.response.json().result.exists).to.eql(true);".into(),
            "});".into(),
        ]);
    }
    for Chained {
        variable: name,
        path: pick,
        has_default,
        ..
    } in CHAINED.iter().filter(|c| c.by == action.slug)
    {
        test.push(format!("pm.test(\"keeps {name}\", function () {{"));
        test.push(format!("    // keeps {name} from {pick}"));
        test.push("    const result = pm.response.json().result;".into());
        test.push(format!("    const value = {};", safe_path(pick)));
        if *has_default {
            test.extend([
                "    // Crisp's answer may carry no id; the variable then keeps its example value."
                    .into(),
                "    if (value !== undefined && value !== null && String(value) !== \"\") {".into(),
                format!("        pm.collectionVariables.set(\"{name}\", String(value));"),
                "    }".into(),
            ]);
        } else {
            test.extend([
                "    pm.expect(value, \"the id in the result\").to.not.be.oneOf([undefined, null, \"\"]);".into(),
                format!("    pm.collectionVariables.set(\"{name}\", String(value));"),
            ]);
        }
        test.push("});".into());
    }
    events.push(json!({ "listen": "test", "script": { "type": "text/javascript", "exec": test } }));
    let path: Vec<&str> = ["api", "crisp"]
        .into_iter()
        .chain(action.slug.split('/'))
        .collect();
    json!({
        "name": action.title,
        "request": {
            "method": "POST",
            "header": [{ "key": "Content-Type", "value": "application/json" }],
            "body": { "mode": "raw", "raw": raw, "options": { "raw": { "language": "json" } } },
            "url": {
                "raw": format!("{{{{baseUrl}}}}/api/crisp/{}", action.slug),
                "host": ["{{baseUrl}}"],
                "path": path,
            },
            "description": description,
        },
        "event": events,
    })
}

/// A chain path as JavaScript that yields `undefined`, not a TypeError, when the answer lacks a
/// level: `result[0].details.user_id` → `result?.[0]?.details?.user_id`, and
/// `result[details.email=x]` → `result?.find?.((item) => item?.details?.email === "x")`.
fn safe_path(pick: &str) -> String {
    let mut rest = pick.strip_prefix("result").unwrap_or(pick);
    let mut out = String::from("result");
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (inside, tail) = after.split_once(']').unwrap_or((after, ""));
            match inside.split_once('=') {
                Some((field, value)) => out.push_str(&format!(
                    "?.find?.((item) => item?.{} === {})",
                    field.replace('.', "?."),
                    Value::String(value.to_owned())
                )),
                None => out.push_str(&format!("?.[{inside}]")),
            }
            rest = tail;
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            out.push_str(&format!("?.{}", &after[..end]));
            rest = &after[end..];
        } else {
            // Not a path this function writes; keep it as it is.
            out.push_str(rest);
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_action_in_domain_folders() {
        let collection = collection();
        let folders = collection["item"].as_array().expect("folders");
        let requests: usize = folders
            .iter()
            .map(|f| f["item"].as_array().map_or(0, Vec::len))
            .sum();
        assert_eq!(requests, CATALOG.actions().len());
        assert!(folders.iter().any(|f| f["name"] == "conversations"));
        assert_eq!(collection["auth"]["bearer"][0]["value"], "{{apiKey}}");
    }

    #[test]
    fn result_paths_are_safe() {
        assert_eq!(
            safe_path("result[0].details.user_id"),
            "result?.[0]?.details?.user_id"
        );
        assert_eq!(safe_path("result.session_id"), "result?.session_id");
        assert_eq!(
            safe_path("result[details.email=ada@example.com].details.user_id"),
            "result?.find?.((item) => item?.details?.email === \"ada@example.com\")?.details?.user_id"
        );
    }

    #[test]
    fn the_invited_operator_is_the_one_the_collection_invites() {
        let invite = CATALOG.get("invite/website/operator").expect("action");
        let body = example::body(invite, &variable).expect("a body");
        let chained = CHAINED
            .iter()
            .find(|c| c.variable == "invitedUserID")
            .expect("chained");
        let email = body["email"].as_str().expect("an email");
        assert!(chained.path.contains(&format!("={email}]")), "{chained:?}");
    }
}
