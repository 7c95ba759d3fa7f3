//! The admin API and console over real HTTP, on both engines: the auth layer, idempotent
//! creates that never show a key twice, revocation reaching every replica, console sessions
//! (cookie flags, CSRF and Origin refusals) and slowed failed sign-ins.

use std::net::SocketAddr;
use std::time::Duration;

use crisp_gateway::admin::tokens::{create_admin_token, revoke_admin_token};
use crisp_gateway::http::server::{ConnectionLimits, serve};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{Engine, Reply, TestApp, engines, eventually};

/// An admin listener in front of a test gateway's app, on a port of its own.
struct Admin {
    addr: SocketAddr,
    token: String,
    token_id: String,
    http: reqwest::Client,
}

impl Admin {
    async fn start(app: &TestApp) -> Self {
        let router = crisp_gateway::console::router(app.app.clone()).expect("admin router");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(serve(
            listener,
            router,
            ConnectionLimits::from_config(&app.app.config),
            "admin",
            std::future::pending(),
        ));
        let (token, record) = create_admin_token(&app.store, Some("tests".into()))
            .await
            .expect("admin token");
        Self {
            addr,
            token: token.reveal().to_owned(),
            token_id: record.admin_token_id,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("admin listener answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        Reply {
            status,
            headers,
            text,
        }
    }

    /// A call with the admin token.
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let bearer = format!("Bearer {}", self.token);
        self.send(method, path, body, &[("authorization", &bearer)])
            .await
    }
}

