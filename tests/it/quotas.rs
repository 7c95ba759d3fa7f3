//! Key quotas held across replicas, the rate-limit fields on every answer, and usage counts:
//! through HTTP, on every engine.

use std::time::Duration;

use crisp_gateway::admin::usage::{UsageBy, UsageQuery, report};
use crisp_gateway::admin::{KeySpec, create_scoped_key};
use crisp_gateway::store::{KeyId, Quota, QuotaPeriod};

use crate::helpers::{Cli, TestApp, TestDb, engines};

async fn quota_key(app: &TestApp, limit: i64) -> (String, KeyId) {
    let key = create_scoped_key(
        &app.store,
        &app.workspace_id,
        &KeySpec {
            name: Some("quota".into()),
            quota: Some(Quota {
                limit,
                period: QuotaPeriod::Day,
            }),
            ..KeySpec::default()
        },
    )
    .await
    .expect("key");
    (key.reveal().to_owned(), KeyId::from(key.id()))
}

#[tokio::test]
async fn a_spent_quota_is_refused_with_its_reset_time_and_every_answer_says_what_is_left() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let (key, key_id) = quota_key(&app, 3).await;
        // Refused before Crisp: counts nowhere against the quota.
        let refused = app
            .call_with_key("list/conversations", r#"{"nope":1}"#, Some(&key))
            .await;
        assert_eq!(refused.status, 400, "{}", refused.text);
        assert_eq!(
            refused.header("ratelimit-policy"),
            Some("\"quota\";q=3;w=86400"),
            "the policy is known before any call spends the quota"
        );
        let unparsed = app
            .call_with_key("list/conversations", "{not json", Some(&key))
            .await;
        assert_eq!(unparsed.reason(), "invalid_json");
        for left in [2, 1, 0] {
            let reply = app
                .call_with_key("list/conversations", "{}", Some(&key))
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_eq!(
                reply.header("ratelimit-policy"),
                Some("\"quota\";q=3;w=86400")
            );
            let state = reply.header("ratelimit").expect("RateLimit");
            assert!(
                state.starts_with(&format!("\"quota\";r={left};t=")),
                "{state}"
            );
        }
        let now = crisp_gateway::kernel::clock::now();
        let midnight = QuotaPeriod::Day.end(now);
        let spent = app
            .call_with_key("list/conversations", "{}", Some(&key))
            .await;
        assert_eq!(spent.status, 429, "{}", spent.text);
        assert_eq!(spent.reason(), "quota_exceeded");
        let error = &spent.json()["error"];
        assert_eq!(
            error["resets_at"],
            crisp_gateway::kernel::clock::format(midnight)
        );
        let retry_after: i64 = spent
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .expect("seconds");
        assert!((midnight - now - retry_after).abs() <= 2, "{retry_after}");
        assert_eq!(error["retry_after_seconds"], retry_after);
        assert!(
            spent.message().contains("3 calls per day"),
            "{}",
            spent.message()
        );
        assert!(
            spent
                .header("ratelimit")
                .is_some_and(|s| s.starts_with("\"quota\";r=0;t=")),
            "{:?}",
            spent.header("ratelimit")
        );
        assert_eq!(
            app.crisp.received().len(),
            3,
            "only admitted calls reach Crisp"
        );

        // A key without a quota describes its per-key rate instead.
        let plain = app.call("list/conversations", "{}").await;
        assert!(
            plain
                .header("ratelimit-policy")
                .is_some_and(|p| p.starts_with("\"rate\";q=")),
            "{:?}",
            plain.header("ratelimit-policy")
        );
        assert!(plain.header("ratelimit").is_some());
        // The same fields on the other authenticated paths: MCP and reports.
        for (path, body) in [
            (
                "/mcp",
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crisp_list_conversations","arguments":{}}}"#,
            ),
            ("/api/crisp/report", r#"{"message":"hello"}"#),
        ] {
            let reply = app
                .http
                .post(app.url(path))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body)
                .send()
                .await
                .expect("answer");
            assert_eq!(
                reply
                    .headers()
                    .get("ratelimit-policy")
                    .and_then(|v| v.to_str().ok()),
                Some("\"quota\";q=3;w=86400"),
                "{path}"
            );
        }

        // Usage: every call counted once, in its class.
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let lines = report(
            &app.store,
            &UsageQuery {
                workspace: Some("acme".into()),
                by: UsageBy::Key,
                ..UsageQuery::default()
            },
        )
        .await
        .expect("report");
        let line = lines
            .iter()
            .find(|l| l.key_id.as_ref() == Some(&key_id))
            .expect("the quota key's line");
        assert_eq!(line.key_name.as_deref(), Some("quota"));
        let c = line.counts;
        assert_eq!(
            (c.calls, c.refused, c.crisp_2xx, c.crisp_none, c.failed),
            (6, 3, 3, 3, 0),
            "two bad bodies, three calls, one refused for the quota: {c:?}"
        );
        let by_action = report(
            &app.store,
            &UsageQuery {
                by: UsageBy::Action,
                ..UsageQuery::default()
            },
        )
        .await
        .expect("report");
        assert_eq!(by_action.len(), 1, "{by_action:?}");
        assert_eq!(by_action[0].action.as_deref(), Some("list/conversations"));
        assert_eq!(
            by_action[0].counts.calls,
            c.calls + 1,
            "and the plain key's call"
        );
        // Raised by an operator: the running gateway applies it (through the change log).
        crisp_gateway::admin::quota::set_quota(
            &app.store,
            &key_id,
            Some(Quota {
                limit: 4,
                period: QuotaPeriod::Day,
            }),
        )
        .await
        .expect("raise");
        let raised = crate::helpers::eventually(Duration::from_secs(5), || async {
            app.call_with_key("list/conversations", "{}", Some(&key))
                .await
                .status
                == 200
        })
        .await;
        assert!(raised, "the raised quota admits one more call");
        let spent = app
            .call_with_key("list/conversations", "{}", Some(&key))
            .await;
        assert_eq!(spent.reason(), "quota_exceeded");
    }
}

