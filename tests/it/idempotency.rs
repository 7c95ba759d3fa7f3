//! `Idempotency-Key` under hostile and unlucky conditions: repeats by keys that may not make
//! the call, repeats past a key's rate limit, claims left by a process that died, calls whose
//! answer never came back, and the operators' `idempotency list|release`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crisp_gateway::admin::{KeySpec, create_scoped_key};
use crisp_gateway::call::idempotency::Key;
use crisp_gateway::catalog::CATALOG;
use crisp_gateway::store::{AuditRecord, IdempotencyRecord, StoreError};

use crate::helpers::{Answer, Cli, Engine as DbEngine, Reply, TestApp, engines, eventually};

const WRITE: &str = "send/message/in/conversation";
const BODY: &str = r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"hello"}}"#;

/// Sends the write with `Idempotency-Key: idem` and the bearer key `bearer`.
async fn keyed(app: &TestApp, bearer: &str, idem: &str) -> Reply {
    let response = app
        .http
        .post(app.url(&format!("/api/crisp/{WRITE}")))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .header("idempotency-key", idem)
        .body(BODY)
        .send()
        .await
        .expect("gateway answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        text,
    }
}

async fn scoped_key(app: &TestApp, spec: KeySpec) -> (String, String) {
    let key = create_scoped_key(&app.store, &app.workspace_id, &spec)
        .await
        .expect("key");
    (key.id().to_owned(), key.reveal().to_owned())
}

async fn audit(app: &TestApp) -> Vec<AuditRecord> {
    app.audit().await
}

/// A record for `idem` as the gateway would store it for `BODY`, in `state`, with its lease
/// and expiry `lease` and `expires` seconds from now.
fn record(app: &TestApp, idem: &str, state: &str, lease: i64, expires: i64) -> IdempotencyRecord {
    let action = CATALOG.get(WRITE).expect("action");
    let key = Key::new(idem.as_bytes(), action, BODY.as_bytes()).expect("key");
    let now = crisp_gateway::kernel::clock::now();
    IdempotencyRecord {
        workspace_id: app.workspace_id.clone(),
        idempotency_key: idem.to_owned(),
        request_hash: key.request_hash().to_owned(),
        state: state.parse().expect("a stored state"),
        status: None,
        response: None,
        created_at: now - 100,
        lease_until: now + lease,
        expires_at: now + expires,
    }
}

/// Verifies (and caches) the test key, so argon2 does not count against a short deadline.
async fn warm(app: &TestApp) {
    assert_eq!(app.call("count/visitors", "{}").await.status, 200);
    app.crisp.take_received();
}

async fn insert(app: &TestApp, record: &IdempotencyRecord) {
    let _ = app
        .store
        .delete_idempotency(&record.workspace_id, &record.idempotency_key)
        .await;
    assert_eq!(
        app.store.claim_idempotency(record).await.expect("insert"),
        None
    );
}

