//! Hostile traffic that needs no key: floods of refusals must not grow the database or the
//! log without bound, and wrong secrets must not cost argon2 runs or delay the real holder.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crisp_gateway::admin::{KeySpec, create_key, create_scoped_key};
use crisp_gateway::auth::GatewayKey;
use crisp_gateway::store::{AuditFilter, AuditRecord, Store};
use tokio::task::JoinSet;

use crate::helpers::{Answer, Cli, FakeCrisp, Reply, TestApp, TestDb, engines, post_json};

/// A client whose requests come from `ip` (any 127.x address is the loopback).
fn client_from(ip: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(ip))
        .build()
        .expect("client")
}

/// A key that looks right but that the gateway never made.
fn bogus_key() -> String {
    GatewayKey::generate().reveal().to_owned()
}

/// Sends `total` requests, `parallel` at a time, each made by `make`; returns their statuses.
async fn flood(
    parallel: usize,
    total: usize,
    make: impl Fn(usize) -> (reqwest::Client, String, Option<String>) + Send + Sync + 'static,
) -> Vec<Reply> {
    let make = Arc::new(make);
    let mut tasks = JoinSet::new();
    for lane in 0..parallel {
        let make = make.clone();
        tasks.spawn(async move {
            let mut replies = Vec::new();
            for n in (lane..total).step_by(parallel) {
                let (http, url, key) = make(n);
                replies.push(post_json(&http, &url, key.as_deref(), "{}").await);
            }
            replies
        });
    }
    let mut replies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        replies.extend(done.expect("flood task"));
    }
    replies
}

async fn audit_rows(store: &Arc<dyn Store>) -> Vec<AuditRecord> {
    store
        .list_audit(&AuditFilter {
            limit: 100_000,
            ..AuditFilter::default()
        })
        .await
        .expect("audit")
}

#[tokio::test]
async fn refusals_are_counted_per_minute_under_a_known_action_name() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // A read-only key calling a write, many times (before its address runs out of failures): one row, under the action's name.
        let read_only = create_scoped_key(
            &app.store,
            &app.workspace_id,
            &KeySpec {
                name: None,
                read_only: true,
                actions: None,
                expires_at: None,
                websites: None,
                quota: None,
            },
        )
        .await
        .expect("key");
        for _ in 0..20 {
            let reply = app
                .call_with_key(
                    "send/message/in/conversation",
                    r#"{"sessionID":"s1","body":{}}"#,
                    Some(read_only.reveal()),
                )
                .await;
            assert_eq!(reply.status, 403, "{}", reply.text);
        }
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        let long_path = app.url(&format!("/api/crisp/{}", "a".repeat(60_000)));
        let http = app.http.clone();
        let url = long_path.clone();
        let replies = flood(8, 300, move |_| {
            (http.clone(), url.clone(), Some(bogus_key()))
        })
        .await;
        assert!(
            replies.iter().all(|r| matches!(r.status, 401 | 429)),
            "{:?}",
            replies.iter().map(|r| r.status).collect::<Vec<_>>()
        );
        // A valid key on a path no action has: 404, the slug echoed only in part.
        let reply = post_json(&app.http, &long_path, Some(&app.key), "{}").await;
        assert_eq!(reply.status, 404, "{}", reply.text);
        assert_eq!(reply.reason(), "unknown_action");
        assert!(reply.text.len() < 1_000, "{}", reply.text.len());
        assert!(
            reply.message().contains("60000 bytes"),
            "{}",
            reply.message()
        );
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let rows = audit_rows(&app.store).await;
        let refused: Vec<_> = rows.iter().filter(|r| r.status >= 400).collect();
        let total: i64 = refused.iter().map(|r| r.count).sum();
        assert_eq!(total, 300 + 20, "every refusal is counted: {refused:#?}");
        let scope = refused
            .iter()
            .find(|r| r.status == 403)
            .expect("the scope refusals");
        assert_eq!(
            (
                scope.action.as_str(),
                scope.count,
                scope.api_key_id.as_ref().map(|id| id.as_str())
            ),
            ("send/message/in/conversation", 20, Some(read_only.id()))
        );
        assert!(
            refused.len() <= 2 * 12,
            "refusals are aggregated, not a row each: {} rows: {refused:#?}",
            refused.len()
        );
        for row in &refused {
            assert!(
                ["unknown", "send/message/in/conversation"].contains(&row.action.as_str()),
                "a bounded action name, never the path: {}",
                &row.action[..row.action.len().min(80)]
            );
        }
        // Without a key id to tell them apart, the client is its address.
        let folded = refused
            .iter()
            .find(|r| r.api_key_id.is_none() && r.count > 100)
            .expect("a folded row");
        assert_eq!(folded.client.as_deref(), Some("127.0.0.1"));
        assert!(
            refused
                .iter()
                .any(|r| r.reason.as_deref() == Some("too_many_failed_attempts")),
            "{refused:#?}"
        );
    }
}

