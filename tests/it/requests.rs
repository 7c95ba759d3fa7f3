//! What callers get wrong, and what they must never reach: keys, fields, accounts, workspaces.

use std::time::Duration;

use crisp_gateway::accounts::Tier;
use crisp_gateway::admin::{NewAccount, add_account, create_key};
use crisp_gateway::catalog::CATALOG;
use crisp_gateway::secret::CrispKey;
use serde_json::json;

use crate::helpers::{TestApp, engines, eventually};

#[tokio::test]
async fn bad_keys_all_get_the_same_401() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let wrong_secret = format!("{}{}", &app.key[..app.key.len() - 4], "AAAA");
        let unknown = crisp_gateway::auth::GatewayKey::generate();
        let cases: [(Option<&str>, &str); 5] = [
            (None, "missing"),
            (Some("not-a-key"), "malformed"),
            (Some(&wrong_secret), "wrong secret"),
            (Some(unknown.reveal()), "unknown"),
            (Some(""), "empty"),
        ];
        let mut bodies = Vec::new();
        for (key, what) in cases {
            let reply = app.call_with_key("list/conversations", "{}", key).await;
            assert_eq!(reply.status, 401, "{what}: {}", reply.text);
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"), "{what}");
            assert_eq!(reply.reason(), "unauthorized", "{what}");
            let mut json = reply.json();
            json["error"]["request_id"] = json!(null);
            bodies.push(json);
        }
        assert!(
            bodies.windows(2).all(|w| w[0] == w[1]),
            "identical bodies: {bodies:?}"
        );
        assert!(app.crisp.received().is_empty(), "nothing reached Crisp");
    }
}

#[tokio::test]
async fn a_revoked_key_stops_working() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        // Revoked through the store (as the CLI or another replica would): the change log
        // reaches this process's cache.
        app.store
            .revoke_key(&app.key_id, crisp_gateway::kernel::clock::now())
            .await
            .expect("revoke");
        let refused = eventually(Duration::from_secs(2), || async {
            app.call("list/conversations", "{}").await.status == 401
        })
        .await;
        assert!(refused, "revoked key still accepted after 2 s");
    }
}

#[tokio::test]
async fn verified_keys_are_cached_not_rehashed() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        for _ in 0..20 {
            assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        }
        assert_eq!(app.app.keyring.argon2_runs(), 1);
    }
}

#[tokio::test]
async fn field_mistakes_are_400s_that_name_the_field() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let cases = [
            (
                "get/conversation",
                r#"{"sessionId":"s"}"#,
                "unknown_field",
                "sessionID",
            ),
            ("get/conversation", "{}", "missing_field", "sessionID"),
            (
                "get/conversation",
                r#"{"sessionID":".."}"#,
                "invalid_path_value",
                "sessionID",
            ),
            (
                "get/conversation",
                r#"{"sessionID":""}"#,
                "invalid_path_value",
                "sessionID",
            ),
            (
                "get/conversation",
                r#"{"sessionID":true}"#,
                "invalid_field",
                "sessionID",
            ),
            (
                "get/conversation",
                r#"{"sessionID":"s","body":"{}"}"#,
                "unknown_field",
                "query",
            ),
            (
                "send/message/in/conversation",
                r#"{"sessionID":"s","query":"a=1"}"#,
                "unknown_field",
                "body",
            ),
            (
                "send/message/in/conversation",
                r#"{"sessionID":"s","body":"{\"type\":"}"#,
                "invalid_body",
                "body",
            ),
            (
                "list/conversations",
                r#"{"query":"{\"per_page\":"}"#,
                "invalid_query",
                "query",
            ),
            (
                "list/conversations",
                r#"{"pageNumber":"zero"}"#,
                "invalid_field",
                "pageNumber",
            ),
            (
                "list/conversations",
                r#"{"websiteId":"w"}"#,
                "unknown_field",
                "websiteID",
            ),
            ("list/conversations", "[]", "invalid_json", "JSON object"),
            (
                "list/conversations",
                "{oops",
                "invalid_json",
                "not valid JSON",
            ),
        ];
        for (action, body, reason, named) in cases {
            let reply = app.call(action, body).await;
            assert_eq!(reply.status, 400, "{action} {body}: {}", reply.text);
            assert_eq!(reply.reason(), reason, "{action} {body}");
            assert!(
                reply.message().contains(named),
                "{action} {body}: {}",
                reply.message()
            );
            assert_eq!(
                reply.json()["tool"],
                json!(crisp_gateway::catalog::tool_id(action))
            );
        }
        assert!(
            app.crisp.received().is_empty(),
            "no bad input reached Crisp"
        );
    }
}

