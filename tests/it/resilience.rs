//! A fake Crisp that misbehaves on purpose: retries that never duplicate a write, idempotency
//! keys, rate shaping, load shedding, metrics, and a database that goes away and comes back.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::{Answer, Engine, TestApp, engines};

fn fast_retries(c: &mut crisp_gateway::app::config::Config) {
    c.retry_base_delay = Duration::from_millis(20);
    c.retry_max_delay = Duration::from_millis(50);
}

#[tokio::test]
async fn a_429_then_200_is_one_success() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, fast_retries).await;
        app.crisp.script(Answer::json(
            429,
            r#"{"error":true,"reason":"rate_limited","data":{}}"#,
        ));
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(app.crisp.take_received().len(), 2);
    }
}

#[tokio::test]
async fn a_420_burst_ends_in_429_with_retry_after() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, fast_retries).await;
        for _ in 0..3 {
            app.crisp.script(Answer::json(
                420,
                r#"{"error":true,"reason":"rate_limited","data":{}}"#,
            ));
        }
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_rate_limited");
        assert!(reply.header("retry-after").is_some());
        assert_eq!(app.crisp.take_received().len(), 3, "three attempts");
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, fast_retries).await;
        app.crisp
            .script(Answer::json(429, "{}").with_header("retry-after", "1"));
        let started = Instant::now();
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "waited {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn slow_crisp_is_504_within_the_deadline() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| {
            c.upstream_timeout = Duration::from_millis(300);
            c.request_timeout = Duration::from_millis(1500);
            fast_retries(c);
        })
        .await;
        for _ in 0..5 {
            app.crisp
                .script(Answer::ok("[]").delayed(Duration::from_secs(5)));
        }
        let started = Instant::now();
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 504, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_timeout");
        // Well under Crisp's 5 s delay (and the retries it would take), with room for a
        // loaded machine: the deadline cut the call.
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn writes_without_a_key_are_sent_exactly_once() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, fast_retries).await;
        app.crisp.script(Answer::json(500, "{}"));
        let reply = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s","body":{"type":"text","from":"operator","origin":"chat","content":"hi"}}"#,
            )
            .await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(
            app.crisp.take_received().len(),
            1,
            "a POST without Idempotency-Key is never retried"
        );
        // PUT is idempotent, so it is retried.
        app.crisp.script(Answer::json(500, "{}"));
        let reply = app
            .call("save/people/profile", r#"{"peopleID":"p","body":{}}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(app.crisp.take_received().len(), 2);
    }
}

/// A server that resets the first `resets` connections, then answers every request.
async fn flaky_upstream(resets: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = socket.read(&mut buf).await;
                if n < resets {
                    let _ = socket.set_zero_linger();
                    drop(socket);
                    return;
                }
                let body = r#"{"error":false,"reason":"resolved","data":{"after":"reset"}}"#;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://{addr}/v1"), connections)
}

#[tokio::test]
async fn connection_resets_are_retried_for_safe_calls_only() {
    for engine in engines() {
        let (upstream, connections) = flaky_upstream(1).await;
        let app = TestApp::spawn_with(engine, move |c| {
            c.upstream = upstream;
            fast_retries(c);
        })
        .await;
        let reply = app.call("get/conversation", r#"{"sessionID":"s"}"#).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["after"], "reset");
        assert_eq!(connections.load(Ordering::SeqCst), 2);

        let (upstream, connections) = flaky_upstream(1).await;
        let app = TestApp::spawn_with(engine, move |c| c.upstream = upstream).await;
        let reply = app.call("create/new/conversation", "{}").await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(
            connections.load(Ordering::SeqCst),
            1,
            "a reset POST is not sent again"
        );
    }
}

async fn post_with_key(app: &TestApp, key: &str, body: &str) -> crate::helpers::Reply {
    let response = app
        .http
        .post(app.url("/api/crisp/send/message/in/conversation"))
        .header("authorization", format!("Bearer {}", app.key))
        .header("idempotency-key", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    crate::helpers::Reply {
        status,
        headers,
        text,
    }
}

#[tokio::test]
async fn fifty_concurrent_repeats_of_one_key_make_one_call() {
    for engine in engines() {
        let app = Arc::new(TestApp::spawn(engine).await);
        app.crisp
            .script(Answer::ok(r#"{"fingerprint":42}"#).delayed(Duration::from_millis(400)));
        let body = r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"hello"}}"#;
        let calls = (0..50).map(|_| {
            let app = app.clone();
            tokio::spawn(async move { post_with_key(&app, "order-7", body).await })
        });
        let replies: Vec<_> = futures_join(calls).await;
        assert_eq!(
            app.crisp.take_received().len(),
            1,
            "exactly one upstream call"
        );
        let first = &replies[0];
        assert_eq!(first.status, 200, "{}", first.text);
        let odd: Vec<_> = replies
            .iter()
            .filter(|r| r.status != first.status || r.text != first.text)
            .map(|r| (r.status, r.text.clone()))
            .collect();
        assert!(
            odd.is_empty(),
            "identical answers; first {} {}, others: {odd:?}",
            first.status,
            first.text
        );
        let replayed = replies
            .iter()
            .filter(|r| r.header("idempotent-replayed") == Some("true"))
            .count();
        assert_eq!(replayed, 49);
        // Later repeats replay too; a different body under the same key is refused.
        let again = post_with_key(&app, "order-7", body).await;
        assert_eq!(
            (again.status, again.text.as_str()),
            (200, first.text.as_str())
        );
        let other = post_with_key(
            &app,
            "order-7",
            r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"other"}}"#,
        )
        .await;
        assert_eq!(other.status, 422, "{}", other.text);
        assert_eq!(other.reason(), "idempotency_key_reused");
        assert!(app.crisp.take_received().is_empty());
        let bad = post_with_key(&app, &"x".repeat(300), body).await;
        assert_eq!(bad.status, 400);
        assert_eq!(bad.reason(), "invalid_idempotency_key");
    }
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.expect("task"));
    }
    out
}