#[tokio::test]
async fn a_flood_of_bogus_keys_on_long_paths_grows_neither_database_nor_log() {
    const REQUESTS: usize = 2_000;
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("serve.log");
        let server = cli.serve(&[], &log).await;
        let sqlite_bytes = || {
            let file = db
                .url
                .strip_prefix("sqlite://")
                .map(std::path::PathBuf::from);
            file.map_or(0, |file| {
                ["", "-wal", "-shm"]
                    .iter()
                    .map(|suffix| {
                        let mut name = file.clone().into_os_string();
                        name.push(suffix);
                        std::fs::metadata(name).map_or(0, |m| m.len())
                    })
                    .sum::<u64>()
            })
        };
        let db_before = sqlite_bytes();
        let log_before = std::fs::metadata(&log).expect("log").len();
        let url = server.url(&format!("/api/crisp/{}", "a".repeat(60_000)));
        let http = server.http.clone();
        let replies = flood(16, REQUESTS, move |_| {
            (http.clone(), url.clone(), Some(bogus_key()))
        })
        .await;
        assert!(replies.iter().all(|r| matches!(r.status, 401 | 429)));
        let text = server.stop().await;
        let log_growth = u64::try_from(text.len()).expect("size") - log_before;
        assert!(
            log_growth < 1 << 20,
            "the log grew by {log_growth} bytes for {REQUESTS} refusals"
        );
        assert!(
            text.contains("suppressed") && text.contains("refused-request lines"),
            "the dropped lines are counted"
        );
        let db_growth = sqlite_bytes().saturating_sub(db_before);
        assert!(
            db_growth < 1 << 20,
            "the database grew by {db_growth} bytes for {REQUESTS} refusals"
        );
        let store = db.store().await;
        let rows = audit_rows(&store).await;
        // A handful of rows per minute (the flood may straddle two).
        assert!(rows.len() <= 2 * 12, "{} audit rows", rows.len());
        assert_eq!(
            rows.iter().map(|r| r.count).sum::<i64>(),
            i64::try_from(REQUESTS).expect("count")
        );
        let audit = cli.ok(&["audit"]).await.stdout;
        assert!(audit.contains("COUNT"), "{audit}");
        let biggest = rows.iter().map(|r| r.count).max().expect("rows");
        assert!(audit.contains(&biggest.to_string()), "{audit}");
    }
}