#[tokio::test]
async fn unknown_actions_and_wrong_methods_are_explained() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app.call("list/conversation", "{}").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.reason(), "unknown_action");
        assert!(
            reply.message().contains("`list/conversations`"),
            "{}",
            reply.message()
        );
        let reply = app.get("/api/crisp/list/conversations").await;
        assert_eq!(reply.status, 405, "{}", reply.text);
        assert!(reply.message().contains("POST"), "{}", reply.text);
        let reply = app.get("/nowhere").await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.reason(), "not_found");
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| c.body_limit = 1024).await;
        let big = format!(r#"{{"query":"{}"}}"#, "x".repeat(4096));
        let reply = app.call("list/conversations", &big).await;
        assert_eq!(reply.status, 413, "{}", reply.text);
        assert_eq!(reply.reason(), "payload_too_large");
        assert!(reply.message().contains("1024"), "{}", reply.message());
    }
}

#[tokio::test]
async fn accounts_are_picked_by_id_label_or_default() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let second = add_account(
            &app.store,
            &app.vault,
            NewAccount {
                workspace_id: &app.workspace_id,
                label: "eu",
                identifier: "id-eu",
                website_id: "web-eu",
                tier: Tier::Plugin,
                is_default: false,
                key: &CrispKey::new("crisp-key-eu"),
            },
        )
        .await
        .expect("second account");
        app.call("count/visitors", "{}").await;
        app.call("count/visitors", r#"{"account":"eu"}"#).await;
        app.call(
            "count/visitors",
            &format!(r#"{{"account":"{}"}}"#, second.crisp_account_id),
        )
        .await;
        app.allow_websites("eu", "web-x").await;
        app.call("count/visitors", r#"{"account":"eu","websiteID":"web-x"}"#)
            .await;
        let received = app.crisp.take_received();
        let seen: Vec<_> = received
            .iter()
            .map(|r| (r.path.as_str(), r.header("x-crisp-tier")))
            .collect();
        assert_eq!(
            seen,
            [
                ("/v1/website/web-main/visitors/count", Some("website")),
                ("/v1/website/web-eu/visitors/count", Some("plugin")),
                ("/v1/website/web-eu/visitors/count", Some("plugin")),
                ("/v1/website/web-x/visitors/count", Some("plugin")),
            ]
        );
        let reply = app.call("count/visitors", r#"{"account":"nope"}"#).await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.reason(), "account_not_found");
        assert!(
            reply.message().contains("`main`") && reply.message().contains("`eu`"),
            "{}",
            reply.message()
        );

        let reply = app.call("list/accounts", "{}").await;
        assert_eq!(reply.status, 200);
        let listed = &reply.json()["result"];
        assert_eq!(listed.as_array().map(Vec::len), Some(2));
        assert_eq!(
            listed[0],
            json!({"id": second.crisp_account_id, "label": "eu", "website_id": "web-eu", "tier": "plugin", "default": false, "websites": ["web-eu", "web-x"]})
        );
        for secret in ["crisp-key-main", "crisp-key-eu", "id-main", "sealed", "v1:"] {
            assert!(
                !reply.text.contains(secret),
                "list/accounts leaks {secret}: {}",
                reply.text
            );
        }
    }
}

#[tokio::test]
async fn several_accounts_without_a_default_need_a_choice() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let (workspace_id, key) = app.other_workspace("beta", "b1").await;
        add_account(
            &app.store,
            &app.vault,
            NewAccount {
                workspace_id: &workspace_id,
                label: "b2",
                identifier: "id-b2",
                website_id: "web-b2",
                tier: Tier::Website,
                is_default: false,
                key: &CrispKey::new("k"),
            },
        )
        .await
        .expect("account");
        let reply = app.call_with_key("count/visitors", "{}", Some(&key)).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.reason(), "account_required");
        assert!(
            reply.message().contains("`b1`") && reply.message().contains("`b2`"),
            "{}",
            reply.message()
        );

        let empty_key = {
            let ws = crisp_gateway::admin::create_workspace(&app.store, "empty")
                .await
                .expect("ws");
            create_key(&app.store, &ws.workspace_id, None)
                .await
                .expect("key")
        };
        let reply = app
            .call_with_key("count/visitors", "{}", Some(empty_key.reveal()))
            .await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.reason(), "no_account");
    }
}

