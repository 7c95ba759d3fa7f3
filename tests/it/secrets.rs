//! Never leak: the gateway runs at its most verbose log level through every path it has, and
//! no key, Crisp secret, Basic credential or master key may show up in what it logged, in a
//! response body or header, or in what the admin commands printed.

use std::time::Duration;

use axum::http::HeaderValue;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use crisp_gateway::accounts::Account;
use crisp_gateway::app::config::Config;
use crisp_gateway::auth::GatewayKey;
use crisp_gateway::secret::{CrispKey, MasterKey, Vault, random_base62};
use crisp_gateway::store::AccountRecord;
use serde_json::{Value, json};

use crate::helpers::{
    Answer, Cli, Engine, FakeCrisp, Output, Reply, TestDb, basic, dead_upstream, engines,
    eventually,
};

const IDENTIFIER: &str = "ident-never-leak";
const WEBSITE: &str = "web-never-leak";
/// A value in Crisp's answer data, searched for in the logs.
const DATA_MARKER: &str = "crisp-data-marker-never-logged";

/// Everything secret this test knows, each with a name for the failure message.
struct Secrets(Vec<(String, String)>);

impl Secrets {
    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        assert!(
            value.len() >= 16,
            "a secret too short to search for: {value}"
        );
        self.0.push((what.into(), value));
    }

    /// A gateway key: the whole key and its secret part.
    fn add_key(&mut self, what: &str, key: &str) {
        let secret = key.rsplit('_').next().expect("secret part");
        assert_eq!(secret.len(), 40, "{key}");
        self.add(format!("{what} key"), key);
        self.add(format!("{what} key's secret part"), secret);
    }

    /// Panics naming each secret found in `text`.
    fn assert_absent(&self, where_: &str, text: &str) {
        let found: Vec<&str> = self
            .0
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(what, _)| what.as_str())
            .collect();
        assert!(found.is_empty(), "{where_} leaks {found:?}:\n{text}");
    }
}

/// A response as text to search: status, every header, the body.
fn exposed(reply: &Reply) -> String {
    let mut text = format!("{}\n", reply.status);
    for (name, value) in &reply.headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push_str(&reply.text);
    text
}

/// The key printed by `key create` or `key rotate`, after checking only it was printed.
fn printed_key(output: &Output) -> String {
    let key = output.stdout.trim().to_owned();
    assert!(
        key.starts_with("sk_live_") && !key.contains('\n'),
        "{output:?}"
    );
    key
}

#[tokio::test]
async fn no_secret_reaches_a_log_a_response_or_a_listing() {
    for engine in engines() {
        never_leak(engine).await;
    }
}

