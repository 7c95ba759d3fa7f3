//! The stateful sandbox over real HTTP: its resources, Crisp's validation and errors, seeded
//! accounts, fault injection, the gateway in front of it, and `account test` outcomes.

use std::time::{Duration, Instant};

use base64::Engine;
use crisp_gateway::accounts::{Account, Tier};
use crisp_gateway::admin::checks::{Verdict, test_account};
use crisp_gateway::forward::CrispClient;
use crisp_gateway::sandbox::{self, Faults, RateLimit, SandboxConfig, Seed};
use crisp_gateway::store::AccountRecord;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{Engine as DbEngine, TestApp, engines};

const SITE: &str = "site-1";

async fn start(config: SandboxConfig) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    sandbox::spawn(listener, config).expect("spawn").0
}

/// A bare Crisp client: Basic credentials and a tier, like the official clients.
struct Client {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, String, String)>,
}

struct Got {
    status: u16,
    body: Value,
}

impl Client {
    fn new(base: &str, id: &str, key: &str, tier: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::new(),
            auth: Some((id.to_owned(), key.to_owned(), tier.to_owned())),
        }
    }

    async fn send(&self, method: &str, path: &str, body: Option<Value>) -> Got {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some((id, key, tier)) = &self.auth {
            let token = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}"));
            request = request
                .header("authorization", format!("Basic {token}"))
                .header("x-crisp-tier", tier);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("sandbox answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        Got { status, body }
    }

    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let got = self.send(method, path, body).await;
        assert!(
            (200..300).contains(&got.status),
            "{method} {path}: {} {}",
            got.status,
            got.body
        );
        assert_eq!(got.body["error"], false, "{}", got.body);
        got.body["data"].clone()
    }
}

fn site(path: &str) -> String {
    format!("/website/{SITE}{path}")
}

