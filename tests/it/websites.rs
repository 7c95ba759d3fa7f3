//! The websites an account, and a key, may act on: a `websiteID` outside them is refused with
//! 403 `website_not_allowed` before anything reaches Crisp.

use std::time::Duration;

use crisp_gateway::admin::{KeySpec, create_scoped_key, rotate_key};
use crisp_gateway::store::AuditFilter;
use serde_json::json;

use crate::helpers::{Cli, TestApp, TestDb, WEBSITE, engines, eventually};

/// An action whose Crisp path has no `{websiteID}`: the website lists do not concern it.
const NO_WEBSITE: &str = "website/tier/get/connect/endpoints";

#[tokio::test]
async fn a_website_outside_the_account_is_refused_before_crisp() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        assert!(
            crisp_gateway::catalog::CATALOG
                .get(NO_WEBSITE)
                .is_some_and(|a| a.param("websiteID").is_none())
        );

        let reply = app
            .call("count/visitors", r#"{"websiteID":"web-elsewhere"}"#)
            .await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "website_not_allowed");
        let message = reply.message();
        for named in [
            "`web-elsewhere`",
            "`main`",
            WEBSITE,
            "crisp-gateway account update main",
            "--websites web-main,web-elsewhere",
        ] {
            assert!(message.contains(named), "{named}: {message}");
        }
        assert!(app.crisp.received().is_empty(), "nothing reached Crisp");

        // Its own website, named or by default, and actions without a website still work.
        for body in ["{}", r#"{"websiteID":"web-main"}"#] {
            let reply = app.call("count/visitors", body).await;
            assert_eq!(reply.status, 200, "{body}: {}", reply.text);
        }
        let reply = app.call(NO_WEBSITE, "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let paths: Vec<String> = app
            .crisp
            .take_received()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            paths,
            [
                "/v1/website/web-main/visitors/count",
                "/v1/website/web-main/visitors/count",
                "/v1/website/connect/endpoints",
            ]
        );

        // Allowed by the operator, the other website is reached with the account's token.
        app.allow_websites("main", "web-elsewhere").await;
        let reply = app
            .call("count/visitors", r#"{"websiteID":"web-elsewhere"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let received = app.crisp.take_received();
        assert_eq!(received[0].path, "/v1/website/web-elsewhere/visitors/count");
        let listed = app.call("list/accounts", "{}").await.json();
        assert_eq!(
            listed["result"][0]["websites"],
            json!(["web-main", "web-elsewhere"])
        );

        // The refusals are audited with their reason and action (counted per minute, so
        // written when the auditor flushes).
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let audited = eventually(Duration::from_secs(5), || async {
            let rows = app
                .store
                .list_audit(&AuditFilter {
                    limit: 100,
                    ..AuditFilter::default()
                })
                .await
                .expect("audit");
            rows.iter().any(|r| {
                r.reason.as_deref() == Some("website_not_allowed")
                    && r.status == 403
                    && r.action == "count/visitors"
                    && r.count >= 1
            })
        })
        .await;
        assert!(audited, "the refusal is in the audit trail");
    }
}

