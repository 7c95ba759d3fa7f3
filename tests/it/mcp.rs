//! The MCP endpoint over real HTTP: JSON-RPC to the running gateway, tools run against the
//! fake Crisp, and answers compared with what the REST endpoint gives for the same call.

use std::collections::BTreeSet;

use crisp_gateway::auth::GatewayKey;
use crisp_gateway::catalog::CATALOG;
use crisp_gateway::store::ApiKeyRecord;
use serde_json::{Value, json};

use crate::helpers::{Answer, Reply, TestApp, WEBSITE, engines};

const ESSENTIAL_NAMES: [&str; 16] = [
    "crisp_list_conversations",
    "crisp_get_conversation",
    "crisp_initiate_conversation",
    "crisp_archive_conversation",
    "crisp_send_message",
    "crisp_list_messages",
    "crisp_get_message",
    "crisp_get_people_profile",
    "crisp_update_people_profile",
    "crisp_list_people_profiles",
    "crisp_list_operators",
    "crisp_get_operator",
    "crisp_invite_operator",
    "crisp_delete_operator",
    "crisp_get_website_settings",
    "crisp_update_website_settings",
];

/// One JSON-RPC request, as a streamable HTTP client sends it.
async fn rpc(app: &TestApp, path: &str, key: Option<&str>, method: &str, params: Value) -> Reply {
    let mut request = app
        .http
        .post(app.url(path))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}).to_string());
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = request.send().await.expect("gateway answers");
    Reply {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        text: response.text().await.expect("body"),
    }
}

/// The JSON-RPC `result` of a successful exchange.
async fn result(app: &TestApp, path: &str, method: &str, params: Value) -> Value {
    let reply = rpc(app, path, Some(&app.key), method, params).await;
    assert_eq!(reply.status, 200, "{method} {path}: {}", reply.text);
    let json = reply.json();
    assert_eq!(json["id"], 7, "{}", reply.text);
    assert!(json.get("error").is_none(), "{}", reply.text);
    json["result"].clone()
}

async fn tools(app: &TestApp, path: &str, key: &str) -> Vec<Value> {
    let reply = rpc(app, path, Some(key), "tools/list", json!({})).await;
    assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    reply.json()["result"]["tools"]
        .as_array()
        .expect("tools")
        .clone()
}