#[tokio::test]
async fn the_admin_api_provisions_what_the_gateway_serves_and_revokes_it_everywhere() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let replica = app.replica().await;
        let admin = Admin::start(&app).await;
        use reqwest::Method;

        // The auth layer: no token, a gateway key, a made-up admin token.
        let none = admin.send(Method::GET, "/admin/v1/keys", None, &[]).await;
        assert_eq!(none.status, 401, "{engine:?}");
        assert_eq!(none.reason(), "unauthorized");
        assert!(none.message().contains("sk_admin_"), "{}", none.text);
        let with_key = admin
            .send(
                Method::GET,
                "/admin/v1/keys",
                None,
                &[("authorization", &format!("Bearer {}", app.key))],
            )
            .await;
        assert_eq!(with_key.status, 401, "a gateway key is not an admin token");

        let created = admin
            .call(
                Method::POST,
                "/admin/v1/workspaces",
                Some(&json!({"name": "globex"})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let taken = admin
            .call(
                Method::POST,
                "/admin/v1/workspaces",
                Some(&json!({"name": "globex"})),
            )
            .await;
        assert_eq!(taken.status, 409, "{}", taken.text);
        assert!(taken.message().contains("globex"), "{}", taken.text);

        let account = admin
            .call(
                Method::POST,
                "/admin/v1/accounts",
                Some(&json!({
                    "workspace": "globex", "label": "main", "identifier": "id-globex",
                    "crisp_key": "crisp-secret-globex", "website_id": "web-globex", "default": true
                })),
            )
            .await;
        assert_eq!(account.status, 201, "{}", account.text);
        assert!(
            !account.text.contains("crisp-secret-globex"),
            "{}",
            account.text
        );
        let accounts = admin
            .call(Method::GET, "/admin/v1/accounts?workspace=globex", None)
            .await;
        assert_eq!(accounts.json()["accounts"][0]["label"], "main");
        assert!(!accounts.text.contains("crisp-secret-globex"));

        // A create with Idempotency-Key, and its replay: the same key id, never the secret again.
        let body = json!({"workspace": "globex", "name": "bot", "quota": "1000/day"});
        let idem = [
            ("authorization", format!("Bearer {}", admin.token)),
            ("idempotency-key", "create-bot-1".to_owned()),
        ];
        let idem: Vec<(&str, &str)> = idem.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let first = admin
            .send(Method::POST, "/admin/v1/keys", Some(&body), &idem)
            .await;
        assert_eq!(first.status, 201, "{}", first.text);
        let key = first.json()["key"].as_str().expect("the key").to_owned();
        let key_id = first.json()["id"].as_str().expect("id").to_owned();
        assert!(key.starts_with(&format!("sk_live_{key_id}_")));
        assert_eq!(first.json()["quota"], "1000/day");
        let replay = admin
            .send(Method::POST, "/admin/v1/keys", Some(&body), &idem)
            .await;
        assert_eq!(replay.status, 201, "{}", replay.text);
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(replay.json()["id"], key_id.as_str());
        assert_eq!(replay.json()["key"], Value::Null);
        assert!(!replay.text.contains(&key[20..]), "{}", replay.text);
        let keys = admin
            .call(Method::GET, "/admin/v1/keys?workspace=globex", None)
            .await;
        assert_eq!(
            keys.json()["keys"].as_array().map(Vec::len),
            Some(1),
            "a replay created no second key: {}",
            keys.text
        );
        assert!(!keys.text.contains(&key[20..]));
        let reused = admin
            .send(
                Method::POST,
                "/admin/v1/keys",
                Some(&json!({"workspace": "globex", "name": "other"})),
                &idem,
            )
            .await;
        assert_eq!(reused.status, 422, "{}", reused.text);
        assert_eq!(reused.reason(), "idempotency_key_reused");

        // Bad input is explained.
        let typo = admin
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(&json!({"workspace": "globex", "actions": ["lsit/*"]})),
            )
            .await;
        assert_eq!(typo.status, 400, "{}", typo.text);
        assert!(typo.message().contains("lsit/*"), "{}", typo.text);
        let unknown_field = admin
            .call(
                Method::POST,
                "/admin/v1/keys",
                Some(&json!({"workspace": "globex", "scopes": []})),
            )
            .await;
        assert_eq!(unknown_field.status, 400, "{}", unknown_field.text);
        assert!(unknown_field.message().contains("scopes"));

        // The new key works on the main listener of both replicas; revoked, on neither.
        for gateway in [&app, &replica] {
            let answer = gateway
                .call_with_key("count/visitors", "{}", Some(&key))
                .await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
        let revoked = admin
            .call(
                Method::POST,
                &format!("/admin/v1/keys/{key_id}/revoke"),
                None,
            )
            .await;
        assert_eq!(revoked.status, 200, "{}", revoked.text);
        assert_eq!(revoked.json()["status"], "revoked");
        for gateway in [&app, &replica] {
            let refused = eventually(Duration::from_secs(1), || async {
                gateway
                    .call_with_key("count/visitors", "{}", Some(&key))
                    .await
                    .status
                    == 401
            })
            .await;
            assert!(refused, "{engine:?}: a revoked key still works after 1 s");
        }

        // Every change is audited with the admin token's id, and no secret is.
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let audit = admin
            .call(Method::GET, "/admin/v1/audit?action=admin/*", None)
            .await;
        let events = audit.json()["events"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
        for change in [
            "admin/workspace/create",
            "admin/account/add",
            "admin/key/create",
            "admin/key/revoke",
        ] {
            assert!(actions.contains(&change), "{change} in {actions:?}");
        }
        assert!(
            events
                .iter()
                .all(|e| e["key_id"] == admin.token_id.as_str()),
            "{}",
            audit.text
        );
        assert_eq!(
            actions.iter().filter(|a| **a == "admin/key/create").count(),
            1,
            "a replay is not a second create"
        );
        assert!(!audit.text.contains(&key[20..]) && !audit.text.contains("crisp-secret"));

        // The admin document is served, and is the committed one.
        let doc = admin
            .send(Method::GET, "/admin/v1/openapi.json", None, &[])
            .await;
        assert_eq!(doc.status, 200);
        assert_eq!(doc.text, *crisp_gateway::console::api::openapi::JSON);
    }
}

#[tokio::test]
async fn a_revoked_admin_token_stops_working_within_a_second() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let admin = Admin::start(&app).await;
        let listed = admin
            .call(reqwest::Method::GET, "/admin/v1/workspaces", None)
            .await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        assert_eq!(listed.json()["workspaces"][0]["name"], "acme");
        let runs = app.app.admin_keyring.argon2_runs();
        for _ in 0..5 {
            admin
                .call(reqwest::Method::GET, "/admin/v1/workspaces", None)
                .await;
        }
        assert_eq!(
            app.app.admin_keyring.argon2_runs(),
            runs,
            "a verified admin token costs no argon2 run"
        );
        // Revoked by another process (the CLI), seen through the change log.
        let other = crisp_gateway::store::connect(&app._db.url)
            .await
            .expect("connect");
        revoke_admin_token(&other, &admin.token_id)
            .await
            .expect("revoke");
        let refused = eventually(Duration::from_secs(1), || async {
            admin
                .call(reqwest::Method::GET, "/admin/v1/workspaces", None)
                .await
                .status
                == 401
        })
        .await;
        assert!(
            refused,
            "{engine:?}: a revoked admin token still works after 1 s"
        );
    }
}

