//! The Postman v2.1 collection: one folder per Crisp domain, one request per action.
//!
//! `baseUrl` and `apiKey` are collection variables; every request carries a test that checks
//! the success envelope, so `newman run` proves the collection against a live gateway.

use serde_json::{Value, json};

use crate::catalog::{Action, CATALOG};

use super::example_request;

const SCHEMA: &str = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json";

pub fn collection() -> Value {
    let mut domains: Vec<&str> = CATALOG.actions().iter().map(|a| a.domain).collect();
    domains.sort_unstable();
    domains.dedup();
    let folders: Vec<Value> = domains
        .into_iter()
        .map(|domain| {
            let items: Vec<Value> = CATALOG
                .actions()
                .iter()
                .filter(|a| a.domain == domain)
                .map(request)
                .collect();
            json!({ "name": domain, "item": items })
        })
        .collect();
    json!({
        "info": {
            "name": "crisp-gateway",
            "description": "Every Crisp REST API v1 action through crisp-gateway, generated from its action catalog. \
                Set `baseUrl` (default http://127.0.0.1:8080) and `apiKey` (a `sk_live_…` workspace key) \
                in the collection variables.",
            "version": env!("CARGO_PKG_VERSION"),
            "schema": SCHEMA,
        },
        "auth": {
            "type": "bearer",
            "bearer": [{ "key": "token", "value": "{{apiKey}}", "type": "string" }],
        },
        "variable": [
            { "key": "baseUrl", "value": "http://127.0.0.1:8080", "type": "string" },
            { "key": "apiKey", "value": "", "type": "string" },
        ],
        "item": folders,
    })
}

fn request(action: &Action) -> Value {
    let raw = serde_json::to_string_pretty(&example_request(action)).unwrap_or_default();
    let mut description = action
        .route
        .as_ref()
        .map(|r| format!("Calls Crisp `{} {}`.", r.method.as_str(), r.path.as_str()))
        .unwrap_or_else(|| "Answered by the gateway itself.".into());
    if let Some(notes) = action.notes {
        description.push_str(&format!(" Notes: {notes}."));
    }
    let path: Vec<&str> = ["api", "crisp"]
        .into_iter()
        .chain(action.slug.split('/'))
        .collect();
    let test = [
        format!("pm.test(\"{} answers ok\", function () {{", action.slug),
        "    pm.response.to.have.status(200);".into(),
        "    const body = pm.response.json();".into(),
        "    pm.expect(body.ok).to.eql(true);".into(),
        format!("    pm.expect(body.tool).to.eql(\"{}\");", action.tool),
        "    pm.expect(body).to.have.property(\"result\");".into(),
        "});".into(),
    ];
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
        "event": [{ "listen": "test", "script": { "type": "text/javascript", "exec": test } }],
    })
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
}