fn names(tools: &[Value]) -> Vec<String> {
    tools
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

async fn call(app: &TestApp, path: &str, tool: &str, arguments: Value) -> Value {
    result(
        app,
        path,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
    .await
}

/// A key of the test workspace with a scope.
async fn scoped_key(app: &TestApp, read_only: bool, actions: Option<&str>) -> String {
    let key = GatewayKey::generate();
    let hash = {
        let key = GatewayKey::parse(key.reveal()).expect("parses");
        tokio::task::spawn_blocking(move || key.hash())
            .await
            .expect("task")
            .expect("hash")
    };
    app.store
        .create_key(&ApiKeyRecord {
            api_key_id: key.id().into(),
            workspace_id: app.workspace_id.clone(),
            name: Some("scoped".into()),
            secret_hash: hash,
            read_only,
            allowed_actions: actions.map(str::to_owned),
            created_at: 1_700_000_000,
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            allowed_websites: None,
            quota_limit: None,
            quota_period: None,
        })
        .await
        .expect("create key");
    key.reveal().to_owned()
}

#[tokio::test]
async fn initialize_and_list_every_toolset() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let init = result(
            &app,
            "/mcp",
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "it", "version": "1"}}),
        )
        .await;
        assert_eq!(init["serverInfo"]["name"], "crisp-gateway", "{init}");
        assert!(init["capabilities"]["tools"].is_object(), "{init}");
        assert!(
            init["instructions"]
                .as_str()
                .is_some_and(|s| s.contains("crisp_search_actions"))
        );

        assert_eq!(
            names(&tools(&app, "/mcp", &app.key).await),
            [
                "crisp_search_actions",
                "crisp_describe_action",
                "crisp_call_action",
                "crisp_list_accounts"
            ]
        );
        assert_eq!(
            names(&tools(&app, "/mcp/essentials", &app.key).await),
            ESSENTIAL_NAMES
        );

        let all = tools(&app, "/mcp/all", &app.key).await;
        // Today's API first, the legacy Knowledge Base last.
        let expected: Vec<String> = CATALOG.current_first().map(|a| a.tool.clone()).collect();
        assert_eq!(names(&all), expected);
        let tool = |name: &str| {
            all.iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("{name}"))
                .clone()
        };
        let get = tool("crisp_get_conversation");
        assert_eq!(get["inputSchema"]["required"], json!(["sessionID"]));
        assert_eq!(
            get["inputSchema"]["properties"]
                .as_object()
                .expect("properties")
                .keys()
                .collect::<Vec<_>>(),
            ["account", "websiteID", "sessionID", "query", "fields"]
        );
        assert_eq!(get["annotations"]["readOnlyHint"], true);
        let remove = tool("crisp_remove_conversation");
        assert_eq!(remove["annotations"]["readOnlyHint"], false);
        assert_eq!(remove["annotations"]["destructiveHint"], true);
        assert_eq!(
            tool("crisp_send_message_in_conversation")["annotations"]["destructiveHint"],
            false
        );

        let people = tools(&app, "/mcp/x/people", &app.key).await;
        let people_count = CATALOG
            .actions()
            .iter()
            .filter(|a| a.domain == "people")
            .count();
        assert_eq!(people.len(), people_count);
        for name in names(&people) {
            assert_eq!(
                CATALOG.find(&name).map(|a| a.domain),
                Some("people"),
                "{name}"
            );
        }

        // A query parameter picks a union; the connector's tools win on a shared name.
        let union = tools(&app, "/mcp?toolsets=essentials,helpdesk", &app.key).await;
        let helpdesk = CATALOG
            .actions()
            .iter()
            .filter(|a| a.domain == "helpdesk")
            .count();
        assert_eq!(union.len(), 16 + helpdesk);
        let both = tools(&app, "/mcp?toolsets=all%2Cessentials", &app.key).await;
        let list = both
            .iter()
            .find(|t| t["name"] == "crisp_list_conversations")
            .expect("listed");
        assert!(
            list["inputSchema"]["properties"]
                .get("website_id")
                .is_some(),
            "{list}"
        );
        let unique: BTreeSet<String> = names(&both).into_iter().collect();
        assert_eq!(unique.len(), both.len());

        let unknown = rpc(&app, "/mcp/x/nope", Some(&app.key), "tools/list", json!({})).await;
        assert_eq!(unknown.status, 404, "{}", unknown.text);
        assert_eq!(unknown.reason(), "unknown_toolset");
        assert!(unknown.message().contains("conversations"));
    }
}

