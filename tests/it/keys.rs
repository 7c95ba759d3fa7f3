//! Keys as a security team wants them: scopes, expiry, rotation, last use, revocation that
//! reaches every replica, the audit trail, and caller reports.

use std::time::Duration;

use crisp_gateway::admin::{KeySpec, create_scoped_key, rotate_key};
use crisp_gateway::store::AuditFilter;
use serde_json::json;

use crate::helpers::{TestApp, engines, eventually};

#[tokio::test]
async fn read_only_and_action_scoped_keys() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let read_only = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                read_only: true,
                ..KeySpec::default()
            },
        )
        .await
        .expect("key");
        let reply = app
            .call_with_key("list/conversations", "{}", Some(read_only.reveal()))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let reply = app
            .call_with_key(
                "send/message/in/conversation",
                r#"{"sessionID":"s","body":{}}"#,
                Some(read_only.reveal()),
            )
            .await;
        assert_eq!(reply.status, 403, "{}", reply.text);
        assert_eq!(reply.reason(), "write_not_allowed");
        assert!(
            reply.message().contains("send/message/in/conversation"),
            "{}",
            reply.message()
        );

        let limited = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                actions: Some("list/*,send/message/in/conversation".into()),
                ..KeySpec::default()
            },
        )
        .await
        .expect("key");
        for (action, body, status) in [
            ("list/conversations", "{}", 200),
            (
                "send/message/in/conversation",
                r#"{"sessionID":"s","body":{"type":"text","from":"operator","origin":"chat","content":"hi"}}"#,
                200,
            ),
            ("get/conversation", r#"{"sessionID":"s"}"#, 403),
        ] {
            let reply = app
                .call_with_key(action, body, Some(limited.reveal()))
                .await;
            assert_eq!(reply.status, status, "{action}: {}", reply.text);
            if status == 403 {
                assert_eq!(reply.reason(), "action_not_allowed");
            }
        }
        assert_eq!(
            app.crisp.take_received().len(),
            3,
            "refused calls never reach Crisp"
        );
    }
}

#[tokio::test]
async fn expired_keys_get_the_same_401() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let now = crisp_gateway::kernel::clock::now();
        let soon = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                expires_at: Some(now + 4),
                ..KeySpec::default()
            },
        )
        .await
        .expect("key");
        assert_eq!(
            app.call_with_key("list/conversations", "{}", Some(soon.reveal()))
                .await
                .status,
            200
        );
        let expired = eventually(Duration::from_secs(8), || async {
            app.call_with_key("list/conversations", "{}", Some(soon.reveal()))
                .await
                .status
                == 401
        })
        .await;
        assert!(expired, "a key past its expiry still works");
        let reply = app
            .call_with_key("list/conversations", "{}", Some(soon.reveal()))
            .await;
        assert_eq!(reply.reason(), "unauthorized");
    }
}

#[tokio::test]
async fn rotation_keeps_scopes_and_ends_the_old_key_after_the_overlap() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let old = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                read_only: true,
                ..KeySpec::default()
            },
        )
        .await
        .expect("key");
        assert_eq!(
            app.call_with_key("list/conversations", "{}", Some(old.reveal()))
                .await
                .status,
            200
        );
        // With an overlap both work.
        let new = rotate_key(
            &app.store,
            &old.id().into(),
            Duration::from_secs(3600),
            None,
        )
        .await
        .expect("rotate");
        assert_eq!(
            app.call_with_key("list/conversations", "{}", Some(new.reveal()))
                .await
                .status,
            200
        );
        assert_eq!(
            app.call_with_key("list/conversations", "{}", Some(old.reveal()))
                .await
                .status,
            200
        );
        let reply = app
            .call_with_key("create/new/conversation", "{}", Some(new.reveal()))
            .await;
        assert_eq!(
            reply.status, 403,
            "the new key inherits read-only: {}",
            reply.text
        );
        // Rotating with no overlap ends the previous key at once, in every process.
        let newer = rotate_key(&app.store, &new.id().into(), Duration::ZERO, None)
            .await
            .expect("rotate");
        let ended = eventually(Duration::from_secs(2), || async {
            app.call_with_key("list/conversations", "{}", Some(new.reveal()))
                .await
                .status
                == 401
        })
        .await;
        assert!(ended, "the rotated-out key still works");
        assert_eq!(
            app.call_with_key("list/conversations", "{}", Some(newer.reveal()))
                .await
                .status,
            200
        );
        let record = app
            .store
            .find_key(&newer.id().into())
            .await
            .expect("stored");
        assert!(record.read_only);
        assert_eq!(record.workspace_id, app.workspace_id);
    }
}