#[tokio::test]
async fn replicas_on_one_database_admit_exactly_the_quota_between_them() {
    for engine in engines() {
        let first = TestApp::spawn(engine).await;
        let second = first.replica().await;
        let (key, _) = quota_key(&first, 60).await;
        let mut calls = Vec::new();
        for n in 0..100 {
            let (http, url, key) = (
                first.http.clone(),
                if n % 2 == 0 { &first } else { &second }.url("/api/crisp/list/conversations"),
                key.clone(),
            );
            calls.push(tokio::spawn(async move {
                crate::helpers::post_json(&http, &url, Some(&key), "{}")
                    .await
                    .status
            }));
        }
        let mut admitted = 0;
        let mut refused = 0;
        for call in calls {
            match call.await.expect("call") {
                200 => admitted += 1,
                429 => refused += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        // A replica may still hold a claimed call or two while the other refuses: they are
        // spent by the next calls there, or given back when idle.
        let mut left = 0;
        for app in [&first, &second] {
            for _ in 0..10 {
                if app
                    .call_with_key("list/conversations", "{}", Some(&key))
                    .await
                    .status
                    == 200
                {
                    left += 1;
                }
            }
        }
        assert_eq!(
            admitted + left,
            60,
            "{engine:?}: {admitted} + {left}, {refused} refused"
        );
        assert_eq!(first.crisp.received().len(), 60);
    }
}

#[tokio::test]
async fn quotas_and_usage_from_the_command_line() {
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;
        cli.ok(&["workspace", "create", "acme"]).await;
        let bad = cli
            .run(&["key", "create", "--workspace", "acme", "--quota", "10/week"])
            .await;
        assert!(!bad.success);
        assert!(bad.stderr.contains("10000/day"), "{}", bad.stderr);
        let created = cli
            .ok(&["key", "create", "--workspace", "acme", "--quota", "10/day"])
            .await;
        assert!(
            created.stderr.contains("quota 10/day"),
            "{}",
            created.stderr
        );
        let key_id = crisp_gateway::auth::GatewayKey::parse(created.stdout.trim())
            .expect("key")
            .id()
            .to_owned();
        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert!(
            listing.contains("QUOTA") && listing.contains("REMAINING"),
            "{listing}"
        );
        let row = listing.lines().find(|l| l.contains("10/day")).expect("row");
        assert!(row.contains(" 0 ") && row.contains(" 10 "), "{row}");

        cli.ok(&["key", "update", &key_id, "--quota", "20/month"])
            .await;
        let listing = cli.ok(&["key", "list"]).await.stdout;
        assert!(listing.contains("20/month"), "{listing}");
        cli.ok(&["key", "update", &key_id, "--no-quota"]).await;
        assert!(!cli.ok(&["key", "list"]).await.stdout.contains("20/month"));
        let unknown = cli.run(&["key", "update", "nope", "--no-quota"]).await;
        assert!(
            unknown.stderr.contains("no key with id `nope`"),
            "{}",
            unknown.stderr
        );

        let usage = cli.ok(&["usage", "--format", "json"]).await.stdout;
        assert_eq!(usage.trim(), "[]");
        let csv = cli
            .ok(&["usage", "--by", "day", "--format", "csv"])
            .await
            .stdout;
        assert!(
            csv.starts_with("workspace,day,calls,refused,failed,"),
            "{csv}"
        );
        let bad = cli.run(&["usage", "--workspace", "nope"]).await;
        assert!(
            bad.stderr.contains("no workspace named `nope`"),
            "{}",
            bad.stderr
        );
    }
}

#[tokio::test]
async fn a_call_refused_after_spending_the_quota_but_before_crisp_gives_it_back() {
    const WRITE: &str = "send/message/in/conversation";
    let body = |content: &str| {
        format!(
            r#"{{"sessionID":"s1","body":{{"type":"text","from":"operator","origin":"chat","content":"{content}"}}}}"#
        )
    };
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let (key, _) = quota_key(&app, 2).await;
        let keyed = |content: String| {
            app.http
                .post(app.url(&format!("/api/crisp/{WRITE}")))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "same")
                .body(content)
                .send()
        };
        let first = keyed(body("hello")).await.expect("first");
        assert_eq!(first.status(), 200);
        // The same Idempotency-Key with another body: refused before Crisp, so not counted.
        let reused = keyed(body("other")).await.expect("reused");
        assert_eq!(reused.status(), 422);
        let second = app.call_with_key(WRITE, &body("second"), Some(&key)).await;
        assert_eq!(
            second.status, 200,
            "the refused call gave its quota back: {}",
            second.text
        );
        let third = app.call_with_key(WRITE, &body("third"), Some(&key)).await;
        assert_eq!(third.reason(), "quota_exceeded");
        assert_eq!(app.crisp.received().len(), 2);
    }
}