#[tokio::test]
async fn reads_writes_and_head_reach_crisp_and_match_rest() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;

        // A read.
        app.crisp
            .script(Answer::ok(r#"[{"session_id":"s1"},{"session_id":"s2"}]"#));
        let read = call(
            &app,
            "/mcp/all",
            "crisp_list_conversations",
            json!({"pageNumber": 2, "query": {"per_page": 50}}),
        )
        .await;
        let seen = app.crisp.take_received();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].method, "GET");
        assert_eq!(
            seen[0].path,
            format!("/v1/website/{WEBSITE}/conversations/2")
        );
        assert_eq!(seen[0].query.as_deref(), Some("per_page=50"));
        assert_eq!(read["isError"], false, "{read}");
        assert_eq!(
            read["content"][0]["text"],
            r#"[{"session_id":"s1"},{"session_id":"s2"}]"#
        );
        app.crisp
            .script(Answer::ok(r#"[{"session_id":"s1"},{"session_id":"s2"}]"#));
        let rest = app
            .call(
                "list/conversations",
                r#"{"pageNumber":2,"query":{"per_page":50}}"#,
            )
            .await;
        assert_eq!(read["structuredContent"], rest.json());
        app.crisp.take_received();

        // A write.
        let write = call(
            &app,
            "/mcp/all",
            "crisp_send_message_in_conversation",
            json!({"sessionID": "session_1", "body": {"type": "text", "from": "operator", "origin": "chat", "content": "Hi"}}),
        )
        .await;
        assert_eq!(write["isError"], false, "{write}");
        let seen = app.crisp.take_received();
        assert_eq!(seen[0].method, "POST");
        assert_eq!(
            seen[0].path,
            format!("/v1/website/{WEBSITE}/conversation/session_1/message")
        );
        assert_eq!(seen[0].json()["content"], "Hi");
        assert_eq!(
            write["structuredContent"],
            json!({"ok": true, "tool": "crisp_send_message_in_conversation", "result": {"echo": true}})
        );

        // A HEAD.
        app.crisp.script(Answer::json(404, ""));
        let head = call(
            &app,
            "/mcp/all",
            "crisp_check_conversation_exists",
            json!({"sessionID": "session_404"}),
        )
        .await;
        let seen = app.crisp.take_received();
        assert_eq!(seen[0].method, "HEAD");
        assert_eq!(head["content"][0]["text"], r#"{"exists":false}"#, "{head}");
        assert_eq!(head["isError"], false);
    }
}

#[tokio::test]
async fn the_connector_tools_translate_onto_catalog_actions() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.allow_websites("main", "web-2").await;
        let path = "/mcp/essentials";

        call(
            &app,
            path,
            "crisp_send_message",
            json!({"website_id": "web-2", "session_id": "s1", "content": "Hello"}),
        )
        .await;
        call(
            &app,
            path,
            "crisp_archive_conversation",
            json!({"session_id": "s1"}),
        )
        .await;
        call(
            &app,
            path,
            "crisp_list_conversations",
            json!({"page_number": 2, "per_page": 30, "filter_unread": 1}),
        )
        .await;
        call(
            &app,
            path,
            "crisp_get_message",
            json!({"session_id": "s1", "message_id": 1234}),
        )
        .await;
        call(
            &app,
            path,
            "crisp_delete_operator",
            json!({"operator_id": "u1"}),
        )
        .await;
        let seen = app.crisp.take_received();
        let summary: Vec<(String, String)> = seen
            .iter()
            .map(|r| (r.method.clone(), r.path.clone()))
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "POST".into(),
                    "/v1/website/web-2/conversation/s1/message".into()
                ),
                (
                    "PATCH".into(),
                    format!("/v1/website/{WEBSITE}/conversation/s1/state")
                ),
                (
                    "GET".into(),
                    format!("/v1/website/{WEBSITE}/conversations/2")
                ),
                (
                    "GET".into(),
                    format!("/v1/website/{WEBSITE}/conversation/s1/message/1234")
                ),
                (
                    "DELETE".into(),
                    format!("/v1/website/{WEBSITE}/operator/u1")
                ),
            ]
        );
        assert_eq!(
            seen[0].json(),
            json!({"content": "Hello", "type": "text", "from": "operator", "origin": "chat"})
        );
        assert_eq!(seen[1].json(), json!({"state": "resolved"}));
        assert_eq!(
            seen[2].query.as_deref(),
            Some("per_page=30&filter_unread=1")
        );

        let missing = call(
            &app,
            path,
            "crisp_send_message",
            json!({"session_id": "s1"}),
        )
        .await;
        assert_eq!(missing["isError"], true);
        assert_eq!(
            missing["content"][0]["text"],
            "`content` is required by `crisp_send_message`."
        );
        assert!(app.crisp.take_received().is_empty());
    }
}

#[tokio::test]
async fn meta_tools_reach_every_action() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;

        let found = call(
            &app,
            "/mcp",
            "crisp_search_actions",
            json!({"query": "send message in conversation", "limit": 3}),
        )
        .await;
        let actions = &found["structuredContent"]["actions"];
        assert_eq!(actions.as_array().expect("list").len(), 3, "{found}");
        assert_eq!(actions[0]["action"], "send/message/in/conversation");
        assert!(actions[0]["input_schema"]["properties"]["body"].is_object());

        let described = call(
            &app,
            "/mcp",
            "crisp_describe_action",
            json!({"action": "crisp_get_people_profile"}),
        )
        .await;
        assert_eq!(described["structuredContent"]["method"], "GET");
        assert_eq!(
            described["structuredContent"]["input_schema"]["required"],
            json!(["peopleID"])
        );

        let called = call(
            &app,
            "/mcp",
            "crisp_call_action",
            json!({"action": "get/people/profile", "arguments": {"peopleID": "p1"}}),
        )
        .await;
        assert_eq!(
            called["structuredContent"]["tool"],
            "crisp_get_people_profile"
        );
        let seen = app.crisp.take_received();
        assert_eq!(
            seen[0].path,
            format!("/v1/website/{WEBSITE}/people/profile/p1")
        );

        let accounts = call(&app, "/mcp", "crisp_list_accounts", json!({})).await;
        let rest = app.call("list/accounts", "{}").await;
        assert_eq!(accounts["structuredContent"], rest.json());
        assert!(app.crisp.received().is_empty());
    }
}

