//! Token tiers: a call the account's tier cannot make is refused before Crisp where Crisp
//! documents the route's tiers, and Crisp's own refusal for the tier is the same
//! `tier_not_allowed`, never a credentials problem.

use crate::helpers::{Answer, Cli, Engine, FakeCrisp, TestApp, TestDb, engines};

#[tokio::test]
async fn a_documented_tier_is_enforced_before_crisp() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // `main` is a website-tier account; creating a website is user-tier only.
        let reply = app
            .call(
                "create/website",
                r#"{"body":{"name":"Shop","domain":"shop.example"}}"#,
            )
            .await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "tier_not_allowed");
        let message = reply.message();
        for needle in [
            "`main`",
            "`website`",
            "`user`",
            "account add",
            "--tier user",
        ] {
            assert!(message.contains(needle), "{needle} missing from: {message}");
        }
        assert!(
            app.crisp.received().is_empty(),
            "Crisp must not be asked: {:?}",
            app.crisp.received()
        );

        // A route Crisp documents for the website tier goes through.
        let reply = app.call("website/tier/get/connect/endpoints", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(app.crisp.take_received().len(), 1);
    }
}

#[tokio::test]
async fn crisps_refusal_for_the_tier_is_tier_not_allowed() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        for status in [403, 400] {
            app.crisp.script(Answer::json(
                status,
                r#"{"error":true,"reason":"restricted_route_tier","data":{}}"#,
            ));
            let reply = app.call("list/conversations", "{}").await;
            assert_eq!(reply.status, 403, "{}", reply.text);
            assert_eq!(reply.reason(), "tier_not_allowed");
            let message = reply.message();
            assert!(
                message.contains("restricted_route_tier") && message.contains("`website`"),
                "{message}"
            );
            assert!(
                message.contains("`user` or `plugin`"),
                "an undocumented route suggests the other tiers: {message}"
            );
        }
    }
}

#[tokio::test]
async fn a_401_is_a_tier_refusal_only_for_credentials_crisp_accepted() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let refused = || {
            Answer::json(
                401,
                r#"{"error":true,"reason":"invalid_session","data":{}}"#,
            )
        };

        // Never worked in this process: the key may be wrong.
        app.crisp.script(refused());
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_unauthorized");

        // Once Crisp has accepted the credentials, a 401 is the route refusing the tier.
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        app.crisp.script(refused());
        let reply = app.call("list/people/profiles", "{}").await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "tier_not_allowed");
        assert!(
            reply.message().contains("accepted earlier"),
            "{}",
            reply.message()
        );
    }
}

#[tokio::test]
async fn endpoints_show_tiers_origin_and_list_legacy_actions_last() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let reply = app.get("/api/crisp/_endpoints?view=full").await;
    assert_eq!(reply.status, 200);
    let json = reply.json();
    let actions = json["actions"].as_array().expect("actions");
    let find = |name: &str| {
        actions
            .iter()
            .find(|a| a["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"))
    };
    let create = find("create/website");
    assert_eq!(create["tiers"], serde_json::json!(["user"]));
    assert_eq!(create["origin"], "facade");
    assert_eq!(create["legacy"], false);
    assert_eq!(find("list/teams")["origin"], "crisp");
    assert_eq!(find("list/teams")["tiers"], serde_json::json!([]));
    let legacy: Vec<bool> = actions
        .iter()
        .map(|a| a["legacy"].as_bool().expect("legacy flag"))
        .collect();
    assert_eq!(legacy.iter().filter(|l| **l).count(), 35);
    assert!(
        legacy.windows(2).all(|w| w[0] <= w[1]),
        "legacy actions come after today's"
    );
    let old = actions
        .iter()
        .find(|a| a["legacy"] == true)
        .expect("legacy");
    assert!(
        old["description"]
            .as_str()
            .is_some_and(|d| d.contains("For websites not yet moved to Crisp's new Knowledge Base")),
        "{old}"
    );
}