// Several threads, as a served gateway has: the flood and the holder's call run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_cost_little_and_never_hold_up_the_holder() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |config| {
            config.auth_failure_rate = 0.01;
            config.auth_failure_burst = 5.0;
        })
        .await;
        let wrong = |key: &str| format!("{}{}", &key[..key.len() - 6], "AAAAAA");
        // The test key, verified (and cached) before anything else.
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);

        // The same wrong key again and again: argon2 once, then answered from memory.
        let victim = create_key(&app.store, &app.workspace_id, None)
            .await
            .expect("key");
        let repeated = wrong(victim.reveal());
        let again = client_from([127, 0, 0, 3]);
        for _ in 0..10 {
            let reply = post_json(
                &again,
                &app.url("/api/crisp/list/conversations"),
                Some(&repeated),
                "{}",
            )
            .await;
            assert_eq!(reply.status, 401, "{}", reply.text);
            assert_eq!(reply.reason(), "unauthorized");
        }
        assert_eq!(app.app.keyring.argon2_runs(), 2);

        // How long a first call with a new key takes here, with nothing else running.
        let baseline_key = create_key(&app.store, &app.workspace_id, None)
            .await
            .expect("key");
        let started = Instant::now();
        let reply = app
            .call_with_key("list/conversations", "{}", Some(baseline_key.reveal()))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let baseline = started.elapsed();

        // A flood of random wrong secrets for a known, uncached key id, from one address.
        let holder = create_key(&app.store, &app.workspace_id, Some("holder".into()))
            .await
            .expect("key");
        let runs_before = app.app.keyring.argon2_runs();
        let stop = Arc::new(AtomicBool::new(false));
        let attacker = client_from([127, 0, 0, 2]);
        let url = app.url("/api/crisp/list/conversations");
        let prefix = holder.reveal()[..holder.reveal().len() - 6].to_owned();
        let mut lanes = JoinSet::new();
        for _ in 0..16 {
            let (attacker, url, prefix, stop) =
                (attacker.clone(), url.clone(), prefix.clone(), stop.clone());
            lanes.spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}{}", crisp_gateway::secret::random_base62(6));
                    let reply = post_json(&attacker, &url, Some(&key), "{}").await;
                    seen.push((
                        reply.status,
                        reply.reason(),
                        reply.header("retry-after").map(str::to_owned),
                    ));
                }
                seen
            });
        }
        // Once the address is out of failures, the holder calls from another address.
        let attacker_locked_out = crate::helpers::eventually(Duration::from_secs(60), || {
            let (attacker, url, prefix) = (attacker.clone(), url.clone(), prefix.clone());
            async move {
                let key = format!("{prefix}{}", crisp_gateway::secret::random_base62(6));
                post_json(&attacker, &url, Some(&key), "{}").await.reason()
                    == "too_many_failed_attempts"
            }
        })
        .await;
        assert!(attacker_locked_out, "the flooding address is refused");
        let started = Instant::now();
        let reply = app
            .call_with_key("list/conversations", "{}", Some(holder.reveal()))
            .await;
        let holder_took = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut seen = Vec::new();
        while let Some(lane) = lanes.join_next().await {
            seen.extend(lane.expect("lane"));
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        // Its own argon2 run, slowed by the flood's load on the same cores, plus at most a
        // second: never a queue of the flood's verifications (before, it waited behind every
        // one of them — tens of runs).
        eprintln!("the holder's first call: {holder_took:?} during the flood, {baseline:?} alone");
        assert!(
            holder_took < baseline * 3 + Duration::from_secs(1),
            "the holder's first call took {holder_took:?} during the flood ({baseline:?} alone)"
        );
        // The flood ran argon2 for its burst and the verifications already running, the
        // holder once: nothing like once per request.
        let runs = app.app.keyring.argon2_runs() - runs_before;
        assert!(
            runs <= 5 + 1 + 1,
            "{runs} argon2 runs for {} flood requests",
            seen.len()
        );
        assert!(seen.len() > 16, "the flood ran: {}", seen.len());
        for (status, reason, retry_after) in &seen {
            match status {
                401 => assert_eq!(reason, "unauthorized"),
                429 => {
                    assert!(
                        ["too_many_failed_attempts", "key_verification_busy"]
                            .contains(&reason.as_str()),
                        "{reason}"
                    );
                    assert!(retry_after.is_some(), "429 without Retry-After");
                }
                other => panic!("the flood got {other} {reason}"),
            }
        }
        // The holder's address was never limited; a valid key verified earlier still works
        // from the flooding address, without a lookup.
        let reply = post_json(&attacker, &url, Some(&app.key), "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
}

#[tokio::test]
async fn a_refused_key_sent_with_lower_case_bearer_is_audited_with_its_key_id() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let unknown = GatewayKey::generate();
        let reply = app
            .http
            .post(app.url("/api/crisp/list/conversations"))
            .header("authorization", format!("bearer {}", unknown.reveal()))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(reply.status(), 401);
        app.app.auditor.flush(Duration::from_secs(5)).await;
        let rows = audit_rows(&app.store).await;
        let refused = rows
            .iter()
            .find(|r| r.status == 401)
            .expect("the refusal is counted");
        assert_eq!(
            (
                refused.api_key_id.as_ref().map(|id| id.as_str()),
                refused.action.as_str()
            ),
            (Some(unknown.id()), "list/conversations"),
            "{refused:#?}"
        );
    }
}