/// Signs in through the console; returns the session cookie (`name=value`) and CSRF token.
async fn sign_in(admin: &Admin) -> (String, String, Reply) {
    let origin = format!("http://{}", admin.addr);
    let reply = admin
        .send(
            reqwest::Method::POST,
            "/admin/sign-in",
            Some(&json!({"token": admin.token})),
            &[("origin", &origin)],
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let set_cookie = reply
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let csrf = reply.json()["csrf_token"]
        .as_str()
        .expect("csrf")
        .to_owned();
    (cookie, csrf, reply)
}

#[tokio::test]
async fn console_sessions_are_http_only_strict_cookies_and_changes_need_csrf_and_origin() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let admin = Admin::start(&app).await;
    let origin = format!("http://{}", admin.addr);
    use reqwest::Method;

    let page = admin.send(Method::GET, "/admin/", None, &[]).await;
    assert_eq!(page.status, 200);
    let csp = page.header("content-security-policy").expect("CSP");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    for asset in [
        "/admin/",
        "/admin/assets/console.js",
        "/admin/assets/console.css",
    ] {
        let reply = admin.send(Method::GET, asset, None, &[]).await;
        assert_eq!(reply.status, 200, "{asset}");
        assert!(
            !reply.text.contains("https://"),
            "{asset} loads nothing from elsewhere"
        );
    }

    let (cookie, csrf, reply) = sign_in(&admin).await;
    let set_cookie = reply.header("set-cookie").expect("cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    assert!(
        !set_cookie.contains(&admin.token),
        "the cookie is a session id, not the token"
    );
    assert!(!reply.text.contains(&admin.token));

    let session = admin
        .send(Method::GET, "/admin/session", None, &[("cookie", &cookie)])
        .await;
    assert_eq!(session.status, 200, "{}", session.text);
    assert_eq!(session.json()["csrf_token"], csrf.as_str());
    assert_eq!(session.json()["token_id"], admin.token_id.as_str());

    let body = json!({"name": "initech"});
    let no_csrf = admin
        .send(
            Method::POST,
            "/admin/v1/workspaces",
            Some(&body),
            &[("cookie", &cookie), ("origin", &origin)],
        )
        .await;
    assert_eq!(no_csrf.status, 403, "{}", no_csrf.text);
    assert_eq!(no_csrf.reason(), "csrf_refused");
    let wrong_csrf = admin
        .send(
            Method::POST,
            "/admin/v1/workspaces",
            Some(&body),
            &[
                ("cookie", &cookie),
                ("origin", &origin),
                ("x-csrf-token", "nope"),
            ],
        )
        .await;
    assert_eq!(wrong_csrf.status, 403, "{}", wrong_csrf.text);
    let other_origin = admin
        .send(
            Method::POST,
            "/admin/v1/workspaces",
            Some(&body),
            &[
                ("cookie", &cookie),
                ("origin", "http://evil.example"),
                ("x-csrf-token", &csrf),
            ],
        )
        .await;
    assert_eq!(other_origin.status, 403, "{}", other_origin.text);
    assert_eq!(other_origin.reason(), "csrf_refused");
    let made = admin
        .send(
            Method::POST,
            "/admin/v1/workspaces",
            Some(&body),
            &[
                ("cookie", &cookie),
                ("origin", &origin),
                ("x-csrf-token", &csrf),
            ],
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    // Reads need no CSRF token.
    let read = admin
        .send(
            Method::GET,
            "/admin/v1/workspaces",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(read.status, 200);

    // Signing out ends the session; a made-up session id is refused.
    let out = admin
        .send(
            Method::POST,
            "/admin/sign-out",
            None,
            &[
                ("cookie", &cookie),
                ("origin", &origin),
                ("x-csrf-token", &csrf),
            ],
        )
        .await;
    assert_eq!(out.status, 204, "{}", out.text);
    let after = admin
        .send(
            Method::GET,
            "/admin/v1/workspaces",
            None,
            &[("cookie", &cookie)],
        )
        .await;
    assert_eq!(after.status, 401);

    // A revoked token's sessions end too.
    let (cookie, _, _) = sign_in(&admin).await;
    revoke_admin_token(&app.store, &admin.token_id)
        .await
        .expect("revoke");
    let ended = eventually(Duration::from_secs(1), || async {
        admin
            .send(
                Method::GET,
                "/admin/v1/workspaces",
                None,
                &[("cookie", &cookie)],
            )
            .await
            .status
            == 401
    })
    .await;
    assert!(
        ended,
        "a revoked token's console session still works after 1 s"
    );
}

#[tokio::test]
async fn failed_sign_ins_are_slowed_per_client_and_never_echo_the_token() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| {
        c.auth_failure_burst = 3.0;
        c.auth_failure_rate = 0.01;
    })
    .await;
    let admin = Admin::start(&app).await;
    let origin = format!("http://{}", admin.addr);
    let wrong = crisp_gateway::auth::AdminToken::generate()
        .reveal()
        .to_owned();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = admin
            .send(
                reqwest::Method::POST,
                "/admin/sign-in",
                Some(&json!({"token": wrong})),
                &[("origin", &origin)],
            )
            .await;
        assert!(!reply.text.contains(&wrong[9..]), "{}", reply.text);
        statuses.push(reply.status);
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    // A sign-in from another site is refused before the token is looked at.
    let cross = admin
        .send(
            reqwest::Method::POST,
            "/admin/sign-in",
            Some(&json!({"token": admin.token})),
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403, "{}", cross.text);
}