#[tokio::test]
async fn the_cli_lists_the_tiers_and_says_what_an_accounts_tier_opens() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cli = Cli::for_db(&db, Engine::Sqlite).await;
    for command in ["add", "update"] {
        let help = cli.ok(&["account", command, "--help"]).await;
        for tier in ["- user:", "- website:", "- plugin:"] {
            assert!(help.stdout.contains(tier), "{tier}: {}", help.stdout);
        }
    }

    cli.ok(&["workspace", "create", "acme"]).await;
    cli.add_account(
        "acme",
        "main",
        ("ident-main", "web-main"),
        "crisp-key-t",
        &[],
    )
    .await;
    let crisp = FakeCrisp::start().await;
    let tested = cli
        .ok_with(
            &["account", "test", "main", "--workspace", "acme"],
            &[("CRISP_GATEWAY_UPSTREAM", crisp.base.as_str())],
            None,
        )
        .await;
    let out = tested.stdout;
    assert!(out.contains("tier `website` opens: "), "{out}");
    assert!(out.contains("conversations"), "{out}");
    assert!(
        out.contains("create/website") && out.contains("(tier user)"),
        "what the tier cannot call, and the tier that can: {out}"
    );
    assert!(out.contains("(tier plugin)"), "{out}");

    // Crisp refusing the probe's route to the tier still proves the credentials.
    crisp.script(Answer::json(
        403,
        r#"{"error":true,"reason":"restricted_route_tier","data":{}}"#,
    ));
    let tested = cli
        .ok_with(
            &["account", "test", "main", "--workspace", "acme"],
            &[("CRISP_GATEWAY_UPSTREAM", crisp.base.as_str())],
            None,
        )
        .await;
    assert!(
        tested.stdout.contains("restricted_route_tier") && tested.stdout.starts_with('✓'),
        "{}",
        tested.stdout
    );
}

#[tokio::test]
async fn an_idempotent_write_refused_for_the_tier_is_stored_as_tier_not_allowed() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    // Crisp accepts the credentials once, then refuses a write to the tier.
    let reply = app.call("list/conversations", "{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    app.crisp.script(Answer::json(
        401,
        r#"{"error":true,"reason":"invalid_session","data":{}}"#,
    ));
    let keyed = || async {
        let response = app
            .http
            .post(app.url("/api/crisp/create/new/conversation"))
            .header("authorization", format!("Bearer {}", app.key))
            .header("content-type", "application/json")
            .header("idempotency-key", "tier-1")
            .body("{}")
            .send()
            .await
            .expect("gateway answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, text)
    };
    let (status, text) = keyed().await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("tier_not_allowed"), "{text}");
    // The repeat is answered from the record, as the first answer was.
    let (status, repeat) = keyed().await;
    assert_eq!(status, 403, "{repeat}");
    assert!(repeat.contains("tier_not_allowed"), "{repeat}");
    assert_eq!(app.crisp.take_received().len(), 2, "one list, one write");
}

#[tokio::test]
async fn new_credentials_must_prove_themselves_again() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let reply = app.call("list/conversations", "{}").await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    // The operator links a new key to `main`: nothing says it works yet.
    let record = app
        .store
        .list_accounts(Some(&app.workspace_id))
        .await
        .expect("accounts")
        .into_iter()
        .find(|r| r.label == "main")
        .expect("main");
    let sealed = app.vault.seal(
        record.crisp_account_id.as_str(),
        &crisp_gateway::secret::CrispKey::new("crisp-key-rolled"),
    );
    app.store
        .update_account(
            &app.workspace_id,
            "main",
            &crisp_gateway::store::AccountUpdate {
                sealed_key: Some(sealed),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    app.app.accounts.invalidate(app.workspace_id.as_str());

    app.crisp.script(Answer::json(
        401,
        r#"{"error":true,"reason":"invalid_session","data":{}}"#,
    ));
    let reply = app.call("list/conversations", "{}").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.reason(), "crisp_unauthorized");
}
