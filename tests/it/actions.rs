//! Every catalog action, through the HTTP server, against the fake Crisp: the exact method,
//! path, query, body and credentials that arrive, and the envelope the caller gets back.

use base64::Engine as _;
use crisp_gateway::accounts::Tier;
use crisp_gateway::catalog::{CATALOG, CRISP_ACTIONS, FACADE_ACTIONS, Method};
use serde_json::{Value, json};

use crate::helpers::{CRISP_KEY, IDENTIFIER, TestApp, WEBSITE, engines};

#[tokio::test]
async fn every_action_reaches_crisp_exactly_as_documented() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // Half the calls name a website of their own: the account may act on it.
        app.allow_websites("main", "v-websiteID").await;
        // `main` is a website-tier account: routes Crisp documents for other tiers only go
        // through an account of theirs.
        app.add_tier_account("operator", Tier::User).await;
        app.allow_websites("operator", "v-websiteID").await;
        app.add_tier_account("marketplace", Tier::Plugin).await;
        app.allow_websites("marketplace", "v-websiteID").await;
        let basic = |identifier: &str, key: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{identifier}:{key}"))
            )
        };
        let mut routed = 0;
        for (i, action) in CATALOG.actions().iter().enumerate() {
            let Some(route) = &action.route else { continue };
            routed += 1;
            let mut request = serde_json::Map::new();
            let (authorization, tier) = if action.allows(Tier::Website) {
                (basic(IDENTIFIER, CRISP_KEY), "website")
            } else {
                let (label, tier) = if action.allows(Tier::User) {
                    ("operator", "user")
                } else {
                    ("marketplace", "plugin")
                };
                request.insert("account".into(), Value::from(label));
                (
                    basic(&format!("id-{label}"), &format!("crisp-key-{label}")),
                    tier,
                )
            };
            let mut expected_path = route.path.as_str().to_owned();
            for name in route.path.params() {
                let value = match name {
                    // Half the calls rely on the defaults, half override them.
                    "websiteID" if i % 2 == 0 => WEBSITE.to_owned(),
                    "pageNumber" if i % 2 == 0 => "1".to_owned(),
                    "pageNumber" => "3".to_owned(),
                    other => format!("v-{other}"),
                };
                let defaulted = matches!(name, "websiteID" | "pageNumber") && i % 2 == 0;
                if !defaulted {
                    request.insert(name.to_owned(), Value::String(value.clone()));
                }
                expected_path = expected_path.replace(&format!("{{{name}}}"), &value);
            }
            // A body that fits the action's type, plus fields the catalog does not know: those
            // pass through too.
            let mut payload = action
                .body
                .as_ref()
                .map_or_else(|| json!({}), crisp_gateway::docs::example::literal);
            if let Value::Object(object) = &mut payload {
                object.insert("marker".into(), Value::from(action.slug));
                object.insert("nested".into(), json!({ "n": i }));
            }
            if action.write {
                // The façade documents `body` as a JSON string; a JSON value works too.
                let body = if i % 3 == 0 {
                    payload.clone()
                } else {
                    Value::String(payload.to_string())
                };
                request.insert("body".into(), body);
            } else {
                request.insert(
                    "query".into(),
                    json!({ "per_page": 20, "search_text": "a b&c" }),
                );
            }
            let reply = app
                .call(action.slug, &Value::Object(request).to_string())
                .await;
            assert_eq!(reply.status, 200, "{}: {}", action.slug, reply.text);
            let expected_result = if action.is_head() {
                json!({"exists": true})
            } else {
                json!({"echo": true})
            };
            assert_eq!(
                reply.json(),
                json!({ "ok": true, "tool": action.tool, "result": expected_result }),
                "{}",
                action.slug
            );

            let received = app.crisp.take_received();
            assert_eq!(received.len(), 1, "{}: one upstream call", action.slug);
            let got = &received[0];
            assert_eq!(got.method, route.method.as_str(), "{}", action.slug);
            assert_eq!(got.path, format!("/v1{expected_path}"), "{}", action.slug);
            assert_eq!(
                got.header("authorization"),
                Some(authorization.as_str()),
                "{}",
                action.slug
            );
            assert_eq!(got.header("x-crisp-tier"), Some(tier), "{}", action.slug);
            assert_eq!(
                got.header("accept"),
                Some("application/json"),
                "{}",
                action.slug
            );
            assert!(
                got.header("user-agent")
                    .is_some_and(|ua| ua.starts_with("crisp-gateway/")),
                "{}",
                action.slug
            );
            assert!(
                got.header("x-request-id")
                    .is_some_and(|id| Some(id) == reply.header("x-request-id")),
                "{}",
                action.slug
            );
            match route.method {
                Method::Get | Method::Head => {
                    assert_eq!(
                        got.query.as_deref(),
                        Some("per_page=20&search_text=a%20b%26c"),
                        "{}",
                        action.slug
                    );
                    assert!(got.body.is_empty(), "{}: no body on reads", action.slug);
                }
                _ => {
                    assert_eq!(got.query, None, "{}", action.slug);
                    assert_eq!(got.json(), payload, "{}", action.slug);
                    assert_eq!(
                        got.header("content-type"),
                        Some("application/json"),
                        "{}",
                        action.slug
                    );
                }
            }
        }
        assert_eq!(
            routed,
            FACADE_ACTIONS + CRISP_ACTIONS - 1,
            "every action but list/accounts calls Crisp"
        );
    }
}