#[tokio::test]
async fn another_workspaces_account_is_unreachable() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let (_, other_key) = app.other_workspace("rival", "rival-main").await;
        let other_accounts = app.store.list_accounts(None).await.expect("accounts");
        let rival = other_accounts
            .iter()
            .find(|a| a.label == "rival-main")
            .expect("rival account");
        for wanted in [rival.label.as_str(), rival.crisp_account_id.as_str()] {
            let reply = app
                .call("count/visitors", &format!(r#"{{"account":"{wanted}"}}"#))
                .await;
            assert_eq!(reply.status, 404, "{}", reply.text);
            assert_eq!(reply.reason(), "account_not_found");
            assert!(
                !reply.text.contains("rival-main") || wanted == "rival-main",
                "{}",
                reply.text
            );
        }
        let reply = app.call("list/accounts", "{}").await;
        assert!(!reply.text.contains("rival"), "{}", reply.text);
        // And the other way round.
        let reply = app
            .call_with_key("count/visitors", r#"{"account":"main"}"#, Some(&other_key))
            .await;
        assert_eq!(reply.status, 404);
        assert!(
            app.crisp.received().is_empty(),
            "no cross-workspace call reached Crisp"
        );
    }
}

#[tokio::test]
async fn discovery_health_and_readiness() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // Compact by default: who, where and what kind, without each action's parameters.
        let compact = app.get("/api/crisp/_endpoints").await;
        assert_eq!(compact.status, 200);
        assert_eq!(compact.json()["count"], CATALOG.actions().len());
        assert!(compact.json()["actions"][0].get("params").is_none());
        let reply = app.get("/api/crisp/_endpoints?view=full").await;
        assert_eq!(reply.status, 200);
        assert!(
            compact.text.len() * 2 < reply.text.len(),
            "compact is much smaller: {} vs {}",
            compact.text.len(),
            reply.text.len()
        );
        let json = reply.json();
        assert_eq!(json["count"], CATALOG.actions().len());
        let send = json["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .find(|a| a["name"] == "send/message/in/conversation")
            .expect("send action");
        assert_eq!(send["tool"], "crisp_send_message_in_conversation");
        assert_eq!(send["crisp_method"], "POST");
        assert_eq!(
            send["crisp_path"],
            "/website/{websiteID}/conversation/{sessionID}/message"
        );
        assert_eq!(send["write"], true);
        assert_eq!(
            send["params"],
            json!([
                {"name": "account", "in": "account", "required": false, "default": null},
                {"name": "websiteID", "in": "path", "required": false, "default": "the account's website id"},
                {"name": "sessionID", "in": "path", "required": true, "default": null},
                {"name": "body", "in": "body", "required": true, "default": null},
                {"name": "dry_run", "in": "gateway", "required": false, "default": null},
            ])
        );
        // Filters: words ranked by the action search, a domain, reads or writes.
        let found = app
            .get("/api/crisp/_endpoints?q=reply%20to%20a%20customer&write=true")
            .await
            .json();
        assert_eq!(
            found["actions"][0]["name"], "send/message/in/conversation",
            "{found}"
        );
        assert!(
            found["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .all(|a| a["write"] == true)
        );
        let teams = app.get("/api/crisp/_endpoints?domain=teams").await.json();
        assert_eq!(teams["count"], 6, "{teams}");
        for (query, needle) in [
            ("domain=nope", "no domain `nope`"),
            ("write=maybe", "true or false"),
            ("search=x", "not a filter"),
            ("view=long", "`compact` (the default) or `full`"),
        ] {
            let bad = app.get(&format!("/api/crisp/_endpoints?{query}")).await;
            assert_eq!(bad.status, 400, "{query}");
            assert!(bad.message().contains(needle), "{query}: {}", bad.text);
        }
        // One action in full: typed fields, tiers, an example the gateway takes, the result.
        let one = app
            .get("/api/crisp/_endpoints/send/message/in/conversation")
            .await;
        assert_eq!(one.status, 200, "{}", one.text);
        let one = one.json();
        assert_eq!(one["body"]["type"], "MessageNew");
        assert_eq!(one["body"]["required"], true);
        let origin = one["body"]["fields"]
            .as_array()
            .expect("fields")
            .iter()
            .find(|f| f["name"] == "origin")
            .expect("origin")
            .clone();
        assert_eq!(
            (origin["type"].as_str(), origin["required"].as_bool()),
            (Some("string"), Some(true))
        );
        let example = one["example"].to_string();
        let tried = app.call("send/message/in/conversation", &example).await;
        assert_eq!(tried.status, 200, "the example is accepted: {}", tried.text);
        let website = app
            .get("/api/crisp/_endpoints/crisp_create_website")
            .await
            .json();
        assert_eq!(website["tiers"], json!(["user"]));
        let list = app
            .get("/api/crisp/_endpoints/list/conversations")
            .await
            .json();
        assert_eq!(list["result"]["type"], "Conversation[]");
        let missing = app.get("/api/crisp/_endpoints/send/msg").await;
        assert_eq!(missing.status, 404);
        assert!(
            missing.message().contains("send/message/in/conversation"),
            "{}",
            missing.text
        );
        assert_eq!(app.get("/healthz").await.status, 200);
        let ready = app.get("/readyz").await;
        assert_eq!(ready.status, 200, "{}", ready.text);
        assert!(app.get("/healthz").await.header("x-request-id").is_some());
    }
}

#[tokio::test]
async fn a_callers_request_id_is_kept_only_when_it_is_plain() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let call = |id: &'static str| {
            app.http
                .post(app.url("/api/crisp/list/conversations"))
                .header("authorization", format!("Bearer {}", app.key))
                .header("x-request-id", id)
                .body("{}")
                .send()
        };
        let kept = call("trace-7f3a:2.b_c").await.expect("gateway answers");
        assert_eq!(kept.status(), 200);
        assert_eq!(
            kept.headers()["x-request-id"].to_str().ok(),
            Some("trace-7f3a:2.b_c")
        );
        let sent = app.crisp.take_received();
        assert_eq!(sent[0].header("x-request-id"), Some("trace-7f3a:2.b_c"));

        // A space would let a caller write `key_id=…` into the access line; an id that long
        // would be copied into every log line, audit row and Crisp request.
        let long: &'static str = Box::leak("a".repeat(129).into_boxed_str());
        for forged in ["a status=200 key_id=admin", long] {
            let replaced = call(forged).await.expect("gateway answers");
            assert_eq!(replaced.status(), 200);
            let id = replaced.headers()["x-request-id"]
                .to_str()
                .expect("ascii")
                .to_owned();
            assert_ne!(id, forged);
            assert_eq!(id.len(), 36, "a new UUID: {id}");
            let sent = app.crisp.take_received();
            assert_eq!(sent[0].header("x-request-id"), Some(id.as_str()));
        }
    }
}