#[tokio::test]
async fn last_use_is_recorded() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        assert_eq!(
            app.store
                .find_key(&app.key_id)
                .await
                .expect("key")
                .last_used_at,
            None
        );
        let before = crisp_gateway::kernel::clock::now();
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let used = app
            .store
            .find_key(&app.key_id)
            .await
            .expect("key")
            .last_used_at;
        assert!(used.is_some_and(|t| t >= before), "{used:?}");
    }
}

#[tokio::test]
async fn revocation_and_account_changes_reach_every_replica_within_a_second() {
    for engine in engines() {
        let first = TestApp::spawn(engine).await;
        // A second server process-alike on the same database, with its own caches.
        let second = first.replica().await;
        for app in [&first, &second] {
            assert_eq!(app.call("count/visitors", "{}").await.status, 200);
        }
        // An account change made through the store (as the CLI would) is seen by both.
        first
            .store
            .update_account(
                &first.workspace_id,
                "main",
                &crisp_gateway::store::AccountUpdate {
                    website_id: Some("web-moved".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("update");
        for app in [&first, &second] {
            let moved = eventually(Duration::from_secs(1), || async {
                app.call("count/visitors", "{}").await;
                app.crisp
                    .take_received()
                    .last()
                    .is_some_and(|r| r.path == "/v1/website/web-moved/visitors/count")
            })
            .await;
            assert!(
                moved,
                "an account change did not reach a replica within 1 s"
            );
        }
        first
            .store
            .revoke_key(&first.key_id, crisp_gateway::kernel::clock::now())
            .await
            .expect("revoke");
        for app in [&first, &second] {
            let refused = eventually(Duration::from_secs(1), || async {
                app.call("count/visitors", "{}").await.status == 401
            })
            .await;
            assert!(refused, "a revoked key still works on a replica after 1 s");
        }
    }
}

#[tokio::test]
async fn writes_and_refusals_are_audited_without_bodies() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.call(
            "send/message/in/conversation",
            r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"top secret text"}}"#,
        )
        .await;
        app.call("list/conversations", "{}").await; // a successful read: not audited
        app.call_with_key("list/conversations", "{}", Some("sk_live_nope"))
            .await;
        app.crisp.script(crate::helpers::Answer::json(
            404,
            r#"{"error":true,"reason":"not_found","data":{}}"#,
        ));
        app.call("get/conversation", r#"{"sessionID":"gone"}"#)
            .await;
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let rows = app
            .store
            .list_audit(&AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            })
            .await
            .expect("audit");
        let seen: Vec<_> = rows
            .iter()
            .rev()
            .map(|r| (r.action.as_str(), r.status, r.upstream_status))
            .collect();
        assert_eq!(
            seen,
            [
                ("send/message/in/conversation", 200, Some(200)),
                ("get/conversation", 404, Some(404)),
                // Refusals are counted per minute and written when the minute (or a flush) ends.
                ("list/conversations", 401, None),
            ]
        );
        assert!(rows.iter().all(|r| r.count == 1), "{rows:?}");
        let write = rows
            .iter()
            .find(|r| r.action == "send/message/in/conversation")
            .expect("write row");
        assert_eq!(
            write.workspace_id.as_ref().map(|id| id.as_str()),
            Some(app.workspace_id.as_str())
        );
        assert_eq!(
            write.api_key_id.as_ref().map(|id| id.as_str()),
            Some(app.key_id.as_str())
        );
        assert!(
            write
                .crisp_account_id
                .as_ref()
                .map(|id| id.as_str())
                .is_some_and(|a| a.starts_with("acc_"))
        );
        assert!(!write.request_id.is_empty());
        assert!(
            !format!("{rows:?}").contains("top secret"),
            "no bodies in the audit trail"
        );
    }
}