#[tokio::test]
async fn a_replay_by_a_key_that_may_not_write_is_refused_and_audited() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let first = keyed(&app, &app.key, "order-1").await;
        assert_eq!(first.status, 200, "{}", first.text);
        let (read_only_id, read_only) = scoped_key(
            &app,
            KeySpec {
                read_only: true,
                ..KeySpec::default()
            },
        )
        .await;
        let (lister_id, lister) = scoped_key(
            &app,
            KeySpec {
                actions: Some("list/*".into()),
                ..KeySpec::default()
            },
        )
        .await;
        for (bearer, reason) in [
            (&read_only, "write_not_allowed"),
            (&lister, "action_not_allowed"),
        ] {
            let without = app.call_with_key(WRITE, BODY, Some(bearer)).await;
            let replay = keyed(&app, bearer, "order-1").await;
            assert_eq!(
                (replay.status, replay.reason()),
                (403, reason.to_owned()),
                "a replay is refused as the call without the key is: {}",
                replay.text
            );
            assert_eq!((without.status, without.reason()), (403, reason.to_owned()));
            assert_eq!(replay.header("idempotent-replayed"), None);
            assert!(!replay.text.contains("fingerprint") && !replay.text.contains("echo"));
        }
        let replay = keyed(&app, &app.key, "order-1").await;
        assert_eq!(
            (replay.status, replay.text.as_str()),
            (200, first.text.as_str())
        );
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert_eq!(app.crisp.take_received().len(), 1, "Crisp saw one call");

        let rows = audit(&app).await;
        let replays: Vec<_> = rows
            .iter()
            .filter(|r| r.reason.as_deref() == Some("idempotent_replay"))
            .map(|r| {
                (
                    r.api_key_id.as_ref().map(|id| id.as_str()),
                    r.action.as_str(),
                    r.status,
                )
            })
            .collect();
        assert_eq!(replays, [(Some(app.key_id.as_str()), WRITE, 200)]);
        for (id, reason) in [
            (&read_only_id, "write_not_allowed"),
            (&lister_id, "action_not_allowed"),
        ] {
            let refused = rows
                .iter()
                .filter(|r| {
                    r.api_key_id.as_ref().map(|id| id.as_str()) == Some(id.as_str())
                        && r.status == 403
                        && r.reason.as_deref() == Some(reason)
                })
                .map(|r| r.count)
                .sum::<i64>();
            // Refusals are counted per reason, key and minute: one row, a count of two.
            assert_eq!(refused, 2, "both refusals of {id} audited: {rows:?}");
        }
    }
}

#[tokio::test]
async fn replays_count_against_the_keys_rate_limit() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| {
            c.key_rate_limit = 0.01;
            c.key_burst = 2.0;
        })
        .await;
        assert_eq!(keyed(&app, &app.key, "order-2").await.status, 200);
        let replay = keyed(&app, &app.key, "order-2").await;
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        let limited = keyed(&app, &app.key, "order-2").await;
        assert_eq!(
            (limited.status, limited.reason()),
            (429, "rate_limited".to_owned()),
            "{}",
            limited.text
        );
        assert!(limited.header("retry-after").is_some());
        assert_eq!(app.crisp.take_received().len(), 1);
        let rows = audit(&app).await;
        assert!(
            rows.iter()
                .any(|r| r.status == 429 && r.reason.as_deref() == Some("rate_limited")),
            "{rows:?}"
        );
    }
}

/// Starts a read that holds the account's only slot until Crisp answers it, after `delay`.
async fn hold_the_account(app: &Arc<TestApp>, delay: Duration) -> tokio::task::JoinHandle<Reply> {
    app.crisp.script(Answer::ok("[]").delayed(delay));
    let before = app.crisp.received().len();
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { app.call("list/conversations", "{}").await })
    };
    let holding = eventually(Duration::from_secs(5), || async {
        app.crisp.received().len() > before
    })
    .await;
    assert!(holding, "the slow call reached Crisp");
    slow
}

