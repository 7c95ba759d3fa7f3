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