async fn never_leak(engine: Engine) {
    let db = TestDb::new(engine).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = Cli::for_db(&db, engine).await;
    let crisp_key = format!("crisp-secret-{}", random_base62(24));
    let mut secrets = Secrets(Vec::new());
    secrets.add("the Crisp key", crisp_key.as_str());
    let credential = STANDARD.encode(format!("{IDENTIFIER}:{crisp_key}"));
    secrets.add("the Basic credential", credential.as_str());
    // Everything the CLI said (except the one moment a key is printed for its owner).
    let mut said = String::new();
    let mut note = |output: &Output, stdout_is_a_key: bool| {
        said.push_str(&output.stderr);
        if !stdout_is_a_key {
            said.push_str(&output.stdout);
        }
    };

    // Prepared as an operator would, through the command line.
    note(&cli.ok(&["migrate"]).await, false);
    note(&cli.ok(&["workspace", "create", "acme"]).await, false);
    let output = cli.ok(&["key", "create", "--workspace", "acme"]).await;
    note(&output, true);
    let key = printed_key(&output);
    secrets.add_key("the caller's", &key);
    let output = cli
        .ok(&["key", "create", "--workspace", "acme", "--read-only"])
        .await;
    note(&output, true);
    let read_only = printed_key(&output);
    secrets.add_key("the read-only", &read_only);
    let output = cli
        .ok(&["key", "create", "--workspace", "acme", "--actions", "get/*"])
        .await;
    note(&output, true);
    let get_only = printed_key(&output);
    secrets.add_key("the get-only", &get_only);
    let output = cli.ok(&["key", "create", "--workspace", "acme"]).await;
    note(&output, true);
    let to_revoke = printed_key(&output);
    secrets.add_key("the revoked", &to_revoke);
    let output = cli.ok(&["key", "create", "--workspace", "acme"]).await;
    note(&output, true);
    let to_rotate = printed_key(&output);
    secrets.add_key("the rotated-away", &to_rotate);
    let output = cli
        .ok(&["key", "create", "--workspace", "acme", "--expires-in", "1s"])
        .await;
    note(&output, true);
    let expiring = printed_key(&output);
    secrets.add_key("the expiring", &expiring);
    note(
        &cli.add_account(
            "acme",
            "main",
            (IDENTIFIER, WEBSITE),
            &crisp_key,
            &["--default"],
        )
        .await,
        false,
    );
    let rotate_id = to_rotate.split('_').nth(2).expect("key id").to_owned();
    let output = cli
        .ok(&["key", "rotate", &rotate_id, "--overlap", "0s"])
        .await;
    note(&output, true);
    let rotated = printed_key(&output);
    secrets.add_key("the rotated-in", &rotated);
    let master = match engine {
        Engine::Sqlite => std::fs::read_to_string(dir_of(&db).join("master.key"))
            .expect("master.key")
            .trim()
            .to_owned(),
        Engine::Postgres => cli
            .env("CRISP_GATEWAY_MASTER_KEY")
            .expect("master key")
            .to_owned(),
    };
    secrets.add("the master key", master.as_str());
    secrets.add(
        "the master key (unpadded)",
        master.trim_end_matches('=').to_owned(),
    );
    secrets.add(
        "the master key (hex)",
        hex(&STANDARD.decode(&master).expect("base64")),
    );

    let crisp = FakeCrisp::start().await;
    let server = cli
        .serve(
            &[
                ("RUST_LOG", "trace"),
                ("CRISP_GATEWAY_UPSTREAM", &crisp.base),
                ("CRISP_GATEWAY_BODY_LIMIT", "2048"),
                ("CRISP_GATEWAY_UPSTREAM_TIMEOUT", "1s"),
                // One attempt, so each scripted failure is the one the caller sees.
                ("CRISP_GATEWAY_RETRY_MAX_ATTEMPTS", "1"),
            ],
            &dir.path().join("serve.log"),
        )
        .await;
    let mut replies: Vec<(String, Reply)> = Vec::new();
    let mut expect = |what: &str, reply: Reply, status: u16| {
        assert_eq!(reply.status, status, "{what}: {}", reply.text);
        assert!(reply.header("x-request-id").is_some(), "{what}");
        replies.push((what.to_owned(), reply));
    };
    // Same id, wrong secret: found in the database, refused by the hash.
    let wrong_secret = format!("{}AAAAAA", &key[..key.len() - 6]);
    let bearer = format!("Bearer {key}");
    let key = Some(key.as_str());

    // Success: a read, a write, a HEAD both ways, the account list.
    expect(
        "read",
        server.call(key, "list/conversations", "{}").await,
        200,
    );
    expect(
        "write",
        server
            .call(
                key,
                "send/message/in/conversation",
                r#"{"sessionID":"session_1","body":{"type":"text","from":"operator","origin":"chat","content":"hello"}}"#,
            )
            .await,
        200,
    );
    let exists = server
        .call(key, "check/conversation/exists", r#"{"sessionID":"s"}"#)
        .await;
    assert_eq!(
        exists.json()["result"],
        json!({"exists": true}),
        "{}",
        exists.text
    );
    expect("HEAD found", exists, 200);
    crisp.script(Answer::json(404, ""));
    let missing = server
        .call(key, "check/conversation/exists", r#"{"sessionID":"gone"}"#)
        .await;
    assert_eq!(
        missing.json()["result"],
        json!({"exists": false}),
        "{}",
        missing.text
    );
    expect("HEAD missing", missing, 200);
    let accounts = server.call(key, "list/accounts", "{}").await;
    assert_eq!(
        accounts.json()["result"][0]["label"],
        "main",
        "{}",
        accounts.text
    );
    expect("list/accounts", accounts, 200);
    expect(
        "list/accounts by label",
        server
            .call(key, "list/accounts", r#"{"account":"main"}"#)
            .await,
        200,
    );
    let received = crisp.take_received();
    assert_eq!(received.len(), 4, "{received:?}");
    for request in &received {
        assert_eq!(
            request.header("authorization"),
            Some(basic(IDENTIFIER, &crisp_key).as_str()),
            "the right credentials did reach Crisp"
        );
    }

    // Crisp's answer data never reaches the log at any level: a marker in a read's data,
    // fetched over REST and through an MCP tool (rmcp logs whole messages at debug).
    crisp.script(Answer::ok(&format!(r#"{{"nickname":"{DATA_MARKER}"}}"#)));
    let read = server
        .call(key, "get/conversation", r#"{"sessionID":"session_marker"}"#)
        .await;
    assert!(read.text.contains(DATA_MARKER), "{}", read.text);
    expect("read of marked data", read, 200);
    crisp.script(Answer::ok(&format!(r#"{{"nickname":"{DATA_MARKER}"}}"#)));
    let tool = server
        .http
        .post(server.url("/mcp/all"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("authorization", &bearer)
        .body(
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
                "name": "crisp_get_conversation", "arguments": {"sessionID": "session_marker"}}})
            .to_string(),
        )
        .send()
        .await
        .expect("mcp answers")
        .text()
        .await
        .expect("body");
    assert!(tool.contains(DATA_MARKER), "{tool}");
    assert_eq!(crisp.take_received().len(), 2);

    // Every way a caller's key can be wrong.
    secrets.add_key("the wrong-secret", &wrong_secret);
    let bad_keys: [(&str, Option<&str>); 5] = [
        ("no key", None),
        ("malformed key", Some("sk_live_short")),
        ("wrong secret", Some(&wrong_secret)),
        ("rotated-away key", Some(&to_rotate)),
        ("not a bearer", Some("")),
    ];
    for (what, bad) in bad_keys {
        expect(
            what,
            server.call(bad, "list/conversations", "{}").await,
            401,
        );
    }
    expect(
        "rotated-in key",
        server
            .call(Some(&rotated), "list/conversations", "{}")
            .await,
        200,
    );
    // Used once (so it sits in the cache), then revoked through the CLI.
    expect(
        "key before revocation",
        server
            .call(Some(&to_revoke), "list/conversations", "{}")
            .await,
        200,
    );
    let revoke_id = to_revoke.split('_').nth(2).expect("key id").to_owned();
    note(&cli.ok(&["key", "revoke", &revoke_id]).await, false);
    let refused = eventually(Duration::from_secs(5), || async {
        server
            .call(Some(&to_revoke), "list/conversations", "{}")
            .await
            .status
            == 401
    })
    .await;
    assert!(refused, "the revoked key still works after 5 s");
    expect(
        "revoked key",
        server
            .call(Some(&to_revoke), "list/conversations", "{}")
            .await,
        401,
    );
    let expired = eventually(Duration::from_secs(10), || async {
        server
            .call(Some(&expiring), "list/conversations", "{}")
            .await
            .status
            == 401
    })
    .await;
    assert!(expired, "the 1 s key still works after 10 s");
    expect(
        "expired key",
        server
            .call(Some(&expiring), "list/conversations", "{}")
            .await,
        401,
    );

    // Every way a call can be wrong. (The polls above reached Crisp a varying number of times.)
    crisp.take_received();
    let big = format!(r#"{{"query":"{}"}}"#, "x".repeat(4096));
    let cases: [(&str, Option<&str>, &str, &str, u16); 11] = [
        ("unknown action", key, "list/conversation", "{}", 404),
        (
            "unknown field",
            key,
            "get/conversation",
            r#"{"sessionId":"s"}"#,
            400,
        ),
        ("missing field", key, "get/conversation", "{}", 400),
        ("invalid JSON", key, "list/conversations", "{oops", 400),
        (
            "bad body JSON",
            key,
            "send/message/in/conversation",
            r#"{"sessionID":"s","body":"{\"type\":"}"#,
            400,
        ),
        (
            "bad query",
            key,
            "list/conversations",
            r#"{"query":"{\"per_page\":"}"#,
            400,
        ),
        ("too large", key, "list/conversations", &big, 413),
        (
            "unknown account",
            key,
            "list/conversations",
            r#"{"account":"nope"}"#,
            404,
        ),
        (
            "write with a read-only key",
            Some(&read_only),
            "send/message/in/conversation",
            r#"{"sessionID":"s","body":{}}"#,
            403,
        ),
        (
            "action outside the key's list",
            Some(&get_only),
            "list/conversations",
            "{}",
            403,
        ),
        (
            "read with the read-only key",
            Some(&read_only),
            "get/conversation",
            r#"{"sessionID":"s"}"#,
            200,
        ),
    ];
    for (what, with, action, body, status) in cases {
        expect(what, server.call(with, action, body).await, status);
    }
    assert_eq!(
        crisp.take_received().len(),
        1,
        "only the accepted call reached Crisp"
    );

    // Every way Crisp can fail.
    let failures = [
        (
            "Crisp 400",
            Answer::json(400, r#"{"error":true,"reason":"invalid_data","data":{}}"#),
            400,
        ),
        (
            // The account's credentials worked earlier in this process, so Crisp's 401/403
            // is read as the route refused to its tier.
            "Crisp 401",
            Answer::json(401, r#"{"error":true,"reason":"unauthorized","data":{}}"#),
            403,
        ),
        (
            "Crisp 403",
            Answer::json(403, r#"{"error":true,"reason":"forbidden","data":{}}"#),
            403,
        ),
        (
            "Crisp 404",
            Answer::json(
                404,
                r#"{"error":true,"reason":"session_not_found","data":{}}"#,
            ),
            404,
        ),
        (
            "Crisp 420",
            Answer::json(420, r#"{"error":true,"reason":"quota","data":{}}"#),
            429,
        ),
        (
            "Crisp 429",
            Answer::json(429, r#"{"error":true,"reason":"rate_limited","data":{}}"#)
                .with_header("retry-after", "3"),
            429,
        ),
        ("Crisp 500", Answer::json(500, "<html>oops</html>"), 502),
        ("Crisp invalid JSON", Answer::json(200, "{not json"), 502),
        (
            "Crisp too slow",
            Answer::ok("{}").delayed(Duration::from_millis(1500)),
            504,
        ),
    ];
    for (what, answer, status) in failures {
        crisp.script(answer);
        expect(
            what,
            server
                .call(key, "get/conversation", r#"{"sessionID":"s"}"#)
                .await,
            status,
        );
    }

    // The rest of the surface.
    expect(
        "report",
        server
            .post(
                key,
                "/api/crisp/report",
                r#"{"message":"it broke","context":"ctx"}"#,
            )
            .await,
        200,
    );
    expect(
        "bad report",
        server
            .post(key, "/api/crisp/report", r#"{"mesage":"x"}"#)
            .await,
        400,
    );
    expect(
        "report without a key",
        server
            .post(None, "/api/crisp/report", r#"{"message":"x"}"#)
            .await,
        401,
    );
    expect("_endpoints", server.get("/api/crisp/_endpoints").await, 200);
    expect("healthz", server.get("/healthz").await, 200);
    expect("readyz", server.get("/readyz").await, 200);
    expect(
        "wrong method",
        server.get("/api/crisp/list/conversations").await,
        405,
    );
    expect("no route", server.get("/nowhere").await, 404);

    // Crisp unreachable: a second gateway on the same database, pointed at nothing.
    let unreachable = cli
        .serve(
            &[
                ("RUST_LOG", "trace"),
                ("CRISP_GATEWAY_UPSTREAM", &dead_upstream().await),
            ],
            &dir.path().join("serve-unreachable.log"),
        )
        .await;
    expect(
        "Crisp unreachable",
        unreachable.call(key, "list/conversations", "{}").await,
        502,
    );

    note(&cli.ok(&["key", "list"]).await, false);
    note(&cli.ok(&["account", "list"]).await, false);
    note(&cli.ok(&["audit"]).await, false);
    note(&cli.ok(&["report", "list"]).await, false);
    let logs = [
        ("the gateway's log", server.stop().await),
        ("the second gateway's log", unreachable.stop().await),
    ];

    // The search only means something if there was something to search.
    let request_ids: Vec<String> = replies
        .iter()
        .filter(|(_, r)| r.status >= 400)
        .map(|(_, r)| r.header("x-request-id").expect("request id").to_owned())
        .collect();
    assert!(request_ids.len() > 30, "{request_ids:?}");
    let (_, log) = &logs[0];
    let lines = log.lines().count();
    assert!(lines > 100, "a trace-level log has many lines: {lines}");
    assert!(
        log.lines()
            .all(|l| serde_json::from_str::<Value>(l).is_ok()),
        "every line is JSON:\n{log}"
    );
    assert!(log.contains("\"level\":\"TRACE\""), "trace level is on");
    for id in &request_ids[..request_ids.len() - 1] {
        assert!(log.contains(id.as_str()), "request {id} was logged");
    }
    assert!(
        logs[1].1.contains(request_ids.last().expect("one")),
        "the unreachable call was logged"
    );
    assert!(log.contains("shutting down"), "the shutdown was logged");
    assert!(said.contains("revoked key"), "{said}");

    for (where_, log) in &logs {
        secrets.assert_absent(where_, log);
        assert!(
            !log.contains(DATA_MARKER),
            "{where_} holds Crisp's answer data"
        );
    }
    for (what, reply) in &replies {
        secrets.assert_absent(&format!("the response to `{what}`"), &exposed(reply));
    }
    secrets.assert_absent("the command line's output", &said);
    // And the search would have found one: the credential Crisp received is the one we seek.
    secrets.assert_absent_fails(&basic(IDENTIFIER, &crisp_key));
}

fn dir_of(db: &TestDb) -> std::path::PathBuf {
    let file = db.url.strip_prefix("sqlite://").expect("SQLite URL");
    std::path::Path::new(file)
        .parent()
        .expect("folder")
        .to_owned()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Secrets {
    /// Checks the checker: `assert_absent` does fail on text holding a secret.
    fn assert_absent_fails(&self, text: &str) {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.assert_absent("a probe", text);
        }));
        assert!(caught.is_err(), "the search must notice a secret in {text}");
    }
}

#[test]
fn debug_output_shows_no_secret() {
    let key = GatewayKey::generate();
    let secret = &key.reveal()[key.reveal().len() - 40..];
    let debug = format!("{key:?}");
    assert!(debug.contains(key.id()), "the id is fine to show: {debug}");
    assert!(!debug.contains(secret), "{debug}");

    let crisp_key = format!("crisp-secret-{}", random_base62(24));
    let crisp = CrispKey::new(crisp_key.as_str());
    assert!(!format!("{crisp:?}").contains(&crisp_key));

    let master = MasterKey::generate();
    let encoded = master.to_base64();
    let bytes = STANDARD.decode(&encoded).expect("base64");
    let vault = Vault::new(&master);
    let config = Config {
        master_key: Some(master.clone()),
        ..Config::default()
    };
    for (what, debug) in [
        ("MasterKey", format!("{master:?}")),
        ("Vault", format!("{vault:?}")),
        ("Config", format!("{config:?}")),
        ("Config (pretty)", format!("{config:#?}")),
    ] {
        assert!(!debug.contains(&encoded), "{what}: {debug}");
        assert!(
            !debug.contains(STANDARD_NO_PAD.encode(&bytes).as_str()),
            "{what}: {debug}"
        );
        assert!(!debug.contains(&hex(&bytes)), "{what}: {debug}");
        assert!(
            !debug.contains(
                &format!("{:?}", &bytes[..8])
                    .trim_end_matches(']')
                    .to_owned()
            ),
            "{what} shows the key's bytes: {debug}"
        );
    }

    let record = AccountRecord {
        crisp_account_id: "acc_1".into(),
        workspace_id: "ws_1".into(),
        label: "main".into(),
        identifier: IDENTIFIER.into(),
        sealed_key: vault.seal("acc_1", &crisp),
        website_id: WEBSITE.into(),
        tier: crisp_gateway::accounts::Tier::Website,
        is_default: true,
        created_at: 0,
        allowed_websites: None,
        rate_limit: None,
        max_concurrency: None,
    };
    let account = Account::from_record(&record, &vault).expect("opens");
    let credential = basic(IDENTIFIER, &crisp_key);
    assert_eq!(
        account.authorization,
        HeaderValue::from_str(&credential).expect("header")
    );
    assert!(account.authorization.is_sensitive());
    for debug in [
        format!("{account:?}"),
        format!("{account:#?}"),
        format!("{record:?}"),
    ] {
        assert!(debug.contains("acc_1"), "{debug}");
        assert!(!debug.contains(&crisp_key), "{debug}");
        assert!(!debug.contains(&credential[6..]), "{debug}");
    }
}