#[tokio::test]
async fn conversations_and_messages_keep_state() {
    let base = start(SandboxConfig::default()).await;
    let c = Client::new(&base, "any-id", "any-key", "website");

    let created = c.ok("POST", &site("/conversation"), Some(json!({}))).await;
    let session = created["session_id"]
        .as_str()
        .expect("session_id")
        .to_owned();
    assert!(
        session.starts_with("session_") && session.len() == 44,
        "{session}"
    );
    let conv = |p: &str| site(&format!("/conversation/{session}{p}"));

    // Sending needs type, from, origin and content, and says which one is missing.
    let missing = c
        .send(
            "POST",
            &conv("/message"),
            Some(json!({"type": "text", "from": "operator", "content": "hi"})),
        )
        .await;
    assert_eq!(missing.status, 400);
    assert_eq!(missing.body["reason"], "invalid_data");
    assert_eq!(
        missing.body["data"]["message"],
        "data should have required property 'origin'"
    );
    let wrong_content = c
        .send(
            "POST",
            &conv("/message"),
            Some(json!({"type": "text", "from": "user", "origin": "chat", "content": {"x": 1}})),
        )
        .await;
    assert_eq!(
        wrong_content.body["data"]["message"],
        "data.content should be string"
    );

    let mut fingerprints = Vec::new();
    for (i, from) in ["user", "operator", "user"].iter().enumerate() {
        let sent = c
            .ok(
                "POST",
                &conv("/message"),
                Some(json!({"type": "text", "from": from, "origin": "chat", "content": format!("m{i}")})),
            )
            .await;
        fingerprints.push(sent["fingerprint"].as_u64().expect("integer fingerprint"));
    }
    let all = c.ok("GET", &conv("/messages"), None).await;
    let contents: Vec<&str> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["content"].as_str().expect("content"))
        .collect();
    assert_eq!(contents, ["m0", "m1", "m2"]);
    let cursor = all[2]["timestamp"].as_i64().expect("timestamp");
    let older = c
        .ok(
            "GET",
            &conv(&format!("/messages?timestamp_before={cursor}")),
            None,
        )
        .await;
    assert_eq!(older.as_array().map(Vec::len), Some(2));

    let one = conv(&format!("/message/{}", fingerprints[1]));
    assert_eq!(c.ok("GET", &one, None).await["content"], "m1");
    c.ok("PATCH", &one, Some(json!({"content": "edited"})))
        .await;
    let edited = c.ok("GET", &one, None).await;
    assert_eq!(
        (edited["content"].as_str(), edited["edited"].as_bool()),
        (Some("edited"), Some(true))
    );
    c.ok("DELETE", &one, None).await;
    assert_eq!(c.send("GET", &one, None).await.status, 404);

    // Two visitor messages are unread for operators until they read them.
    let got = c.ok("GET", &conv(""), None).await;
    assert_eq!(got["unread"]["operator"], 2);
    c.ok(
        "PATCH",
        &conv("/read"),
        Some(json!({"from": "operator", "origin": "chat"})),
    )
    .await;
    assert_eq!(c.ok("GET", &conv(""), None).await["unread"]["operator"], 0);
    c.ok("PATCH", &conv("/unread"), Some(json!({"from": "operator"})))
        .await;
    assert_eq!(c.ok("GET", &conv(""), None).await["unread"]["operator"], 1);

    let bad_state = c
        .send("PATCH", &conv("/state"), Some(json!({"state": "closed"})))
        .await;
    assert_eq!(
        bad_state.body["data"]["message"],
        "data.state should be equal to one of the allowed values"
    );
    c.ok("PATCH", &conv("/state"), Some(json!({"state": "resolved"})))
        .await;
    assert_eq!(
        c.ok("GET", &conv("/state"), None).await["state"],
        "resolved"
    );

    c.ok(
        "PATCH",
        &conv("/meta"),
        Some(json!({"nickname": "Jane", "email": "jane@example.com", "segments": ["vip"]})),
    )
    .await;
    let metas = c.ok("GET", &conv("/meta"), None).await;
    assert_eq!(
        (metas["nickname"].as_str(), metas["segments"][0].as_str()),
        (Some("Jane"), Some("vip"))
    );
    let bad_email = c
        .send("PATCH", &conv("/meta"), Some(json!({"email": "nope"})))
        .await;
    assert_eq!(bad_email.status, 400);

    let operators = c.ok("GET", &site("/operators/list"), None).await;
    let owner = operators[0]["details"]["user_id"]
        .as_str()
        .expect("user_id")
        .to_owned();
    c.ok(
        "PATCH",
        &conv("/routing"),
        Some(json!({"assigned": {"user_id": owner}})),
    )
    .await;
    assert_eq!(
        c.ok("GET", &conv("/routing"), None).await["assigned"]["user_id"],
        owner.as_str()
    );

    // HEAD answers with existence alone; routes without state still need the conversation.
    assert_eq!(c.send("HEAD", &conv(""), None).await.status, 200);
    assert_eq!(c.ok("GET", &conv("/participants"), None).await, json!({}));
    c.ok("DELETE", &conv(""), None).await;
    assert_eq!(c.send("HEAD", &conv(""), None).await.status, 404);
    let gone = c.send("GET", &conv(""), None).await;
    assert_eq!(
        (gone.status, gone.body["reason"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(
        c.send("GET", &conv("/participants"), None).await.status,
        404
    );
}

#[tokio::test]
async fn conversations_page_with_per_page() {
    let base = start(SandboxConfig::default()).await;
    let c = Client::new(&base, "any-id", "any-key", "plugin");
    for _ in 0..25 {
        c.ok("POST", &site("/conversation"), None).await;
    }
    let len = |v: Value| v.as_array().map_or(0, Vec::len);
    assert_eq!(len(c.ok("GET", &site("/conversations/1"), None).await), 20);
    assert_eq!(len(c.ok("GET", &site("/conversations/2"), None).await), 5);
    assert_eq!(len(c.ok("GET", &site("/conversations/3"), None).await), 0);
    assert_eq!(
        len(c
            .ok("GET", &site("/conversations/1?per_page=50"), None)
            .await),
        25
    );
    let small = c
        .send("GET", &site("/conversations/1?per_page=5"), None)
        .await;
    assert_eq!(
        (small.status, small.body["data"]["message"].as_str()),
        (400, Some("data.per_page should be >= 20"))
    );
    assert_eq!(
        c.send("GET", &site("/conversations/0"), None).await.status,
        400
    );
}

#[tokio::test]
async fn people_operators_and_settings_keep_state() {
    let base = start(SandboxConfig::default()).await;
    let c = Client::new(&base, "any-id", "any-key", "website");

    let no_nickname = c
        .send(
            "POST",
            &site("/people/profile"),
            Some(json!({"email": "a@example.com"})),
        )
        .await;
    assert_eq!(
        no_nickname.body["data"]["message"],
        "data should have required property 'person'"
    );
    let added = c
        .ok(
            "POST",
            &site("/people/profile"),
            Some(json!({"email": "bob@example.com", "person": {"nickname": "Bob"}})),
        )
        .await;
    let bob = added["people_id"].as_str().expect("people_id").to_owned();
    c.ok(
        "POST",
        &site("/people/profile"),
        Some(json!({"email": "ann@example.com", "person": {"nickname": "Ann"}})),
    )
    .await;
    let found = c
        .ok("GET", &site("/people/profiles/1?search_text=bob"), None)
        .await;
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(found[0]["people_id"], bob.as_str());

    let profile = |p: &str| site(&format!("/people/profile/{p}"));
    c.ok(
        "PATCH",
        &profile(&bob),
        Some(json!({"person": {"phone": "+33"}, "segments": ["lead"]})),
    )
    .await;
    // The profile can be named by e-mail too; a PATCH merges into the card.
    let got = c.ok("GET", &profile("bob@example.com"), None).await;
    assert_eq!(
        (
            got["person"]["nickname"].as_str(),
            got["person"]["phone"].as_str()
        ),
        (Some("Bob"), Some("+33"))
    );
    let extra = c
        .send("PATCH", &profile(&bob), Some(json!({"shoe_size": 42})))
        .await;
    assert_eq!(
        extra.body["data"]["message"],
        "data should NOT have additional properties"
    );

    c.ok(
        "POST",
        &site(&format!("/people/events/{bob}")),
        Some(json!({"text": "signed up"})),
    )
    .await;
    let events = c
        .ok("GET", &site(&format!("/people/events/{bob}/list/1")), None)
        .await;
    assert_eq!(events[0]["text"], "signed up");
    c.ok(
        "PATCH",
        &site(&format!("/people/data/{bob}")),
        Some(json!({"data": {"plan": "pro"}})),
    )
    .await;
    c.ok(
        "PATCH",
        &site(&format!("/people/data/{bob}")),
        Some(json!({"data": {"seats": 3}})),
    )
    .await;
    assert_eq!(
        c.ok("GET", &site(&format!("/people/data/{bob}")), None)
            .await,
        json!({"data": {"plan": "pro", "seats": 3}})
    );
    assert_eq!(c.send("HEAD", &profile(&bob), None).await.status, 200);
    c.ok("DELETE", &profile(&bob), None).await;
    assert_eq!(c.send("GET", &profile(&bob), None).await.status, 404);

    c.ok(
        "POST",
        &site("/operator"),
        Some(json!({"email": "new@example.com", "role": "member", "verify": "pw"})),
    )
    .await;
    let operators = c.ok("GET", &site("/operators/list"), None).await;
    let invited = operators
        .as_array()
        .and_then(|o| {
            o.iter()
                .find(|o| o["details"]["email"] == "new@example.com")
        })
        .expect("invitation listed")["details"]["user_id"]
        .as_str()
        .expect("id")
        .to_owned();
    c.ok(
        "PATCH",
        &site(&format!("/operator/{invited}")),
        Some(json!({"role": "owner"})),
    )
    .await;
    assert_eq!(
        c.ok("GET", &site(&format!("/operator/{invited}")), None)
            .await["details"]["role"],
        "owner"
    );
    c.ok("DELETE", &site(&format!("/operator/{invited}")), None)
        .await;
    assert_eq!(
        c.send("GET", &site(&format!("/operator/{invited}")), None)
            .await
            .status,
        404
    );

    c.ok(
        "PATCH",
        &site("/settings"),
        Some(json!({"name": "Shop", "chatbox": {"color_theme": "red"}})),
    )
    .await;
    let settings = c.ok("GET", &site("/settings"), None).await;
    assert_eq!(settings["name"], "Shop");
    assert_eq!(settings["chatbox"]["color_theme"], "red");
    assert_eq!(settings["chatbox"]["file_transfer"], true);
    // Crisp documents reading the website for the user and plugin tiers only.
    let user = Client::new(&base, "any-id", "any-key", "user");
    assert_eq!(user.ok("GET", &site(""), None).await["name"], "Shop");
    let bad = c
        .send("PATCH", &site("/settings"), Some(json!({"chatbox": "red"})))
        .await;
    assert_eq!(bad.body["data"]["message"], "data.chatbox should be object");
}

#[tokio::test]
async fn credentials_tiers_and_routes_are_checked() {
    let base = start(SandboxConfig::default()).await;
    let mut c = Client::new(&base, "id", "key", "website");
    // Any other route of the catalog answers a well-formed, empty envelope.
    let generic = c.send("GET", &site("/visitors/blocked"), None).await;
    assert_eq!(
        (generic.status, generic.body["error"].as_bool()),
        (200, Some(false))
    );
    assert_eq!(c.ok("GET", &site("/inboxes/list/1"), None).await, json!([]));
    let unknown = c.send("GET", "/website/x/no-such-route", None).await;
    assert_eq!(
        (unknown.status, unknown.body["data"]["message"].as_str()),
        (404, Some("the route does not exist"))
    );
    let user_only = c
        .send(
            "POST",
            "/website",
            Some(json!({"name": "x", "domain": "x.com"})),
        )
        .await;
    assert_eq!(
        (user_only.status, user_only.body["reason"].as_str()),
        (403, Some("restricted_route_tier"))
    );
    c = Client::new(&base, "id", "key", "robot");
    assert_eq!(c.send("GET", &site("/settings"), None).await.status, 401);
    c.auth = None;
    assert_eq!(c.send("GET", &site("/settings"), None).await.status, 401);
}

const SEED: &str = r#"
[[account]]
identifier = "id-web"
key = "key-web"
tier = "website"
websites = ["site-1"]

[[account]]
identifier = "id-plugin"
key = "key-plugin"
tier = "plugin"
websites = ["site-1"]

[[website]]
id = "site-1"
name = "Acme"
domain = "acme.example"
operators = [{ email = "ann@acme.example", first_name = "Ann", last_name = "Lee", role = "owner" }]
people = [{ email = "bob@example.com", nickname = "Bob" }]

[[website.conversation]]
nickname = "Bob"
state = "unresolved"
messages = [{ from = "user", content = "Where is my order?" }, { from = "operator", content = "On its way." }]

[[website]]
id = "site-2"
"#;

#[tokio::test]
async fn a_seed_fixes_accounts_websites_and_data() {
    let base = start(SandboxConfig {
        seed: Some(Seed::parse(SEED).expect("seed")),
        ..SandboxConfig::default()
    })
    .await;
    let web = Client::new(&base, "id-web", "key-web", "website");
    let list = web.ok("GET", &site("/conversations/1"), None).await;
    assert_eq!(list[0]["meta"]["nickname"], "Bob");
    assert_eq!(list[0]["state"], "unresolved");
    let session = list[0]["session_id"].as_str().expect("id");
    let messages = web
        .ok(
            "GET",
            &site(&format!("/conversation/{session}/messages")),
            None,
        )
        .await;
    assert_eq!(messages[1]["content"], "On its way.");
    let ann = web.ok("GET", &site("/operators/list"), None).await[0]["details"].clone();
    assert_eq!(ann["first_name"], "Ann");
    assert_eq!(
        web.ok("GET", &site("/teams/list/1"), None).await[0]["operators"],
        json!([ann["user_id"]]),
        "the starting team names a seeded operator"
    );
    assert_eq!(
        web.ok("GET", &site("/settings"), None).await["domain"],
        "acme.example"
    );

    let status = |g: Got| (g.status, g.body["reason"].as_str().map(str::to_owned));
    let wrong_key = Client::new(&base, "id-web", "nope", "website");
    assert_eq!(
        wrong_key.send("GET", &site("/settings"), None).await.status,
        401
    );
    let wrong_tier = Client::new(&base, "id-web", "key-web", "plugin");
    assert_eq!(
        wrong_tier
            .send("GET", &site("/settings"), None)
            .await
            .status,
        401
    );
    let plugin = Client::new(&base, "id-plugin", "key-plugin", "plugin");
    plugin.ok("GET", &site("/settings"), None).await;
    assert_eq!(
        status(plugin.send("GET", "/website/site-2/settings", None).await),
        (404, Some("not_subscribed".into()))
    );
    assert_eq!(
        status(web.send("GET", "/website/site-2/settings", None).await),
        (403, Some("not_allowed".into()))
    );
    assert_eq!(
        status(web.send("GET", "/website/site-9/settings", None).await),
        (404, Some("not_found".into()))
    );
    assert!(
        Seed::parse(
            "[[account]]\nidentifier=\"a\"\nkey=\"b\"\ntier=\"website\"\nwebsites=[\"nope\"]"
        )
        .is_err()
    );
    assert!(Seed::parse("[[account]]\nidentifier=\"a\"\nkey=\"b\"\ntier=\"robot\"").is_err());
}

#[tokio::test]
async fn faults_are_injected() {
    let limited = start(SandboxConfig {
        faults: Faults {
            rate_limit: Some(RateLimit {
                calls: 2,
                per: Duration::from_secs(3600),
                status: 420,
            }),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = Client::new(&limited, "id", "key", "website");
    c.ok("GET", &site("/settings"), None).await;
    c.ok("GET", &site("/settings"), None).await;
    assert_eq!(c.send("GET", &site("/settings"), None).await.status, 420);

    let failing = start(SandboxConfig {
        faults: Faults {
            error_rate: 1.0,
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = Client::new(&failing, "id", "key", "website");
    let got = c.send("GET", &site("/settings"), None).await;
    assert_eq!((got.status, got.body["error"].as_bool()), (500, Some(true)));

    let slow = start(SandboxConfig {
        faults: Faults {
            latency: Some(sandbox::parse_latency("150ms..200ms").expect("latency")),
            ..Faults::default()
        },
        ..SandboxConfig::default()
    })
    .await;
    let c = Client::new(&slow, "id", "key", "website");
    let started = Instant::now();
    c.ok("GET", &site("/settings"), None).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn the_gateway_drives_the_sandbox() {
    for engine in engines() {
        let base = start(SandboxConfig::default()).await;
        let app = TestApp::spawn_with(engine, |config| config.upstream = base.clone()).await;
        let created = app.call("create/new/conversation", "{}").await;
        assert_eq!(created.status, 200, "{engine:?}: {}", created.text);
        let session = created.json()["result"]["session_id"]
            .as_str()
            .expect("session_id")
            .to_owned();
        let body = json!({"sessionID": session, "body": {"type": "text", "from": "operator", "origin": "chat", "content": "hello"}});
        let sent = app
            .call("send/message/in/conversation", &body.to_string())
            .await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        let listed = app
            .call(
                "get/messages/in/conversation",
                &json!({"sessionID": session}).to_string(),
            )
            .await;
        assert_eq!(
            listed.json()["result"][0]["content"],
            "hello",
            "{}",
            listed.text
        );
        // A body missing a field Crisp requires is refused before Crisp, naming the field.
        let bad = json!({"sessionID": session, "body": {"type": "text", "from": "operator", "content": "x"}});
        let refused = app
            .call("send/message/in/conversation", &bad.to_string())
            .await;
        assert_eq!(refused.status, 400);
        assert_eq!(refused.reason(), "invalid_body");
        assert!(
            refused.message().contains("`body.origin`"),
            "{}",
            refused.text
        );
        let missing = app
            .call("get/conversation", r#"{"sessionID":"session_nope"}"#)
            .await;
        assert_eq!(
            (missing.status, missing.reason()),
            (404, "not_found".to_owned())
        );
        // Teams and the Knowledge Base tree through the gateway; a tree path with a slash is
        // one percent-encoded segment on the way to Crisp.
        let team = app
            .call("create/new/team", r#"{"body":{"name":"Sales"}}"#)
            .await;
        let team_id = team.json()["result"]["team_id"].clone();
        let got = app
            .call("get/team", &json!({"teamID": team_id}).to_string())
            .await;
        assert_eq!(got.json()["result"]["name"], "Sales", "{}", got.text);
        let tree = json!({"locale": "en", "contentType": "guides", "path": "setup/first-steps"});
        let created = app
            .call("create/helpdesk/tree/path", &tree.to_string())
            .await;
        assert_eq!(created.status, 200, "{}", created.text);
        let listed = app
            .call(
                "list/helpdesk/tree",
                r#"{"locale":"en","contentType":"guides"}"#,
            )
            .await;
        assert_eq!(
            listed.json()["result"][0]["children"][0]["path"],
            "setup/first-steps",
            "{}",
            listed.text
        );
        // The test account is website-tier: the sandbox refuses it a user-only route as Crisp
        // does, and the caller hears of the tier, never of bad credentials.
        let refused = app
            .call(
                "create/website",
                r#"{"body":{"name":"x","domain":"x.example"}}"#,
            )
            .await;
        assert!(
            refused.reason() == "tier_not_allowed"
                || refused.message().contains("restricted_route_tier"),
            "{}",
            refused.text
        );
        assert_ne!(refused.reason(), "crisp_unauthorized", "{}", refused.text);
        let _: DbEngine = engine;
    }
}

fn account(identifier: &str, key: &str, tier: Tier, website: &str) -> Account {
    let master = crisp_gateway::secret::MasterKey::generate();
    let vault = crisp_gateway::secret::Vault::new(&master);
    let record = AccountRecord {
        sealed_key: vault.seal("acc_test", &crisp_gateway::secret::CrispKey::new(key)),
        crisp_account_id: "acc_test".into(),
        workspace_id: "ws".into(),
        label: "main".into(),
        identifier: identifier.into(),
        website_id: website.into(),
        tier,
        is_default: true,
        created_at: 0,
        allowed_websites: None,
        rate_limit: None,
        max_concurrency: None,
    };
    Account::from_record(&record, &vault).expect("account")
}

#[tokio::test]
async fn account_test_says_what_is_wrong() {
    let base = start(SandboxConfig {
        seed: Some(Seed::parse(SEED).expect("seed")),
        ..SandboxConfig::default()
    })
    .await;
    let checks = |upstream: String| {
        let config = crisp_gateway::app::config::Config {
            upstream,
            upstream_timeout: Duration::from_secs(5),
            ..crisp_gateway::app::config::Config::default()
        };
        CrispClient::for_checks(&config.crisp())
    };
    let client = checks(base.clone()).expect("client");
    let cases = [
        (
            account("id-web", "key-web", Tier::Website, SITE),
            Verdict::Works,
        ),
        (
            account("id-web", "wrong", Tier::Website, SITE),
            Verdict::WrongKey,
        ),
        (
            account("id-plugin", "key-plugin", Tier::Website, SITE),
            Verdict::WrongTier {
                works_with: Tier::Plugin,
            },
        ),
        (
            account("id-plugin", "key-plugin", Tier::Plugin, "site-2"),
            Verdict::NotSubscribed,
        ),
        (
            account("id-web", "key-web", Tier::Website, "site-9"),
            Verdict::UnknownWebsite,
        ),
    ];
    for (account, expected) in cases {
        assert_eq!(
            test_account(&client, &account).await,
            expected,
            "{account:?}"
        );
    }
    let down = checks(crate::helpers::dead_upstream().await).expect("client");
    let verdict = test_account(&down, &account("a", "b", Tier::Website, SITE)).await;
    assert!(matches!(verdict, Verdict::Unreachable(_)), "{verdict:?}");
}

#[tokio::test]
async fn stateless_mode_answers_every_route_without_checking_resources() {
    let base = start(SandboxConfig {
        stateless: true,
        ..SandboxConfig::default()
    })
    .await;
    let c = Client::new(&base, "id", "key", "website");
    let sent = c
        .send(
            "POST",
            &site("/conversation/session_nowhere/message"),
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (sent.status, sent.body["reason"].clone()),
        (200, json!("added"))
    );
    assert_eq!(
        c.ok("GET", &site("/conversations/1"), None).await,
        json!([])
    );
    // The least value of the catalog's result type: a list is a list even without a page,
    // and an object has its required fields.
    assert_eq!(c.ok("GET", &site("/campaigns/tags"), None).await, json!([]));
    assert_eq!(
        c.ok("GET", &site("/conversation/session_x"), None).await["session_id"],
        ""
    );
    let refused = c.send("POST", "/website", Some(json!({"name": "x"}))).await;
    assert_eq!(
        (refused.status, refused.body["reason"].as_str()),
        (403, Some("restricted_route_tier")),
        "tiers are checked with the credentials"
    );
    let head = c.send("HEAD", &site("/people/profile/nobody"), None).await;
    assert_eq!(head.status, 200);
    let anonymous = Client {
        auth: None,
        ..Client::new(&base, "id", "key", "website")
    };
    assert_eq!(
        anonymous
            .send("GET", &site("/conversations/1"), None)
            .await
            .status,
        401,
        "credentials are still checked"
    );
}

#[tokio::test]
async fn teams_keep_state() {
    let base = start(SandboxConfig::default()).await;
    let c = Client::new(&base, "id", "key", "website");
    let seeded = c.ok("GET", &site("/teams/list/1"), None).await;
    assert_eq!(seeded.as_array().map(Vec::len), Some(1), "{seeded}");
    assert_eq!(seeded[0]["name"], "Support");

    let owner = c.ok("GET", &site("/operators/list"), None).await[0]["details"]["user_id"].clone();
    let created = c
        .ok(
            "POST",
            &site("/team"),
            Some(json!({"name": "Sales", "emoji": "💰", "operators": [owner]})),
        )
        .await;
    let team_id = created["team_id"].as_str().expect("team_id").to_owned();
    let team = format!("/team/{team_id}");
    let got = c.ok("GET", &site(&team), None).await;
    assert_eq!(
        (
            &got["team_id"],
            &got["name"],
            &got["emoji"],
            &got["operators"]
        ),
        (
            &json!(team_id),
            &json!("Sales"),
            &json!("💰"),
            &json!([owner])
        )
    );
    assert!(got["created_at"].is_i64(), "{got}");
    assert_eq!(c.send("HEAD", &site(&team), None).await.status, 200);
    let listed = c.ok("GET", &site("/teams/list/1"), None).await;
    assert_eq!(listed[1]["team_id"], json!(team_id));
    assert_eq!(c.ok("GET", &site("/teams/list/2"), None).await, json!([]));

    // PUT replaces: what the new body leaves out is gone.
    c.ok("PUT", &site(&team), Some(json!({"name": "Sales EU"})))
        .await;
    let saved = c.ok("GET", &site(&team), None).await;
    assert_eq!(
        (&saved["name"], &saved["emoji"], &saved["operators"]),
        (&json!("Sales EU"), &json!(""), &json!([]))
    );
    let bad = c
        .send("POST", &site("/team"), Some(json!({"name": 3})))
        .await;
    assert_eq!(
        (bad.status, bad.body["data"]["message"].as_str()),
        (400, Some("data.name should be string"))
    );

    c.ok("DELETE", &site(&team), None).await;
    let gone = c.send("GET", &site(&team), None).await;
    assert_eq!(
        (
            gone.status,
            gone.body["error"].as_bool(),
            gone.body["reason"].as_str()
        ),
        (404, Some(true), Some("not_found"))
    );
    assert_eq!(c.send("HEAD", &site(&team), None).await.status, 404);
    assert_eq!(c.send("DELETE", &site(&team), None).await.status, 404);
    assert_eq!(
        c.ok("GET", &site("/teams/list/1"), None)
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn the_knowledge_base_tree_keeps_state() {
    let base = start(SandboxConfig::default()).await;
    let c = Client::new(&base, "id", "key", "website");
    let kb = |what: &str, path: &str| site(&format!("/helpdesk/tree/{what}/en/guides/{path}"));

    // The seeded tree reads out of the box.
    let roots = c
        .ok("GET", &site("/helpdesk/tree/list/en/articles/1"), None)
        .await;
    assert_eq!(roots[0]["slug"], "getting-started", "{roots}");
    assert_eq!(roots[0]["children"][0]["slug"], "install");
    let pages = c
        .ok("GET", &site("/helpdesk/page/list/en/articles/1"), None)
        .await;
    assert_eq!(pages.as_array().map(Vec::len), Some(3), "{pages}");
    assert_eq!(
        c.ok("GET", &site("/helpdesk/tree/list/en/guides/1"), None)
            .await,
        json!([])
    );

    // A path through the gateway is one percent-encoded segment; missing parents are made.
    let path = "setup%2Ffirst-steps";
    c.ok("POST", &kb("path", path), None).await;
    let duplicate = c.send("POST", &kb("path", path), None).await;
    assert_eq!(duplicate.status, 409, "{}", duplicate.body);
    let parent = c.ok("GET", &kb("path", "setup"), None).await;
    assert_eq!(parent["children"][0]["slug"], "first-steps", "{parent}");
    assert_eq!(
        c.ok("GET", &kb("content", path), None).await,
        json!({"content": ""})
    );

    c.ok(
        "PUT",
        &kb("content", path),
        Some(json!({"content": "# First steps\n\nHello."})),
    )
    .await;
    assert_eq!(
        c.ok("GET", &kb("content", path), None).await["content"],
        "# First steps\n\nHello."
    );
    c.ok(
        "PATCH",
        &kb("metadata", path),
        Some(json!({"title": "First steps", "state": {"published": true}})),
    )
    .await;
    let metadata = c.ok("GET", &kb("metadata", path), None).await;
    assert_eq!(
        (
            &metadata["title"],
            &metadata["state"]["published"],
            &metadata["state"]["hidden"]
        ),
        (&json!("First steps"), &json!(true), &json!(false))
    );
    let page = c.ok("GET", &kb("page", path), None).await;
    assert_eq!(page["title"], "First steps");
    let published = c
        .ok("GET", &site("/helpdesk/page/list/en/guides/1"), None)
        .await;
    assert_eq!(
        published[0]["tree_path"], "setup/first-steps",
        "{published}"
    );
    let entity = published[0]["entity_id"].as_str().expect("entity_id");
    assert_eq!(
        c.ok(
            "GET",
            &site(&format!("/helpdesk/page/entity/en/guides/{entity}")),
            None
        )
        .await["url"],
        published[0]["url"]
    );

    // A move takes what is below and makes missing parents; every write is a change in the
    // history.
    c.ok(
        "PATCH",
        &kb("path", path),
        Some(json!({"action": "move", "path": {"to": "basics/first-steps"}})),
    )
    .await;
    assert_eq!(c.send("GET", &kb("path", path), None).await.status, 404);
    assert_eq!(
        c.ok("GET", &kb("path", "basics"), None).await["children"][0]["title"],
        "First steps"
    );
    let changes = c
        .ok(
            "GET",
            &site("/helpdesk/history/changes/1?filter_type=guides"),
            None,
        )
        .await;
    assert_eq!(changes.as_array().map(Vec::len), Some(4), "{changes}");
    let moved = changes[0]["change_id"].as_str().expect("change_id");
    let change = format!("/helpdesk/history/change/{moved}");
    assert_eq!(
        c.ok("GET", &site(&change), None).await["files"][0]["change"],
        "deleted"
    );
    let no_action = c.send("DELETE", &site(&change), Some(json!({}))).await;
    assert_eq!(no_action.status, 400);
    c.ok("DELETE", &site(&change), Some(json!({"action": "revert"})))
        .await;
    assert_eq!(c.send("GET", &site(&change), None).await.status, 404);
    assert_eq!(
        c.ok("GET", &kb("content", path), None).await["content"],
        "# First steps\n\nHello.",
        "the cancelled move is undone"
    );
    assert_eq!(c.send("GET", &kb("path", "basics"), None).await.status, 404);

    c.ok("DELETE", &kb("path", "setup"), None).await;
    for gone in ["setup", path] {
        let got = c.send("GET", &kb("path", gone), None).await;
        assert_eq!(
            (got.status, got.body["reason"].as_str()),
            (404, Some("not_found"))
        );
    }
    let unknown_type = c
        .send("GET", &site("/helpdesk/tree/path/en/recipes/faq"), None)
        .await;
    assert_eq!(unknown_type.status, 400);
    let stateless_route = c
        .send("GET", &site("/helpdesk/feedback/ratings/en/recipes"), None)
        .await;
    assert_eq!(stateless_route.status, 400);
    c.ok("GET", &site("/helpdesk/feedback/ratings/en/news"), None)
        .await;
}

#[tokio::test]
async fn routes_refuse_tiers_as_crisp_does() {
    let base = start(SandboxConfig {
        seed: Some(Seed::parse(SEED).expect("seed")),
        ..SandboxConfig::default()
    })
    .await;
    let web = Client::new(&base, "id-web", "key-web", "website");
    let plugin = Client::new(&base, "id-plugin", "key-plugin", "plugin");
    let refused = |g: Got| {
        assert_eq!(
            (g.status, g.body),
            (
                403,
                json!({"error": true, "reason": "restricted_route_tier", "data": {}})
            )
        );
    };
    // Documented user-only (`tiers = ["user"]`) and user-and-plugin routes.
    refused(
        web.send(
            "POST",
            "/website",
            Some(json!({"name": "x", "domain": "x.com"})),
        )
        .await,
    );
    refused(web.send("DELETE", &site("/expunge"), None).await);
    refused(web.send("GET", "/user/connect/endpoints", None).await);
    refused(plugin.send("GET", "/website/connect/endpoints", None).await);
    // `get/website` is open to every tier (Crisp's website-token guide calls it).
    web.ok("GET", &site(""), None).await;
    plugin.ok("GET", &site(""), None).await;
    web.ok("GET", "/website/connect/endpoints", None).await;
    // A route with no documented tiers is open to every tier.
    web.ok("GET", &site("/teams/list/1"), None).await;
}