#[tokio::test]
async fn no_claim_is_taken_while_a_call_waits_for_its_account() {
    for engine in engines() {
        let app = Arc::new(
            TestApp::spawn_with(engine, |c| {
                c.account_max_concurrency = 1;
                c.account_queue_timeout = Duration::from_secs(5);
            })
            .await,
        );
        // Verify (and cache) the key first, so the wait below is the account's alone.
        assert_eq!(app.call("count/visitors", "{}").await.status, 200);
        let slow = hold_the_account(&app, Duration::from_secs(3)).await;
        let write = {
            let app = app.clone();
            tokio::spawn(async move { keyed(&app, &app.key, "order-3").await })
        };
        let queued = eventually(Duration::from_secs(5), || async {
            app.app.crisp.shaper().queue_depth() == 1
        })
        .await;
        assert!(queued, "the write waits for the account's turn");
        assert!(
            matches!(
                app.store
                    .find_idempotency(&app.workspace_id, "order-3")
                    .await,
                Err(StoreError::NotFound)
            ),
            "no claim while the write waits for its turn"
        );
        assert_eq!(slow.await.expect("task").status, 200);
        let written = write.await.expect("task");
        assert_eq!(written.status, 200, "{}", written.text);
        let done = app
            .store
            .find_idempotency(&app.workspace_id, "order-3")
            .await
            .expect("claimed once it left");
        assert_eq!(done.state.as_str(), "done");

        // Refused for the account's budget: nothing was sent, and the key stays free.
        let busy = Arc::new(
            TestApp::spawn_with(engine, |c| {
                c.account_max_concurrency = 1;
                c.account_queue_timeout = Duration::from_millis(100);
            })
            .await,
        );
        assert_eq!(busy.call("count/visitors", "{}").await.status, 200);
        let slow = hold_the_account(&busy, Duration::from_secs(3)).await;
        let refused = keyed(&busy, &busy.key, "order-4").await;
        assert_eq!(
            (refused.status, refused.reason()),
            (429, "account_busy".to_owned())
        );
        assert!(matches!(
            busy.store
                .find_idempotency(&busy.workspace_id, "order-4")
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(slow.await.expect("task").status, 200);
        let retried = keyed(&busy, &busy.key, "order-4").await;
        assert_eq!(retried.status, 200, "{}", retried.text);
        assert_eq!(retried.header("idempotent-replayed"), None);
    }
}

#[tokio::test]
async fn a_claim_whose_process_died_is_answered_at_once_and_freed_after_the_hold() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        // A claim whose lease passed: its process died mid-call (say, kill -9).
        insert(&app, &record(&app, "order-5", "pending", -40, 600)).await;
        let started = Instant::now();
        let reply = keyed(&app, &app.key, "order-5").await;
        assert_eq!(
            (reply.status, reply.reason()),
            (409, "idempotency_outcome_unknown".to_owned()),
            "{}",
            reply.text
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered without waiting for the request deadline: {:?}",
            started.elapsed()
        );
        let retry_after: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!((590..=601).contains(&retry_after), "{retry_after}");
        let message = reply.message();
        for needle in [
            "may or may not have reached Crisp",
            "Check in Crisp",
            "idempotency release",
        ] {
            assert!(message.contains(needle), "{needle}: {message}");
        }
        assert!(app.crisp.take_received().is_empty(), "nothing sent again");

        // Once the hold after the lease is over, the key runs again.
        insert(&app, &record(&app, "order-5", "pending", -700, -100)).await;
        let again = keyed(&app, &app.key, "order-5").await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.header("idempotent-replayed"), None);
        assert_eq!(app.crisp.take_received().len(), 1);

        // A claim still within its lease is waited for, then answered as in progress.
        let app = TestApp::spawn_with(engine, |c| {
            c.request_timeout = Duration::from_secs(2);
            c.upstream_timeout = Duration::from_millis(500);
        })
        .await;
        warm(&app).await;
        insert(&app, &record(&app, "order-6", "pending", 60, 900)).await;
        let reply = keyed(&app, &app.key, "order-6").await;
        assert_eq!(
            (reply.status, reply.reason()),
            (409, "idempotency_in_progress".to_owned()),
            "{}",
            reply.text
        );
        assert!(reply.header("retry-after").is_some());
        assert!(app.crisp.take_received().is_empty());
    }
}