#[tokio::test]
async fn idempotent_writes_are_retried_and_replayed_across_replicas() {
    for engine in engines() {
        let first = TestApp::spawn_with(engine, fast_retries).await;
        let second = first.replica().await;
        first.crisp.script(Answer::json(503, "{}"));
        let body = r#"{"sessionID":"s1","body":{"type":"text","from":"operator","origin":"chat","content":"hi"}}"#;
        let reply = post_with_key(&first, "k-1", body).await;
        assert_eq!(
            reply.status, 200,
            "a keyed POST may be retried: {}",
            reply.text
        );
        assert_eq!(first.crisp.take_received().len(), 2);
        let replay = post_with_key(&second, "k-1", body).await;
        assert_eq!(
            (replay.status, replay.text.as_str()),
            (200, reply.text.as_str())
        );
        assert_eq!(replay.header("idempotent-replayed"), Some("true"));
        assert!(
            first.crisp.take_received().is_empty(),
            "the replica did not call Crisp again"
        );
        // A call that never reached Crisp (the key's own rate limit, here a bad account)
        // leaves the key free for a corrected retry.
        let refused = post_with_key(&first, "k-2", r#"{"sessionID":"s1","account":"nope"}"#).await;
        assert_eq!(refused.status, 404);
        let later = post_with_key(&first, "k-2", r#"{"sessionID":"s1","account":"nope"}"#).await;
        assert_eq!(
            later.header("idempotent-replayed"),
            None,
            "not stored: {}",
            later.text
        );
    }
}

/// Starts a call that Crisp answers slowly and returns once Crisp has it, so the caller knows
/// the call holds its slot (the key is verified first, so argon2 does not skew the timing).
async fn hold_a_slow_call(app: &Arc<TestApp>) -> tokio::task::JoinHandle<crate::helpers::Reply> {
    assert_eq!(
        app.call("count/visitors", "{}").await.status,
        200,
        "the key is verified and cached"
    );
    app.crisp
        .script(Answer::ok("[]").delayed(Duration::from_secs(3)));
    let slow = {
        let app = app.clone();
        tokio::spawn(async move { app.call("list/conversations", "{}").await })
    };
    let started = crate::helpers::eventually(Duration::from_secs(2), || async {
        app.crisp.received().len() == 2
    })
    .await;
    assert!(started, "the slow call reached Crisp");
    slow
}

#[tokio::test]
async fn a_busy_account_answers_429_account_busy() {
    for engine in engines() {
        let app = Arc::new(
            TestApp::spawn_with(engine, |c| {
                c.account_max_concurrency = 1;
                c.account_queue_timeout = Duration::from_millis(100);
            })
            .await,
        );
        let slow = hold_a_slow_call(&app).await;
        let reply = app.call("count/visitors", "{}").await;
        let busy = reply.status == 429
            && reply.reason() == "account_busy"
            && reply.header("retry-after").is_some();
        assert!(busy, "a second concurrent call should be refused");
        assert_eq!(slow.await.expect("task").status, 200);
    }
}

#[tokio::test]
async fn each_key_has_its_own_rate_limit() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| {
            c.key_rate_limit = 0.5;
            c.key_burst = 2.0;
        })
        .await;
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        assert_eq!(app.call("list/conversations", "{}").await.status, 200);
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 429, "{}", reply.text);
        assert_eq!(reply.reason(), "rate_limited");
        assert_eq!(reply.header("retry-after"), Some("2"));
        let (_, other) = app.other_workspace("other", "o").await;
        assert_eq!(
            app.call_with_key("list/accounts", "{}", Some(&other))
                .await
                .status,
            200,
            "keys do not share a budget"
        );
    }
}