#[tokio::test]
async fn reports_are_stored_and_bad_ones_explained() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app
            .call("report", r#"{"message":"list/conversations returned nothing","context":"after a send","conversation":[{"role":"user","text":"hi"}]}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let json = reply.json();
        assert_eq!(json["ok"], true);
        assert_eq!(json["tool"], "crisp_report");
        let reports = app
            .store
            .list_reports(Some(&app.workspace_id))
            .await
            .expect("reports");
        assert_eq!(reports.len(), 1);
        assert_eq!(json["result"]["report_id"], json!(reports[0].report_id));
        assert_eq!(reports[0].api_key_id, app.key_id);
        assert_eq!(
            reports[0].conversation.as_deref(),
            Some(r#"[{"role":"user","text":"hi"}]"#)
        );
        for bad in [
            "{}",
            r#"{"message":""}"#,
            r#"{"message":1}"#,
            r#"{"message":"m","extra":1}"#,
            r#"{"message":"m","conversation":"x"}"#,
            "nope",
        ] {
            let reply = app.call("report", bad).await;
            assert_eq!(reply.status, 400, "{bad}: {}", reply.text);
            assert_eq!(reply.reason(), "invalid_report", "{bad}");
            assert_eq!(reply.json()["tool"], "crisp_report");
        }
        assert_eq!(
            app.call_with_key("report", r#"{"message":"m"}"#, None)
                .await
                .status,
            401
        );
    }
}

#[tokio::test]
async fn reports_are_rate_limited_size_bounded_and_pruned() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |config| {
            config.report_rate_limit = 1.0;
            config.report_burst = 4.0;
            config.report_retention = 3;
        })
        .await;
        for (body, field, limit) in [
            (json!({ "message": "m".repeat(10_001) }), "message", "10000"),
            (
                json!({ "message": "m", "context": "c".repeat(10_001) }),
                "context",
                "10000",
            ),
            (
                json!({ "message": "m", "conversation": [ "t".repeat(70_000) ] }),
                "conversation",
                "65536",
            ),
        ] {
            let reply = app.call("report", &body.to_string()).await;
            assert_eq!(reply.status, 400, "{field}: {}", reply.text);
            assert_eq!(reply.reason(), "report_too_large", "{field}");
            let message = reply.message();
            assert!(
                message.contains(&format!("`{field}`")) && message.contains(limit),
                "{message}"
            );
        }
        // The refused ones took a token each: one left of the burst of four.
        let reply = app.call("report", r#"{"message":"first"}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let reply = app.call("report", r#"{"message":"over"}"#).await;
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.reason(), "rate_limited");
        assert!(reply.header("retry-after").is_some());

        // Retention: five older reports, then one more through the API keeps the newest three.
        let many = TestApp::spawn_with(engine, |config| config.report_retention = 3).await;
        for at in 100..105 {
            many.store
                .insert_report(&crisp_gateway::store::ReportRecord {
                    report_id: format!("rep_old{at}"),
                    workspace_id: many.workspace_id.clone(),
                    api_key_id: many.key_id.clone(),
                    at,
                    message: format!("report {at}"),
                    context: None,
                    conversation: None,
                })
                .await
                .expect("report");
        }
        let reply = many.call("report", r#"{"message":"newest"}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let kept: Vec<String> = many
            .store
            .list_reports(Some(&many.workspace_id))
            .await
            .expect("reports")
            .into_iter()
            .map(|r| r.message)
            .collect();
        assert_eq!(kept, ["newest", "report 104", "report 103"]);
    }
}
