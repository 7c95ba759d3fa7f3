//! The generated documents over HTTP, and their examples replayed against the real server.

use crisp_gateway::accounts::Tier;
use crisp_gateway::catalog::CATALOG;
use crisp_gateway::docs::{LLMS_TXT, OPENAPI_JSON, POSTMAN_JSON};
use serde_json::Value;

use crate::helpers::{Engine, TestApp};

#[tokio::test]
async fn documents_and_the_offline_ui_are_served() {
    // The documents never touch the database, so one engine is enough.
    let app = TestApp::spawn(Engine::Sqlite).await;
    for (path, content_type, expected) in [
        ("/openapi.json", "application/json", OPENAPI_JSON.as_str()),
        ("/postman.json", "application/json", POSTMAN_JSON.as_str()),
        ("/llms.txt", "text/plain; charset=utf-8", LLMS_TXT.as_str()),
    ] {
        let reply = app.get(path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert_eq!(reply.header("content-type"), Some(content_type), "{path}");
        assert!(
            reply.text == expected,
            "{path} serves the generated document"
        );
    }
    let page = app.get("/docs/").await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("swagger-ui"), "{}", page.text);
    let config = app.get("/docs/swagger-initializer.js").await;
    assert!(config.text.contains("/openapi.json"), "{}", config.text);
    // A filter box and a link per operation.
    for setting in [r#""filter": true"#, r#""deepLinking": true"#] {
        assert!(config.text.contains(setting), "{setting}: {}", config.text);
    }
    // The UI's script comes from the binary, not from a CDN.
    let bundle = app.get("/docs/swagger-ui-bundle.js").await;
    assert_eq!(bundle.status, 200);
    assert!(bundle.text.len() > 100_000);
}

#[tokio::test]
async fn every_documented_example_succeeds() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    // `main` is a website-tier account: routes Crisp documents for other tiers go through
    // an account of theirs.
    app.add_tier_account("operator", Tier::User).await;
    app.add_tier_account("marketplace", Tier::Plugin).await;
    let doc: Value = serde_json::from_str(&OPENAPI_JSON).expect("valid JSON");
    for action in CATALOG.actions() {
        let op = &doc["paths"][format!("/api/crisp/{}", action.slug)]["post"];
        let mut example = op["requestBody"]["content"]["application/json"]["example"].clone();
        if !action.allows(Tier::Website) {
            let label = if action.allows(Tier::User) {
                "operator"
            } else {
                "marketplace"
            };
            example["account"] = Value::from(label);
        }
        let reply = app.call(action.slug, &example.to_string()).await;
        assert_eq!(reply.status, 200, "{}: {}", action.slug, reply.text);
        assert_eq!(reply.json()["tool"], action.tool.as_str());
    }
}

/// The folder of requests that skip themselves (the collection's account cannot make them).
const NOT_RUN: &str = "Not run against the sandbox";

/// Every request of the Postman collection, in the order newman sends them: (folder, item).
fn postman_requests(collection: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    for folder in collection["item"].as_array().expect("folders") {
        let name = folder["name"].as_str().expect("folder name").to_owned();
        for item in folder["item"].as_array().expect("items") {
            out.push((name.clone(), item));
        }
    }
    out
}

/// The `{{name}}` placeholders of a text.
fn placeholders(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some((_, after)) = rest.split_once("{{") {
        let Some((name, tail)) = after.split_once("}}") else {
            break;
        };
        found.push(name);
        rest = tail;
    }
    found
}

/// The lines of an item's script for `listen` (`test`, `prerequest`).
fn script<'a>(item: &'a Value, listen: &str) -> Vec<&'a str> {
    item["event"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["listen"] == listen)
        .flat_map(|e| e["script"]["exec"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect()
}

/// What a request's test script keeps: (variable, path in the answer, whether it may be absent),
/// from the script's `// keeps NAME from PATH` comments.
fn kept(item: &Value) -> Vec<(String, String, bool)> {
    let lines = script(item, "test");
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((name, path)) = line
            .trim()
            .strip_prefix("// keeps ")
            .and_then(|k| k.split_once(" from "))
        else {
            continue;
        };
        // A value that may be absent is set under an `if`.
        let optional = lines[i..]
            .iter()
            .take_while(|l| !l.contains("pm.collectionVariables.set"))
            .any(|l| l.trim_start().starts_with("if ("));
        out.push((name.to_owned(), path.to_owned(), optional));
    }
    out
}

/// Follows a chain path (`result.a`, `result[0]`, `result[a.b=text]`) in an answer.
fn follow<'a>(answer: &'a Value, path: &str) -> &'a Value {
    let mut value = answer;
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let (inside, tail) = after.split_once(']').expect("a closed [");
            value = match (inside.parse::<usize>(), inside.split_once('=')) {
                (Ok(i), _) => &value[i],
                (_, Some((field, text))) => value
                    .as_array()
                    .and_then(|items| {
                        items.iter().find(|item| {
                            field.split('.').fold(*item, |v, k| &v[k]) == &Value::from(text)
                        })
                    })
                    .unwrap_or(&Value::Null),
                _ => panic!("unreadable path {path}"),
            };
            rest = tail;
        } else {
            let after = rest.strip_prefix('.').unwrap_or(rest);
            let end = after.find(['.', '[']).unwrap_or(after.len());
            value = &value[&after[..end]];
            rest = &after[end..];
        }
    }
    value
}