#[tokio::test]
async fn bad_arguments_and_upstream_errors_are_tool_errors_with_the_rest_message() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;

        let bad = call(
            &app,
            "/mcp/all",
            "crisp_get_conversation",
            json!({"sessionId": "s1"}),
        )
        .await;
        let rest = app.call("get/conversation", r#"{"sessionId":"s1"}"#).await;
        assert_eq!(rest.status, 400);
        assert_eq!(bad["isError"], true, "{bad}");
        assert_eq!(bad["content"][0]["text"], rest.message().as_str());
        assert_eq!(bad["structuredContent"]["error"]["reason"], "unknown_field");
        assert_eq!(bad["structuredContent"]["error"]["status"], 400);
        assert!(
            bad["structuredContent"]["error"]["request_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "{bad}"
        );

        let via_meta = call(
            &app,
            "/mcp",
            "crisp_call_action",
            json!({"action": "get/conversation", "arguments": {"sessionId": "s1"}}),
        )
        .await;
        assert_eq!(via_meta["content"][0]["text"], rest.message().as_str());
        assert!(app.crisp.take_received().is_empty());

        let crisp_error =
            r#"{"error":true,"reason":"invalid_data","data":{"message":"content is missing"}}"#;
        app.crisp.script(Answer::json(400, crisp_error));
        let upstream = call(
            &app,
            "/mcp/all",
            "crisp_send_message_in_conversation",
            json!({"sessionID": "s1", "body": {"type": "text", "from": "operator", "origin": "chat", "content": "x"}}),
        )
        .await;
        app.crisp.script(Answer::json(400, crisp_error));
        let rest = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"x"}}"#,
            )
            .await;
        assert_eq!(upstream["isError"], true, "{upstream}");
        assert_eq!(upstream["content"][0]["text"], rest.message().as_str());
        assert_eq!(
            upstream["structuredContent"]["error"]["reason"],
            rest.reason().as_str()
        );

        // A `data` that is not JSON inside the documented shape: REST forwards it as a proxy
        // would (see `forward::scan`), MCP, which parses the envelope, says Crisp broke it.
        app.crisp.script(Answer::ok(r#"{"a":}"#));
        let broken = call(
            &app,
            "/mcp/all",
            "crisp_get_conversation",
            json!({"sessionID": "s1"}),
        )
        .await;
        assert_eq!(broken["isError"], true, "{broken}");
        assert_eq!(
            broken["structuredContent"]["error"]["reason"], "crisp_invalid_response",
            "{broken}"
        );
        assert_eq!(broken["structuredContent"]["error"]["status"], 502);

        let unknown = rpc(
            &app,
            "/mcp",
            Some(&app.key),
            "tools/call",
            json!({"name": "crisp_get_conversation", "arguments": {}}),
        )
        .await;
        let json = unknown.json();
        assert_eq!(json["error"]["code"], -32602, "{json}");
    }
}