#[tokio::test]
async fn an_upstream_timeout_after_sending_leaves_the_outcome_unknown() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| {
            c.upstream_timeout = Duration::from_millis(500);
            c.request_timeout = Duration::from_secs(3);
            c.retry_base_delay = Duration::from_millis(20);
            c.retry_max_delay = Duration::from_millis(50);
            c.idempotency_unknown_hold = Duration::from_secs(600);
        })
        .await;
        warm(&app).await;
        for _ in 0..5 {
            app.crisp
                .script(Answer::ok("{}").delayed(Duration::from_secs(5)));
        }
        let reply = keyed(&app, &app.key, "order-7").await;
        assert_eq!(
            (reply.status, reply.reason()),
            (504, "crisp_timeout".to_owned()),
            "{}",
            reply.text
        );
        let sent = app.crisp.take_received().len();
        assert!(sent >= 1, "the write left");
        let stored = app
            .store
            .find_idempotency(&app.workspace_id, "order-7")
            .await
            .expect("kept");
        assert_eq!(stored.state.as_str(), "unknown");
        let repeat = keyed(&app, &app.key, "order-7").await;
        assert_eq!(
            (repeat.status, repeat.reason()),
            (409, "idempotency_outcome_unknown".to_owned()),
            "{}",
            repeat.text
        );
        let retry_after: i64 = repeat
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("Retry-After");
        assert!(
            retry_after > 590 && retry_after <= 610,
            "the lease and the hold: {retry_after}"
        );
        assert!(app.crisp.take_received().is_empty(), "not sent again");

        // A write that cannot connect certainly never left: its key stays free.
        let dead = crate::helpers::dead_upstream().await;
        let app = TestApp::spawn_with(engine, move |c| c.upstream = dead).await;
        let reply = keyed(&app, &app.key, "order-8").await;
        assert_eq!(
            (reply.status, reply.reason()),
            (502, "crisp_unreachable".to_owned())
        );
        assert!(matches!(
            app.store
                .find_idempotency(&app.workspace_id, "order-8")
                .await,
            Err(StoreError::NotFound)
        ));
    }
}

/// The rows of `idempotency list` whose first column is `key`, split into columns.
fn rows<'a>(listing: &'a str, key: &str) -> Vec<Vec<&'a str>> {
    listing
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.first() == Some(&key))
        .collect()
}

#[tokio::test]
async fn operators_list_and_release_idempotency_records() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let (other_ws, _) = app.other_workspace("globex", "g").await;
        assert_eq!(keyed(&app, &app.key, "k-done").await.status, 200);
        insert(&app, &record(&app, "k-running", "pending", 60, 900)).await;
        insert(&app, &record(&app, "k-died", "pending", -40, 600)).await;
        insert(&app, &record(&app, "k-lost", "unknown", -40, 600)).await;
        insert(&app, &record(&app, "k-expired", "unknown", -700, -100)).await;
        let mut elsewhere = record(&app, "k-other", "pending", 60, 900);
        elsewhere.workspace_id = other_ws;
        insert(&app, &elsewhere).await;

        let cli = Cli::new(&app._db.url);
        let listing = cli
            .ok(&["idempotency", "list", "--workspace", "acme"])
            .await
            .stdout;
        assert!(listing.starts_with("KEY"), "{listing}");
        for (key, state, status) in [
            ("k-done", "done", "200"),
            ("k-running", "pending", "-"),
            ("k-died", "unknown", "-"),
            ("k-lost", "unknown", "-"),
        ] {
            let found = rows(&listing, key);
            assert_eq!(found.len(), 1, "{key} in\n{listing}");
            assert_eq!(
                (found[0][1], found[0][2], found[0][5]),
                ("acme", state, status),
                "{listing}"
            );
        }
        assert!(rows(&listing, "k-expired").is_empty(), "{listing}");
        assert!(rows(&listing, "k-other").is_empty(), "{listing}");
        assert!(
            !listing.contains("\"ok\"") && !listing.contains("echo"),
            "never the stored answer: {listing}"
        );
        let unknown = cli
            .ok(&["idempotency", "list", "--state", "unknown"])
            .await
            .stdout;
        let keys: Vec<_> = unknown
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        assert_eq!(keys.len(), 2, "{unknown}");
        assert!(
            keys.contains(&"k-died") && keys.contains(&"k-lost"),
            "{unknown}"
        );
        let everywhere = cli
            .ok(&["idempotency", "list", "--state", "pending"])
            .await
            .stdout;
        assert_eq!(rows(&everywhere, "k-other")[0][1], "globex", "{everywhere}");

        // Released, the key runs again at once.
        let released = cli
            .ok(&["idempotency", "release", "--workspace", "acme", "k-lost"])
            .await;
        assert!(released.stdout.is_empty(), "{released:?}");
        assert!(
            released
                .stderr
                .contains("released Idempotency-Key `k-lost`")
                && released.stderr.contains("it was unknown")
                && released.stderr.contains("runs as new"),
            "{released:?}"
        );
        let again = keyed(&app, &app.key, "k-lost").await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.header("idempotent-replayed"), None);
        let done = cli
            .ok(&["idempotency", "release", "--workspace", "acme", "k-done"])
            .await;
        assert!(done.stderr.contains("it was done, status 200"), "{done:?}");
        let replayed = keyed(&app, &app.key, "k-done").await;
        assert_eq!(replayed.header("idempotent-replayed"), None, "runs again");

        let missing = cli
            .fails(&["idempotency", "release", "--workspace", "acme", "k-none"])
            .await;
        assert!(
            missing
                .stderr
                .contains("holds no record for Idempotency-Key `k-none`"),
            "{missing:?}"
        );
        let nowhere = cli
            .fails(&["idempotency", "release", "--workspace", "nope", "k-died"])
            .await;
        assert!(
            nowhere.stderr.contains("no workspace named `nope`"),
            "{nowhere:?}"
        );
        let bad_state = cli.run(&["idempotency", "list", "--state", "lost"]).await;
        assert!(
            !bad_state.success && bad_state.stderr.contains("pending"),
            "{bad_state:?}"
        );
    }
}

