//! What agents lean on: several pages in one call, only the fields they need, and a dry run
//! that shows a write before it is made.

use serde_json::json;

use crate::helpers::{Answer, TestApp, engines};

#[tokio::test]
async fn pages_are_fetched_merged_and_end_early_on_an_empty_page() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.crisp
            .script(Answer::ok(r#"[{"session_id":"a"},{"session_id":"b"}]"#));
        app.crisp.script(Answer::ok(r#"[{"session_id":"c"}]"#));
        app.crisp.script(Answer::ok("[]"));
        let reply = app
            .call(
                "list/conversations",
                r#"{"pages":5,"query":{"per_page":20}}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let json = reply.json();
        assert_eq!(
            json["result"],
            json!([{"session_id":"a"},{"session_id":"b"},{"session_id":"c"}])
        );
        assert!(json.get("next_page").is_none(), "the list ended: {json}");
        let paths: Vec<String> = app
            .crisp
            .take_received()
            .into_iter()
            .map(|r| r.path)
            .collect();
        assert_eq!(paths.len(), 3, "stopped at the empty page: {paths:?}");
        assert!(paths[0].ends_with("/conversations/1") && paths[2].ends_with("/conversations/3"));
        // A read of several pages is audited, one row counting its Crisp calls.
        let rows = app.audit().await;
        let paged = rows
            .iter()
            .find(|r| r.action == "list/conversations")
            .expect("the paged read is audited");
        assert_eq!(paged.count, 3);

        // Every page full: `next_page` says where to go on.
        app.crisp.script(Answer::ok(r#"[{"session_id":"d"}]"#));
        app.crisp.script(Answer::ok(r#"[{"session_id":"e"}]"#));
        let reply = app
            .call("list/conversations", r#"{"pageNumber":4,"pages":2}"#)
            .await;
        assert_eq!(reply.json()["next_page"], 6, "{}", reply.text);
        assert_eq!(app.crisp.take_received().len(), 2);

        let too_many = app.call("list/conversations", r#"{"pages":21}"#).await;
        assert_eq!(too_many.status, 400);
        assert!(
            too_many.message().contains("at most 20"),
            "{}",
            too_many.text
        );
        assert!(app.crisp.take_received().is_empty());
    }
}

#[tokio::test]
async fn fields_keep_only_the_paths_asked_for() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.crisp.script(Answer::ok(
            r#"[{"session_id":"a","state":"pending","meta":{"email":"a@x.io","nickname":"A"}}]"#,
        ));
        let reply = app
            .call(
                "list/conversations",
                r#"{"fields":["session_id","meta.email"]}"#,
            )
            .await;
        assert_eq!(
            reply.json()["result"],
            json!([{"session_id":"a","meta":{"email":"a@x.io"}}]),
            "{}",
            reply.text
        );
        let bad = app
            .call("get/conversation", r#"{"sessionID":"s","fields":"a..b"}"#)
            .await;
        assert_eq!(
            (bad.status, bad.reason().as_str()),
            (400, "invalid_field"),
            "{}",
            bad.text
        );
    }
}

#[tokio::test]
async fn a_dry_run_answers_the_request_it_would_send_and_sends_nothing() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let reply = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s1","dry_run":true,"body":{"type":"text","from":"operator","origin":"chat","content":"Hi"}}"#,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let result = &reply.json()["result"];
        assert_eq!(result["dry_run"], true);
        assert_eq!(result["sent"], false);
        assert_eq!(result["method"], "POST");
        assert!(
            result["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/conversation/s1/message")),
            "{result}"
        );
        assert_eq!(result["body"]["content"], "Hi");
        assert_eq!(result["account"]["label"], "main");
        assert!(
            !reply.text.contains("secret"),
            "no credentials: {}",
            reply.text
        );
        assert!(app.crisp.take_received().is_empty(), "nothing was sent");

        // A dry run checks the body like the real call.
        let bad = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s1","dry_run":true,"body":{"type":"text"}}"#,
            )
            .await;
        assert_eq!(bad.reason(), "invalid_body", "{}", bad.text);
        // Reads have no dry run.
        let read = app
            .call("get/conversation", r#"{"sessionID":"s1","dry_run":true}"#)
            .await;
        assert_eq!(read.reason(), "unknown_field", "{}", read.text);
    }
}

#[tokio::test]
async fn a_paged_reads_access_line_counts_its_crisp_calls() {
    // One engine is enough: the line is written by the edge, whatever the store.
    let engine = engines()[0];
    let db = crate::helpers::TestDb::new(engine).await;
    let cli = crate::helpers::Cli::for_db(&db, engine).await;
    cli.ok(&["workspace", "create", "acme"]).await;
    let key = cli
        .ok(&["key", "create", "--workspace", "acme"])
        .await
        .stdout
        .trim()
        .to_owned();
    cli.add_account(
        "acme",
        "main",
        ("ident", "web-1"),
        "crisp-key",
        &["--default"],
    )
    .await;
    let crisp = crate::helpers::FakeCrisp::start().await;
    crisp.script(Answer::ok(r#"[{"session_id":"a"}]"#));
    crisp.script(Answer::ok(r#"[{"session_id":"b"}]"#));
    crisp.script(Answer::ok("[]"));
    let dir = tempfile::tempdir().expect("tempdir");
    let server = cli
        .serve(
            &[("CRISP_GATEWAY_UPSTREAM", &crisp.base)],
            &dir.path().join("serve.log"),
        )
        .await;
    let reply = server
        .call(Some(&key), "list/conversations", r#"{"pages":5}"#)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let log = server.stop().await;
    let line: serde_json::Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| {
            l["fields"]["message"] == "request"
                && l["fields"]["path"] == "/api/crisp/list/conversations"
        })
        .unwrap_or_else(|| panic!("no access line for the paged read:\n{log}"));
    assert_eq!(line["fields"]["upstream_calls"], 3, "{line}");
    assert_eq!(line["fields"]["upstream_status"], 200, "{line}");
    assert_eq!(line["fields"]["action"], "list/conversations", "{line}");
}