#[tokio::test]
async fn overload_is_shed_with_503() {
    for engine in engines() {
        let app = Arc::new(TestApp::spawn_with(engine, |c| c.max_concurrency = 1).await);
        let slow = hold_a_slow_call(&app).await;
        let reply = app.get("/healthz").await;
        let shed = reply.status == 503
            && reply.reason() == "overloaded"
            && reply.header("retry-after") == Some("1");
        assert!(shed, "a request beyond max_concurrency should be shed");
        assert_eq!(slow.await.expect("task").status, 200);
    }
}

#[tokio::test]
async fn metrics_are_exposed_in_prometheus_format() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.call("list/conversations", "{}").await;
        app.call("list/conversation", "{}").await;
        let reply = app.get("/metrics").await;
        assert_eq!(reply.status, 200);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|c| c.starts_with("text/plain"))
        );
        for needle in [
            r#"crisp_gateway_requests_total{action="list/conversations",status="200"}"#,
            "crisp_gateway_request_duration_seconds_bucket",
            "crisp_gateway_upstream_calls_total",
            r#"crisp_gateway_cache_lookups_total{cache="key",result="hit"}"#,
            "crisp_gateway_account_queue_depth",
            "crisp_gateway_argon2_verifications_total",
        ] {
            assert!(
                reply.text.contains(needle),
                "missing {needle} in\n{}",
                reply.text
            );
        }
    }
}

/// A TCP proxy in front of Postgres that can cut every connection and refuse new ones.
struct Outage {
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    pub url: String,
}

impl Outage {
    async fn start(database_url: &str) -> Self {
        let target = {
            let after = database_url.split("://").nth(1).expect("url");
            let host = after
                .split('@')
                .next_back()
                .expect("host")
                .split('/')
                .next()
                .expect("host");
            host.to_owned()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<parking_lot::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (state, conns) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !state.load(Ordering::SeqCst) {
                    continue; // dropped: the database is "down"
                }
                let target = target.clone();
                conns.lock().push(tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }));
            }
        });
        let url = {
            let (scheme, rest) = database_url.split_once("://").expect("url");
            let (creds, path) = rest.split_once('@').map_or(("", rest), |(c, p)| (c, p));
            let path = path.split_once('/').map_or("", |(_, p)| p);
            let creds = if creds.is_empty() {
                String::new()
            } else {
                format!("{creds}@")
            };
            format!("{scheme}://{creds}{addr}/{path}")
        };
        Self {
            up,
            connections,
            url,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().drain(..) {
            connection.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_outage_keeps_cached_keys_working_and_heals_itself() {
    if !engines().contains(&Engine::Postgres) {
        return; // The outage is staged with a proxy in front of Postgres.
    }
    let direct = crate::helpers::TestDb::new(Engine::Postgres).await;
    let outage = Outage::start(&direct.url).await;
    let app = TestApp::spawn_on(&outage.url, &direct).await;
    assert_eq!(
        app.call("list/conversations", "{}").await.status,
        200,
        "key now cached"
    );
    let (_, fresh_key) = app.other_workspace("fresh", "f").await;

    outage.cut();
    let reply = app.call("list/conversations", "{}").await;
    assert_eq!(
        reply.status, 200,
        "a cached key works while the database is down: {}",
        reply.text
    );
    let reply = app
        .call_with_key("list/accounts", "{}", Some(&fresh_key))
        .await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(reply.reason(), "store_unavailable");
    assert_eq!(app.get("/readyz").await.status, 503);

    outage.restore();
    let healed = crate::helpers::eventually(Duration::from_secs(10), || async {
        app.call_with_key("list/accounts", "{}", Some(&fresh_key))
            .await
            .status
            == 200
    })
    .await;
    assert!(healed, "no restart needed once the database is back");
    assert_eq!(app.get("/readyz").await.status, 200);
}