#[tokio::test]
async fn the_usage_series_has_every_day_of_the_window_quiet_ones_included() {
    let engine = engines()[0];
    let app = TestApp::spawn(engine).await;
    let admin = Admin::start(&app).await;
    app.crisp.script(crate::helpers::Answer::ok("[]"));
    assert_eq!(app.call("list/conversations", "{}").await.status, 200);
    app.app.auditor.flush(Duration::from_secs(5)).await;

    let series = admin
        .call(
            reqwest::Method::GET,
            "/admin/v1/usage/series?since=7d&by=action",
            None,
        )
        .await;
    assert_eq!(series.status, 200, "{}", series.text);
    let json = series.json();
    let date = time::format_description::well_known::Iso8601::DATE;
    let days: Vec<time::Date> = json["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| time::Date::parse(d.as_str().expect("a day"), &date).expect("YYYY-MM-DD"))
        .collect();
    assert!(days.len() >= 7, "a week of days: {days:?}");
    assert!(
        days.windows(2).all(|w| (w[1] - w[0]).whole_days() == 1),
        "one entry per day, none skipped: {days:?}"
    );
    assert_eq!(
        *days.last().expect("today"),
        time::OffsetDateTime::now_utc().date()
    );
    let list = json["series"]
        .as_array()
        .expect("series")
        .iter()
        .find(|s| s["name"] == "list/conversations")
        .unwrap_or_else(|| panic!("the call is in the series: {json}"));
    let calls: Vec<i64> = list["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c.as_i64().expect("a count"))
        .collect();
    assert_eq!(calls.len(), days.len());
    assert_eq!(*calls.last().expect("today"), 1, "{json}");
    assert_eq!(calls.iter().sum::<i64>(), 1, "{json}");

    // Every day is an entry, so the window is bounded: no answer of a million days.
    let too_long = admin
        .call(
            reqwest::Method::GET,
            "/admin/v1/usage/series?since=99999999d",
            None,
        )
        .await;
    assert_eq!(too_long.status, 400, "{}", too_long.text);
    assert_eq!(too_long.reason(), "invalid_query");
    assert!(too_long.message().contains("366 days"), "{}", too_long.text);
}

#[tokio::test]
async fn an_accounts_budget_is_set_and_reset_through_the_admin_api() {
    let engine = engines()[0];
    let app = TestApp::spawn(engine).await;
    let admin = Admin::start(&app).await;
    use reqwest::Method;
    let path = "/admin/v1/accounts/main?workspace=acme";

    let set = admin
        .call(
            Method::PATCH,
            path,
            Some(&json!({"rate": "600/min", "concurrency": 8})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["rate_limit"], 10.0, "{}", set.text);
    assert_eq!(set.json()["max_concurrency"], 8, "{}", set.text);

    let bad = admin
        .call(Method::PATCH, path, Some(&json!({"rate": "fast"})))
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.message().starts_with("rate: "), "{}", bad.text);
    assert!(
        bad.message().contains("10/s"),
        "says how to write one: {}",
        bad.text
    );

    // Absent leaves a field alone; null returns it to the configured default.
    let reset = admin
        .call(Method::PATCH, path, Some(&json!({"rate": null})))
        .await;
    assert_eq!(reset.status, 200, "{}", reset.text);
    assert!(reset.json()["rate_limit"].is_null(), "{}", reset.text);
    assert_eq!(reset.json()["max_concurrency"], 8, "{}", reset.text);
}