fn slug_of(item: &Value) -> &str {
    item["request"]["url"]["raw"]
        .as_str()
        .and_then(|u| u.strip_prefix("{{baseUrl}}/api/crisp/"))
        .expect("an action URL")
}

/// Newman's view of the collection, checked without running it: every `{{variable}}` a request
/// uses has a value by then (a collection default, the run's own `baseUrl`/`apiKey`, or an
/// earlier request's script), and every write that Crisp takes a body for sends one that fits.
#[test]
fn postman_placeholders_are_set_before_use_and_writes_have_bodies() {
    let collection: Value = serde_json::from_str(&POSTMAN_JSON).expect("valid JSON");
    let mut known: Vec<String> = vec!["baseUrl".into(), "apiKey".into()];
    for variable in collection["variable"].as_array().expect("variables") {
        if variable["value"].as_str().is_some_and(|v| !v.is_empty()) {
            known.push(variable["key"].as_str().expect("key").to_owned());
        }
    }
    // The chain is real: the conversation and the profile come from the collection itself.
    for chained in ["sessionID", "peopleID", "userID"] {
        assert!(
            !known.iter().any(|k| k == chained),
            "{chained} has a default"
        );
    }
    let requests = postman_requests(&collection);
    assert_eq!(requests.len(), CATALOG.actions().len());
    let mut seen_clean_up = false;
    for (folder, item) in &requests {
        let slug = slug_of(item);
        let action = CATALOG.get(slug).expect("a catalog action");
        let raw = item["request"]["body"]["raw"].as_str().expect("raw body");
        for name in placeholders(raw).into_iter().chain(placeholders(
            item["request"]["url"]["raw"].as_str().unwrap_or(""),
        )) {
            assert!(
                known.iter().any(|k| k == name),
                "{folder} / {slug} uses {{{{{name}}}}}, which nothing sets before it"
            );
        }
        let request: Value = serde_json::from_str(raw).expect("the raw body is JSON");
        match &action.body {
            Some(ty) if action.write => {
                let body = request
                    .get("body")
                    .unwrap_or_else(|| panic!("{slug} has no body"));
                CATALOG
                    .types()
                    .check(ty, body, "body")
                    .unwrap_or_else(|m| panic!("{slug}: {m}"));
            }
            _ => assert!(request.get("body").is_none(), "{slug} sends a body"),
        }
        if folder == NOT_RUN {
            assert!(
                script(item, "prerequest")
                    .iter()
                    .any(|l| l.contains("pm.execution.skipRequest()")),
                "{slug} is in {NOT_RUN} but does not skip itself"
            );
            let description = item["request"]["description"].as_str().unwrap_or("");
            assert!(
                description.starts_with("Not run against the sandbox: "),
                "{slug}"
            );
        }
        // Deletes run after everything that reads what they delete.
        let deletes = action
            .route
            .as_ref()
            .is_some_and(|r| r.method.as_str() == "DELETE");
        seen_clean_up |= folder == "Clean up";
        if folder != NOT_RUN {
            assert!(
                !deletes || seen_clean_up,
                "{slug} deletes before the clean-up"
            );
            assert!(
                !seen_clean_up || folder == "Clean up",
                "{slug} runs after the clean-up"
            );
        }
        for (name, _, _) in kept(item) {
            known.push(name);
        }
    }
}

/// What newman does, in process: the collection's requests in order against the gateway on the
/// stateful sandbox, each answering 200 `ok`, the kept ids feeding the requests below.
#[tokio::test]
async fn postman_collection_runs_on_the_stateful_sandbox() {
    use crisp_gateway::sandbox::{self, SandboxConfig};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sandbox");
    let (base, _sandbox) = sandbox::spawn(listener, SandboxConfig::default()).expect("sandbox");
    let app = TestApp::spawn_with(Engine::Sqlite, |config| config.upstream = base.clone()).await;
    let collection: Value = serde_json::from_str(&POSTMAN_JSON).expect("valid JSON");
    let mut variables: std::collections::HashMap<String, String> = collection["variable"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| {
            let key = v["key"].as_str().unwrap_or_default().to_owned();
            (key, v["value"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    let mut failures = Vec::new();
    for (folder, item) in postman_requests(&collection) {
        if folder == NOT_RUN {
            continue;
        }
        let slug = slug_of(item);
        let mut raw = item["request"]["body"]["raw"]
            .as_str()
            .expect("raw body")
            .to_owned();
        for name in placeholders(&raw.clone()) {
            let value = variables.get(name).cloned().unwrap_or_default();
            raw = raw.replace(&format!("{{{{{name}}}}}"), &value);
        }
        let reply = app.call(slug, &raw).await;
        let answer = reply.json();
        if reply.status != 200 || answer["ok"] != true {
            failures.push(format!(
                "{folder} / {slug}: {} {}",
                reply.status, reply.text
            ));
            continue;
        }
        let head = CATALOG.get(slug).is_some_and(|a| a.is_head());
        if head && answer["result"]["exists"] != true {
            failures.push(format!("{folder} / {slug}: not found: {}", reply.text));
        }
        for (name, path, optional) in kept(item) {
            let text = match follow(&answer, &path) {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if !text.is_empty() {
                variables.insert(name, text);
            } else if !optional {
                failures.push(format!(
                    "{folder} / {slug}: no {name} at {path}: {}",
                    reply.text
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
