//! The catalog against the routes Crisp's official clients send (`tests/data/crisp-official-routes.json`,
//! facts taken from the published packages): today's API is covered, legacy actions are exactly
//! the routes Crisp's current client dropped, and every façade action is a route an official
//! client sends.

use std::collections::{BTreeMap, BTreeSet};

use crisp_gateway::catalog::{Action, CATALOG, Origin, Segment};
use serde::Deserialize;

const REFERENCE: &str = include_str!("../data/crisp-official-routes.json");

/// Routes of Crisp's current client the catalog leaves out on purpose, each with its reason.
/// Empty today: every route of crisp-api 11.3.0 is an action.
const LEFT_OUT: &[(&str, &str, &str)] = &[];

#[derive(Deserialize)]
struct Reference {
    current: Client,
    older: Vec<Client>,
}

#[derive(Deserialize)]
struct Client {
    client: String,
    version: String,
    routes: Vec<RefRoute>,
}

#[derive(Deserialize)]
struct RefRoute {
    method: String,
    path: String,
    function: String,
}

/// A route as both sides can name it: the method, and the path with every placeholder `{}`.
type Key = (String, String);

fn normalised(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "{}" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

fn key_of(action: &Action) -> Option<Key> {
    let route = action.route.as_ref()?;
    let path: String = route
        .path
        .segments()
        .iter()
        .map(|s| match s {
            Segment::Literal(text) => format!("/{text}"),
            Segment::Param(_) => "/{}".to_owned(),
        })
        .collect();
    Some((route.method.as_str().to_owned(), path))
}

/// The client's routes by key, with the function that sends each (for the failure message).
fn routes(client: &Client) -> BTreeMap<Key, &str> {
    client
        .routes
        .iter()
        .map(|r| {
            (
                (r.method.to_ascii_uppercase(), normalised(&r.path)),
                r.function.as_str(),
            )
        })
        .collect()
}

fn label(client: &Client) -> String {
    format!("{} {}", client.client, client.version)
}

#[test]
fn the_catalog_matches_the_routes_of_crisps_official_clients() {
    let reference: Reference = serde_json::from_str(REFERENCE).expect("the reference parses");
    let current = routes(&reference.current);
    let older = reference
        .older
        .iter()
        .find(|c| c.version == "10.11.0")
        .expect("crisp-api 10.11.0 in the reference");
    let go = reference
        .older
        .iter()
        .find(|c| c.client.contains("go-crisp-api"))
        .expect("go-crisp-api in the reference");
    let (older_routes, go_routes) = (routes(older), routes(go));

    let actions: Vec<(&Action, Key)> = CATALOG
        .actions()
        .iter()
        .filter_map(|a| key_of(a).map(|k| (a, k)))
        .collect();
    let covered: BTreeSet<&Key> = actions.iter().map(|(_, k)| k).collect();
    let left_out: BTreeSet<Key> = LEFT_OUT
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), normalised(p)))
        .collect();

    let mut problems = Vec::new();
    for (key, function) in &current {
        if !covered.contains(key) && !left_out.contains(key) {
            problems.push(format!(
                "{} {} (`{function}` in {}) is no catalog action: add one to src/catalog/actions.toml \
                 with `origin = \"crisp\"`, or list it in LEFT_OUT with the reason",
                key.0,
                key.1,
                label(&reference.current)
            ));
        }
    }
    for key in &left_out {
        if !current.contains_key(key) || covered.contains(key) {
            problems.push(format!(
                "LEFT_OUT lists {} {}, which {}: remove it from the list",
                key.0,
                key.1,
                if covered.contains(key) {
                    "is a catalog action"
                } else {
                    "Crisp's current client no longer sends"
                }
            ));
        }
    }
    for (action, key) in &actions {
        let (slug, in_current) = (action.slug, current.contains_key(key));
        if action.legacy {
            if in_current {
                problems.push(format!(
                    "`{slug}` ({} {}) is `legacy`, but {} still sends it: drop `legacy = true`",
                    key.0,
                    key.1,
                    label(&reference.current)
                ));
            }
            if !older_routes.contains_key(key) {
                problems.push(format!(
                    "`{slug}` ({} {}) is `legacy`, but {} never sent it either",
                    key.0,
                    key.1,
                    label(older)
                ));
            }
        } else if !in_current {
            problems.push(format!(
                "`{slug}` ({} {}) is not sent by {}: mark it `legacy = true` if Crisp's current \
                 client dropped it, or fix its method and path",
                key.0,
                key.1,
                label(&reference.current)
            ));
        }
        if action.origin == Origin::Facade
            && !older_routes.contains_key(key)
            && !go_routes.contains_key(key)
        {
            problems.push(format!(
                "façade action `{slug}` ({} {}) is sent by neither {} nor {}",
                key.0,
                key.1,
                label(older),
                label(go)
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the catalog and Crisp's official clients disagree ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn legacy_actions_are_exactly_the_routes_crisps_current_client_dropped() {
    let legacy: Vec<&str> = CATALOG
        .actions()
        .iter()
        .filter(|a| a.legacy)
        .map(|a| a.slug)
        .collect();
    assert_eq!(legacy.len(), 35, "{legacy:?}");
    assert!(
        legacy.iter().all(|s| s.contains("helpdesk")),
        "only old Knowledge Base actions are legacy: {legacy:?}"
    );
    // Nothing Crisp's current API added is legacy.
    assert!(
        CATALOG
            .actions()
            .iter()
            .filter(|a| a.origin == Origin::Crisp)
            .all(|a| !a.legacy)
    );
}