/// Makes the next claim of Idempotency-Key `idem` meet a record that vanishes before it can be
/// read back, as when its holder releases it (or it is pruned) between the two: the insert is
/// skipped as if the key were held, and the key is free again right after.
async fn vanish_once(app: &TestApp, engine: DbEngine, idem: &'static str) {
    use sqlx::Connection;
    match engine {
        DbEngine::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&app._db.url)
                .await
                .expect("sqlite");
            sqlx::raw_sql(
                "create table vanishing (idempotency_key text not null);
                 create trigger vanish_once before insert on idempotency_record
                 when exists (select 1 from vanishing where idempotency_key = new.idempotency_key)
                 begin
                     delete from vanishing where idempotency_key = new.idempotency_key;
                     select raise(ignore);
                 end;",
            )
            .execute(&mut conn)
            .await
            .expect("trigger");
            sqlx::query("insert into vanishing (idempotency_key) values ($1)")
                .bind(idem)
                .execute(&mut conn)
                .await
                .expect("armed");
        }
        DbEngine::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&app._db.url)
                .await
                .expect("postgres");
            sqlx::raw_sql(
                "create table vanishing (idempotency_key text not null);
                 create function vanish_once() returns trigger language plpgsql as $$
                 begin
                     if exists (select 1 from vanishing where idempotency_key = new.idempotency_key) then
                         delete from vanishing where idempotency_key = new.idempotency_key;
                         return null;
                     end if;
                     return new;
                 end $$;
                 create trigger vanish_once before insert on idempotency_record
                 for each row execute function vanish_once();",
            )
            .execute(&mut conn)
            .await
            .expect("trigger");
            sqlx::query("insert into vanishing (idempotency_key) values ($1)")
                .bind(idem)
                .execute(&mut conn)
                .await
                .expect("armed");
        }
    }
}

#[tokio::test]
async fn a_key_freed_while_it_is_claimed_is_claimed_again_not_a_database_outage() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        vanish_once(&app, engine, "order-race").await;
        let write = keyed(&app, &app.key, "order-race").await;
        assert_eq!(write.status, 200, "{engine:?}: {}", write.text);
        assert_eq!(app.crisp.take_received().len(), 1, "{engine:?}: sent once");
        let stored = app
            .store
            .find_idempotency(&app.workspace_id, "order-race")
            .await
            .expect("claimed on the second try");
        assert_eq!(stored.state.as_str(), "done", "{engine:?}");
        let replayed = keyed(&app, &app.key, "order-race").await;
        assert_eq!(replayed.status, 200, "{engine:?}");
        assert_eq!(
            replayed.header("idempotent-replayed"),
            Some("true"),
            "{engine:?}"
        );
    }
}