#[tokio::test]
async fn writes_without_a_body_send_an_empty_object_except_delete() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app.call("create/new/conversation", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let reply = app.call("delete/inbox", r#"{"inboxID":"i1"}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let received = app.crisp.take_received();
        assert_eq!(received[0].method, "POST");
        assert_eq!(received[0].json(), json!({}));
        assert_eq!(received[1].method, "DELETE");
        assert!(received[1].body.is_empty());
        assert_eq!(received[1].header("content-type"), None);
    }
}

#[tokio::test]
async fn delete_bodies_are_forwarded() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app
            .call(
                "delete/suggested/people/segment",
                r#"{"body":"{\"segment\":\"vip\"}"}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let received = app.crisp.take_received();
        assert_eq!(received[0].method, "DELETE");
        assert_eq!(
            received[0].path,
            format!("/v1/website/{WEBSITE}/people/suggest/segment")
        );
        assert_eq!(received[0].json(), json!({"segment": "vip"}));
    }
}

#[tokio::test]
async fn path_values_are_one_encoded_segment_each() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app
            .call(
                "get/people/profile",
                r#"{"peopleID":"jo ão@example.com/../x?y#z"}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let received = app.crisp.take_received();
        assert_eq!(
            received[0].path,
            format!(
                "/v1/website/{WEBSITE}/people/profile/jo%20%C3%A3o%40example.com%2F..%2Fx%3Fy%23z"
            )
        );
    }
}

#[tokio::test]
async fn query_as_string_forms_and_nested_values() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        for query in [
            r#""per_page=50&filter_unread=1""#,
            r#""{\"per_page\":50,\"filter_unread\":1}""#,
            r#"{"per_page":50,"filter_unread":true}"#,
        ] {
            let reply = app
                .call(
                    "list/conversations",
                    &format!(r#"{{"pageNumber":2,"query":{query}}}"#),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
        }
        let reply = app
            .call("list/conversations", r#"{"query":{"search_type":"filter","search_query":[{"criterion":"email","query":["a"]}]}}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let received = app.crisp.take_received();
        assert_eq!(
            received[0].path,
            format!("/v1/website/{WEBSITE}/conversations/2")
        );
        assert_eq!(
            received[0].query.as_deref(),
            Some("per_page=50&filter_unread=1")
        );
        assert_eq!(received[1].query, received[0].query);
        assert_eq!(
            received[2].query.as_deref(),
            Some("per_page=50&filter_unread=true")
        );
        let nested = received[3].query.as_deref().expect("query");
        let decoded = percent_encoding::percent_decode_str(nested)
            .decode_utf8()
            .expect("utf8");
        assert_eq!(
            decoded,
            r#"search_type=filter&search_query=[{"criterion":"email","query":["a"]}]"#
        );
    }
}

#[tokio::test]
async fn large_results_pass_through_byte_for_byte() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // Unusual but valid JSON formatting survives: the gateway slices `data`, it does not re-serialise.
        let items: Vec<String> = (0..2000)
            .map(|i| format!(r#"{{ "session_id" : "s{i}", "n":1.50 }}"#))
            .collect();
        let data = format!("[ {} ]", items.join(" , "));
        app.crisp.script(crate::helpers::Answer::json(
            200,
            &format!(r#"{{"error":false,"reason":"resolved","data":{data}}}"#),
        ));
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.text,
            format!(r#"{{"ok":true,"tool":"crisp_list_conversations","result":{data}}}"#)
        );
    }
}