/// Past `max_concurrency` every request is shed at once with 503 `overloaded` and a retry
/// delay, and the log gets one line a second with the count, not a line per request.
#[tokio::test]
async fn a_flood_past_max_concurrency_is_shed_with_one_counted_log_line() {
    const REQUESTS: usize = 1_000;
    for engine in engines() {
        let db = TestDb::new(engine).await;
        let cli = Cli::for_db(&db, engine).await;
        let key = cli
            .workspace_with_key("acme", ("ident-shed", "web-shed"), "crisp-key-shed")
            .await;
        let crisp = FakeCrisp::start().await;
        // Held long enough to outlast the flood on a loaded machine.
        crisp.script(Answer::ok("[]").delayed(Duration::from_secs(8)));
        let dir = tempfile::tempdir().expect("tempdir");
        let server = cli
            .serve(
                &[
                    ("CRISP_GATEWAY_UPSTREAM", &crisp.base),
                    ("CRISP_GATEWAY_MAX_CONCURRENCY", "1"),
                ],
                &dir.path().join("serve.log"),
            )
            .await;
        let url = server.url("/api/crisp/list/conversations");
        let held = {
            let (http, url) = (server.http.clone(), url.clone());
            tokio::spawn(async move { post_json(&http, &url, Some(&key), "{}").await })
        };
        let holding = crate::helpers::eventually(Duration::from_secs(5), || async {
            crisp.received().len() == 1
        })
        .await;
        assert!(holding, "the held call reached Crisp");
        let http = server.http.clone();
        let flooding = std::time::Instant::now();
        let replies = flood(16, REQUESTS, move |_| (http.clone(), url.clone(), None)).await;
        let seconds = flooding.elapsed().as_secs() as usize;
        for reply in &replies {
            let shed = reply.status == 503
                && reply.reason() == "overloaded"
                && reply.header("retry-after") == Some("1")
                && reply.json()["error"]["retry_after_seconds"] == 1;
            assert!(shed, "{} {}", reply.status, reply.text);
        }
        assert_eq!(held.await.expect("held call").status, 200);
        // The count is written once a second.
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let log = server.stop().await;
        let about_shedding: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("shed") || l.contains("overloaded") || l.contains("503"))
            .collect();
        assert!(
            (1..=seconds + 3).contains(&about_shedding.len()),
            "one counted line a second, not one per request:\n{}",
            about_shedding.join("\n")
        );
        let counted: u64 = about_shedding
            .iter()
            .filter_map(|l| {
                l.split("shed ")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum();
        assert_eq!(counted, REQUESTS as u64, "{about_shedding:?}");
    }
}

#[tokio::test]
async fn a_flood_of_bad_admin_tokens_gets_a_log_budget_not_a_line_each() {
    const REQUESTS: usize = 2_000;
    let engine = engines()[0];
    let db = TestDb::new(engine).await;
    let cli = Cli::for_db(&db, engine).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    // Port 0: a port picked here and bound later could be taken by then (another test's
    // client connections use the same ephemeral range).
    let server = cli
        .serve(&[("CRISP_GATEWAY_ADMIN_LISTEN", "127.0.0.1:0")], &log)
        .await;
    let admin = server.listener("admin API and console listening");
    let url = format!("http://{admin}/admin/v1/workspaces");
    let http = server.http.clone();
    let replies = flood(16, REQUESTS, move |n| {
        let token = format!("sk_admin_{n:016}_{}", "x".repeat(40));
        (http.clone(), url.clone(), Some(token))
    })
    .await;
    assert!(
        replies.iter().all(|r| matches!(r.status, 401 | 429)),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let text = server.stop().await;
    let lines = text.lines().filter(|l| l.contains("admin request")).count();
    assert!(
        lines < REQUESTS / 4,
        "{lines} admin request lines for {REQUESTS} refusals"
    );
}