#[tokio::test]
async fn bad_keys_get_a_401_before_mcp_and_scopes_filter_tools() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;

        for key in [None, Some("sk_live_nope"), Some("not a key")] {
            let reply = rpc(&app, "/mcp", key, "tools/list", json!({})).await;
            assert_eq!(reply.status, 401, "{key:?}: {}", reply.text);
            // A JSON-RPC error, so MCP clients show the gateway's message; the gateway's
            // error envelope rides in its `data`.
            let body = reply.json();
            assert_eq!(body["jsonrpc"], "2.0");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("crisp-gateway key create")),
                "{}",
                reply.text
            );
            assert_eq!(body["error"]["data"]["error"]["reason"], "unauthorized");
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        }
        let get = app.http.get(app.url("/mcp")).send().await.expect("answers");
        assert_eq!(get.status(), 401);
        let get = app
            .http
            .get(app.url("/mcp"))
            .header("authorization", format!("Bearer {}", app.key))
            .header("accept", "text/event-stream")
            .send()
            .await
            .expect("answers");
        assert_eq!(get.status(), 405);
        let body: Value = serde_json::from_str(&get.text().await.expect("body")).expect("json");
        assert_eq!(
            body["error"]["data"]["error"]["reason"],
            "method_not_allowed"
        );

        // rmcp's plain-text refusals keep their explanation, inside the error envelope.
        let no_accept = app
            .http
            .post(app.url("/mcp"))
            .header("authorization", format!("Bearer {}", app.key))
            .header("content-type", "application/json")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
            .send()
            .await
            .expect("answers");
        assert_eq!(no_accept.status(), 400);
        let body: Value =
            serde_json::from_str(&no_accept.text().await.expect("body")).expect("json");
        assert_eq!(
            body["error"]["data"]["error"]["reason"], "mcp_transport",
            "{body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Not Acceptable")),
            "{body}"
        );

        // A deployed gateway is reached by its own host name.
        let foreign = app
            .http
            .post(app.url("/mcp"))
            .header("host", "gateway.example.com")
            .header("authorization", format!("Bearer {}", app.key))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#)
            .send()
            .await
            .expect("answers");
        assert_eq!(foreign.status(), 200);

        let read_only = scoped_key(&app, true, None).await;
        let visible = names(&tools(&app, "/mcp/all", &read_only).await);
        let reads = CATALOG.actions().iter().filter(|a| !a.write).count();
        assert_eq!(visible.len(), reads);
        assert!(!visible.contains(&"crisp_send_message_in_conversation".to_owned()));
        let refused = rpc(
            &app,
            "/mcp/all",
            Some(&read_only),
            "tools/call",
            json!({"name": "crisp_remove_conversation", "arguments": {"sessionID": "s1"}}),
        )
        .await
        .json();
        assert_eq!(refused["result"]["isError"], true, "{refused}");
        assert_eq!(
            refused["result"]["structuredContent"]["error"]["reason"],
            "write_not_allowed"
        );
        let found = rpc(
            &app,
            "/mcp",
            Some(&read_only),
            "tools/call",
            json!({"name": "crisp_search_actions", "arguments": {"query": "remove conversation"}}),
        )
        .await
        .json();
        for action in found["result"]["structuredContent"]["actions"]
            .as_array()
            .expect("list")
        {
            assert_eq!(action["write"], false, "{action}");
        }

        let lists_only = scoped_key(&app, false, Some("list/*")).await;
        assert_eq!(
            names(&tools(&app, "/mcp/essentials", &lists_only).await),
            [
                "crisp_list_conversations",
                "crisp_list_people_profiles",
                "crisp_list_operators"
            ]
        );
        assert_eq!(
            names(&tools(&app, "/mcp", &lists_only).await),
            [
                "crisp_search_actions",
                "crisp_describe_action",
                "crisp_call_action",
                "crisp_list_accounts"
            ]
        );
        assert!(app.crisp.received().is_empty());
    }
}

#[tokio::test]
async fn crisp_error_text_never_carries_the_accounts_credentials() {
    use crate::helpers::{CRISP_KEY, ECHO_AUTHORIZATION, IDENTIFIER, basic};
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // Crisp (or a proxy before it) echoing the request: the header, the key and the
        // identifier, in the message and in the reason.
        let echo = format!(
            r#"{{"error":true,"reason":"invalid_data {CRISP_KEY}","data":{{"message":"refused; you sent Authorization: {ECHO_AUTHORIZATION} (identifier {IDENTIFIER}, key {CRISP_KEY}) {}"}}}}"#,
            "x".repeat(5000)
        );
        let secrets = [
            basic(IDENTIFIER, CRISP_KEY),
            basic(IDENTIFIER, CRISP_KEY)
                .trim_start_matches("Basic ")
                .to_owned(),
            IDENTIFIER.to_owned(),
            CRISP_KEY.to_owned(),
        ];
        app.crisp.script(Answer::json(400, &echo));
        let rest = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"x"}}"#,
            )
            .await;
        app.crisp.script(Answer::json(400, &echo));
        let tool = call(
            &app,
            "/mcp/all",
            "crisp_send_message_in_conversation",
            json!({"sessionID": "s1", "body": {"type": "text", "from": "operator", "origin": "chat", "content": "x"}}),
        )
        .await;
        let received = app.crisp.take_received();
        assert_eq!(received.len(), 2, "both calls reached Crisp");
        assert_eq!(
            received[0].header("authorization"),
            Some(secrets[0].as_str()),
            "the fake Crisp echoed the real header"
        );
        assert_eq!(rest.status, 400, "{}", rest.text);
        assert_eq!(rest.reason(), "crisp_error", "{}", rest.text);
        assert!(rest.message().contains("[redacted]"), "{}", rest.message());
        assert!(
            rest.message().len() < 1100,
            "bounded: {}",
            rest.message().len()
        );
        assert_eq!(tool["isError"], true, "{tool}");
        let tool_text = tool.to_string();
        for secret in &secrets {
            assert!(
                !rest.text.contains(secret.as_str()),
                "REST body: {}",
                rest.text
            );
            assert!(
                !tool_text.contains(secret.as_str()),
                "MCP tool text: {tool_text}"
            );
        }
    }
}