#[tokio::test]
async fn a_key_narrowed_to_websites_is_refused_elsewhere_and_keeps_it_when_rotated() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.allow_websites("main", "web-b,web-c").await;
        let narrowed = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                websites: Some("web-b,web-z".into()),
                ..KeySpec::default()
            },
        )
        .await
        .expect("key");

        let call = |key: String, body: &'static str| {
            let app = &app;
            async move { app.call_with_key("count/visitors", body, Some(&key)).await }
        };
        let key = narrowed.reveal().to_owned();
        let reply = call(key.clone(), r#"{"websiteID":"web-b"}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        for (body, refused) in [
            (r#"{"websiteID":"web-c"}"#, "`web-c`"),
            // The account's own website, by default, is outside this key's websites too.
            ("{}", "`web-main`"),
        ] {
            let reply = call(key.clone(), body).await;
            assert_eq!(reply.status, 403, "{body}: {}", reply.text);
            assert_eq!(reply.reason(), "website_not_allowed");
            let message = reply.message();
            for named in [refused, "web-b, web-z", "--website"] {
                assert!(message.contains(named), "{named}: {message}");
            }
        }
        // The key lists web-z, but the account does not: the account's list still holds.
        let reply = call(key.clone(), r#"{"websiteID":"web-z"}"#).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert!(
            reply.message().contains("Account `main`"),
            "{}",
            reply.message()
        );
        let reply = app.call_with_key(NO_WEBSITE, "{}", Some(&key)).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let sent: Vec<String> = app
            .crisp
            .take_received()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(
            sent,
            [
                "/v1/website/web-b/visitors/count",
                "/v1/website/connect/endpoints"
            ]
        );

        let rotated = rotate_key(
            &app.store,
            &narrowed.id().into(),
            std::time::Duration::ZERO,
            None,
        )
        .await
        .expect("rotate");
        let key = rotated.reveal().to_owned();
        assert_eq!(
            call(key.clone(), r#"{"websiteID":"web-b"}"#).await.status,
            200
        );
        let reply = call(key, r#"{"websiteID":"web-c"}"#).await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "website_not_allowed");
    }
}

#[tokio::test]
async fn websites_are_set_checked_and_listed_from_the_command_line() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;
        cli.ok(&["migrate"]).await;
        cli.ok(&["workspace", "create", "acme"]).await;

        for (list, complaint) in [
            ("web-a,,web-b", "empty website id"),
            ("web a", "`web a` is not a Crisp website id"),
            ("web/a", "`web/a` is not a Crisp website id"),
            ("", "empty website id"),
        ] {
            let refused = cli
                .fails_with(
                    &[
                        "account",
                        "add",
                        "--workspace",
                        "acme",
                        "--label",
                        "main",
                        "--identifier",
                        "i",
                        "--website-id",
                        "web-main",
                        "--websites",
                        list,
                    ],
                    &[("CRISP_KEY", "k")],
                    None,
                )
                .await;
            assert!(refused.stderr.contains(complaint), "{list}: {refused:?}");
        }
        let added = cli
            .add_account(
                "acme",
                "main",
                ("i", "web-main"),
                "crisp-key-1",
                &["--websites", "web-b, web-c"],
            )
            .await;
        assert!(
            added.stderr.contains("websites web-main, web-b, web-c"),
            "its own website is always allowed: {added:?}"
        );
        let id = added.stdout.trim().to_owned();
        let columns = |listing: &str| -> Vec<String> {
            let row = listing
                .lines()
                .find(|l| l.starts_with(&id))
                .unwrap_or_else(|| panic!("no row for {id}: {listing}"));
            row.split_whitespace().map(str::to_owned).collect()
        };
        let listing = cli.ok(&["account", "list"]).await.stdout;
        assert!(listing.contains("WEBSITES"), "{listing}");
        assert_eq!(columns(&listing)[3], "web-main,web-b,web-c", "{listing}");

        let updated = cli
            .ok(&[
                "account",
                "update",
                "main",
                "--workspace",
                "acme",
                "--websites",
                "web-d",
            ])
            .await;
        assert!(
            updated.stderr.contains("websites web-main, web-d"),
            "{updated:?}"
        );
        let refused = cli
            .fails(&[
                "account",
                "update",
                "main",
                "--workspace",
                "acme",
                "--websites",
                "a;b",
            ])
            .await;
        assert!(refused.stderr.contains("`a;b`"), "{refused:?}");
        cli.ok(&[
            "account",
            "update",
            "main",
            "--workspace",
            "acme",
            "--websites",
            "web-main",
        ])
        .await;
        let listing = cli.ok(&["account", "list"]).await.stdout;
        assert_eq!(columns(&listing)[3], "web-main", "{listing}");

        // Keys: repeated or comma-separated, shown by `key list`, kept by `key rotate`.
        let created = cli
            .ok(&[
                "key",
                "create",
                "--workspace",
                "acme",
                "--website",
                "web-main",
                "--website",
                "web-x,web-main",
            ])
            .await;
        assert!(
            created
                .stderr
                .contains("all actions, websites web-main,web-x"),
            "{created:?}"
        );
        assert!(
            created
                .stderr
                .contains("no account of workspace `acme` may act on website web-x"),
            "a website no account allows is pointed out: {created:?}"
        );
        let refused = cli
            .fails(&["key", "create", "--workspace", "acme", "--website", ""])
            .await;
        assert!(refused.stderr.contains("empty website id"), "{refused:?}");

        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert!(
            listing.contains("all actions, websites web-main,web-x"),
            "{listing}"
        );
        let stored = crisp_gateway::store::connect(&db.url)
            .await
            .expect("connect")
            .list_keys(None)
            .await
            .expect("keys");
        assert_eq!(stored.len(), 1);
        let old_id = stored[0].api_key_id.clone();
        cli.ok(&["key", "rotate", old_id.as_str(), "--overlap", "0s"])
            .await;
        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert_eq!(
            listing
                .matches("all actions, websites web-main,web-x")
                .count(),
            2,
            "the new key keeps the websites: {listing}"
        );
    }
}
