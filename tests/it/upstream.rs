//! How Crisp's failures reach the caller: passed through when they concern the input,
//! translated when they concern the gateway's credentials or Crisp's health.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{Answer, CRISP_KEY, TestApp, dead_upstream, engines};

#[tokio::test]
async fn crisp_client_errors_pass_through_with_reason_and_message() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.crisp.script(Answer::json(
            400,
            r#"{"error":true,"reason":"invalid_data","data":{"message":"data should have required property '.origin'"}}"#,
        ));
        let reply = app
            .call(
                "send/message/in/conversation",
                r#"{"sessionID":"s","body":{"type":"text","from":"operator","origin":"chat","content":"x"}}"#,
            )
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.reason(), "invalid_data");
        assert!(
            reply.message().contains("required property '.origin'"),
            "{}",
            reply.message()
        );

        app.crisp.script(Answer::json(
            404,
            r#"{"error":true,"reason":"not_found","data":{}}"#,
        ));
        let reply = app
            .call("get/conversation", r#"{"sessionID":"missing"}"#)
            .await;
        assert_eq!(reply.status, 404);
        assert_eq!(reply.reason(), "not_found");
    }
}

#[tokio::test]
async fn rejected_credentials_are_502_naming_the_account_never_401() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        app.crisp.script(Answer::json(
            401,
            r#"{"error":true,"reason":"invalid_session","data":{}}"#,
        ));
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_unauthorized");
        assert!(reply.message().contains("`main`"), "{}", reply.message());
        assert!(reply.header("www-authenticate").is_none());

        // A 403 for credentials Crisp never accepted is not read as a tier refusal.
        app.crisp.script(Answer::json(
            403,
            r#"{"error":true,"reason":"website_forbidden","data":{}}"#,
        ));
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 502);
        assert_eq!(reply.reason(), "crisp_forbidden");
        assert!(
            reply.message().contains("website_forbidden"),
            "{}",
            reply.message()
        );
        assert!(!reply.text.contains(CRISP_KEY));
    }
}

#[tokio::test]
async fn rate_limits_become_429_with_retry_after() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| c.retry_max_attempts = 1).await;
        for (status, retry_after, expected) in [(429, Some("7"), "7"), (420, None, "1")] {
            let mut answer = Answer::json(
                status,
                r#"{"error":true,"reason":"rate_limited","data":{}}"#,
            );
            if let Some(value) = retry_after {
                answer = answer.with_header("retry-after", value);
            }
            app.crisp.script(answer);
            let reply = app.call("list/conversations", "{}").await;
            assert_eq!(reply.status, 429, "{status}: {}", reply.text);
            assert_eq!(reply.reason(), "crisp_rate_limited");
            assert_eq!(reply.header("retry-after"), Some(expected), "{status}");
        }
    }
}

#[tokio::test]
async fn crisp_failures_are_502_and_slowness_504() {
    for engine in engines() {
        // One attempt: this test is about the mapping; retries are tested in `resilience`.
        let app = TestApp::spawn_with(engine, |c| {
            c.upstream_timeout = Duration::from_millis(300);
            c.retry_max_attempts = 1;
        })
        .await;
        for status in [500, 503] {
            app.crisp.script(Answer::json(status, "oops"));
            let reply = app.call("list/conversations", "{}").await;
            assert_eq!(reply.status, 502, "{}", reply.text);
            assert_eq!(reply.reason(), "crisp_server_error");
            assert!(
                !reply.text.contains("oops"),
                "no upstream internals: {}",
                reply.text
            );
        }
        app.crisp.script(Answer::json(200, "<html>not json</html>"));
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 502);
        assert_eq!(reply.reason(), "crisp_invalid_response");

        app.crisp
            .script(Answer::ok("[]").delayed(Duration::from_secs(3)));
        let started = Instant::now();
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 504, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_timeout");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "answered within the configured bound"
        );
    }
}

#[tokio::test]
async fn unreachable_crisp_is_502() {
    for engine in engines() {
        let dead = dead_upstream().await;
        let app = TestApp::spawn_with(engine, move |c| {
            c.upstream = dead;
            c.retry_max_attempts = 1;
        })
        .await;
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 502, "{}", reply.text);
        assert_eq!(reply.reason(), "crisp_unreachable");
        assert!(
            !reply.text.contains("127.0.0.1"),
            "no internals: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn head_actions_answer_existence() {
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| c.retry_max_attempts = 1).await;
        app.crisp.script(Answer::json(404, ""));
        let reply = app
            .call("check/conversation/exists", r#"{"sessionID":"gone"}"#)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            reply.json(),
            json!({"ok": true, "tool": "crisp_check_conversation_exists", "result": {"exists": false}})
        );
        app.crisp.script(Answer::json(200, ""));
        // (`check/website/exists` would be refused before Crisp: `main` is a website-tier
        // account, and Crisp documents that route for the user and plugin tiers.)
        let reply = app
            .call(
                "check/inbox/exists",
                r#"{"inboxID":"i","query":"probe=yes"}"#,
            )
            .await;
        assert_eq!(reply.json()["result"], json!({"exists": true}));
        let received = app.crisp.take_received();
        assert_eq!(received[0].method, "HEAD");
        assert_eq!(received[1].path, "/v1/website/web-main/inbox/i");
        assert_eq!(received[1].query.as_deref(), Some("probe=yes"));
        app.crisp.script(Answer::json(500, ""));
        let reply = app.call("check/inbox/exists", r#"{"inboxID":"i"}"#).await;
        assert_eq!(reply.status, 502, "a HEAD 5xx is still an error");
    }
}

#[tokio::test]
async fn a_url_too_long_for_crisp_is_a_400_naming_the_value() {
    for engine in engines() {
        let app = TestApp::spawn(engine).await;
        let long = "s".repeat(20_000);
        let reply = app
            .call(
                "get/conversation",
                &json!({ "sessionID": long }).to_string(),
            )
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.reason(), "url_too_long");
        let message = reply.message();
        assert!(
            message.contains("`sessionID` (20000 bytes)") && message.contains("8192"),
            "{message}"
        );
        let reply = app
            .call(
                "list/conversations",
                &json!({ "query": { "search_query": "q".repeat(9_000) } }).to_string(),
            )
            .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(
            reply
                .message()
                .contains("`query.search_query` (9000 bytes)"),
            "{}",
            reply.message()
        );
        assert!(app.crisp.received().is_empty(), "nothing was sent to Crisp");
        // Values of ordinary length still go through.
        let reply = app
            .call(
                "get/conversation",
                &json!({ "sessionID": "s".repeat(2_000) }).to_string(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
}

/// An upstream that speaks only HTTP/2 without TLS (h2c by prior knowledge), answers every
/// request with a small Crisp envelope after `delay`, allows at most `max_streams` streams at
/// once on a connection (when set), and counts the connections it accepted, the HTTP versions
/// it saw and the most requests it held at once.
struct H2cUpstream {
    base: String,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    versions: std::sync::Arc<std::sync::Mutex<Vec<http::Version>>>,
    most_at_once: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Connections past this many are closed as soon as they are accepted.
    refuse_past: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn h2c_upstream(delay: Duration, max_streams: Option<u32>) -> H2cUpstream {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let upstream = H2cUpstream {
        base: format!("http://{addr}/v1"),
        connections: Arc::new(AtomicUsize::new(0)),
        versions: Arc::new(std::sync::Mutex::new(Vec::new())),
        most_at_once: Arc::new(AtomicUsize::new(0)),
        refuse_past: Arc::new(AtomicUsize::new(usize::MAX)),
    };
    let (count, seen, most, refuse_past) = (
        upstream.connections.clone(),
        upstream.versions.clone(),
        upstream.most_at_once.clone(),
        upstream.refuse_past.clone(),
    );
    let held = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            if count.fetch_add(1, Ordering::SeqCst) >= refuse_past.load(Ordering::SeqCst) {
                drop(tcp);
                continue;
            }
            let (seen, most, held) = (seen.clone(), most.clone(), held.clone());
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                let (seen, most, held) = (seen.clone(), most.clone(), held.clone());
                async move {
                    seen.lock().expect("lock").push(request.version());
                    most.fetch_max(held.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    held.fetch_sub(1, Ordering::SeqCst);
                    let body = http_body_util::Full::new(bytes::Bytes::from_static(
                        br#"{"error":false,"reason":"resolved","data":{"count":7}}"#,
                    ));
                    Ok::<_, std::convert::Infallible>(http::Response::new(body))
                }
            });
            let mut builder =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
            builder.max_concurrent_streams(max_streams);
            tokio::spawn(builder.serve_connection(hyper_util::rt::TokioIo::new(tcp), service));
        }
    });
    upstream
}

/// A gateway whose calls to `base` go over HTTP/2 (h2c), with no budget of its own in the way.
async fn over_h2c(base: &str) -> std::sync::Arc<TestApp> {
    over_h2c_with(base, |_| {}).await
}

/// `over_h2c`, with `tune` applied to the configuration last.
async fn over_h2c_with(
    base: &str,
    tune: impl FnOnce(&mut crisp_gateway::app::config::Config),
) -> std::sync::Arc<TestApp> {
    std::sync::Arc::new(
        TestApp::spawn_with(engines()[0], |c| {
            c.upstream = base.to_owned();
            c.upstream_http = crisp_gateway::forward::UpstreamHttp::Http2;
            c.account_max_concurrency = 0;
            c.account_rate_limit = 0.0;
            c.key_rate_limit = 0.0;
            tune(c);
        })
        .await,
    )
}

#[tokio::test]
async fn with_http2_calls_in_flight_share_a_few_connections() {
    const CALLS: usize = 40;
    let upstream = h2c_upstream(Duration::from_millis(300), None).await;
    let app = over_h2c(&upstream.base).await;
    for reply in app.calls_at_once(CALLS, "count/visitors", "{}").await {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
    }
    let versions = upstream.versions.lock().expect("lock").clone();
    assert_eq!(versions.len(), CALLS);
    assert!(versions.iter().all(|v| *v == http::Version::HTTP_2));
    // Streams on a shared connection: never a connection per call.
    let opened = upstream
        .connections
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=4).contains(&opened),
        "{CALLS} calls held at once opened {opened} HTTP/2 connections"
    );
}

/// A server that allows few streams per connection does not make calls wait in line: once the
/// open connections are at the cap, the next call opens another, and every call is held by
/// the upstream at the same time.
#[tokio::test]
async fn with_http2_calls_past_the_servers_stream_cap_go_on_more_connections() {
    use std::sync::atomic::Ordering;
    const CALLS: usize = 24;
    const CAP: u32 = 4;
    let delay = Duration::from_millis(600);
    let upstream = h2c_upstream(delay, Some(CAP)).await;
    let app = over_h2c(&upstream.base).await;
    let started = std::time::Instant::now();
    for reply in app.calls_at_once(CALLS, "count/visitors", "{}").await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let took = started.elapsed();
    assert_eq!(upstream.most_at_once.load(Ordering::SeqCst), CALLS);
    // In line behind one connection's cap, the calls would have taken six delays.
    assert!(took < delay * 2, "{CALLS} calls took {took:?}");
    let opened = upstream.connections.load(Ordering::SeqCst);
    assert!(
        (CALLS / CAP as usize..=CALLS / CAP as usize + 2).contains(&opened),
        "{CALLS} calls with {CAP} streams per connection opened {opened} connections"
    );
}

/// A connection that cannot be opened while others are open fails no call, not even a write
/// sent at most once: the call that tried to open it waits for room on the open ones, as the
/// calls waiting beside it do.
#[tokio::test]
async fn with_http2_a_failed_open_beside_open_connections_fails_no_call() {
    use std::sync::atomic::Ordering;
    const CALLS: usize = 6;
    let delay = Duration::from_millis(300);
    let upstream = h2c_upstream(delay, Some(2)).await;
    upstream.refuse_past.store(1, Ordering::SeqCst);
    let app = over_h2c(&upstream.base).await;
    let started = std::time::Instant::now();
    for reply in app
        .calls_at_once(CALLS, "create/new/conversation", "{}")
        .await
    {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Two at a time on the one connection the upstream kept open.
    assert!(
        started.elapsed() >= delay * 3,
        "{:?}: more than two calls at once",
        started.elapsed()
    );
    assert!(
        upstream.connections.load(Ordering::SeqCst) >= 2,
        "no second open was tried"
    );
    assert_eq!(upstream.most_at_once.load(Ordering::SeqCst), 2);
}

/// A call that finds every stream taken, and no connection it can open, waits no longer than
/// a connection may take to open: then it has certainly not left, so even a write without
/// `Idempotency-Key` goes again, rather than run into its attempt's time limit.
#[tokio::test]
async fn with_http2_a_call_waiting_for_room_gives_up_unsent_before_its_time_limit() {
    use std::sync::atomic::Ordering;
    // One stream, on the one connection the upstream keeps; each call held 1.2 s. The attempt
    // may take 2 s, a connection 1 s: the second write waits 1 s, goes again, and takes the
    // stream the first gives back; waiting all along, it would have timed out at 2 s.
    let upstream = h2c_upstream(Duration::from_millis(1200), Some(1)).await;
    upstream.refuse_past.store(1, Ordering::SeqCst);
    let app = over_h2c_with(&upstream.base, |c| {
        c.upstream_timeout = Duration::from_secs(2)
    })
    .await;
    for reply in app.calls_at_once(2, "create/new/conversation", "{}").await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(
        upstream.versions.lock().expect("lock").len(),
        2,
        "each write sent once"
    );
}

/// A gateway speaking HTTP/2 (h2c) to the upstream at `addr`.
async fn over_http2(addr: std::net::SocketAddr) -> TestApp {
    TestApp::spawn_with(engines()[0], |c| {
        c.upstream = format!("http://{addr}/v1");
        c.upstream_http = crisp_gateway::forward::UpstreamHttp::Http2;
    })
    .await
}

/// Over HTTP/2 the gateway holds its connections to Crisp itself: one that Crisp closed (here,
/// every connection is dropped 150 ms after it opens) is opened again by the next call on it,
/// and no call fails for it.
#[tokio::test]
async fn with_http2_a_connection_the_upstream_closed_is_opened_again() {
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let opened = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = opened.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let service = hyper::service::service_fn(|_: http::Request<_>| async {
                let body = http_body_util::Full::new(bytes::Bytes::from_static(
                    br#"{"error":false,"reason":"resolved","data":{"count":7}}"#,
                ));
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            let connection =
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            tokio::spawn(tokio::time::timeout(Duration::from_millis(150), connection));
        }
    });
    let app = over_http2(addr).await;
    // Twice round the connections the gateway keeps, each call after the last one closed.
    for _ in 0..8 {
        let reply = app.call("count/visitors", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(opened.load(Ordering::SeqCst), 8);
}

/// Over HTTP/2 the gateway drives its streams itself (`forward::lanes`): a request body goes
/// out whole, and an answer larger than a stream's flow-control window comes back whole, the
/// window handed back to Crisp as the answer is read.
#[tokio::test]
async fn with_http2_a_request_body_and_an_answer_larger_than_the_window_cross_whole() {
    use http_body_util::BodyExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    // Past the 2 MiB the gateway lets one stream receive before it reads.
    let blob = "b".repeat(3 << 20);
    let answer_blob = blob.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let blob = answer_blob.clone();
            let service = hyper::service::service_fn(
                move |request: http::Request<hyper::body::Incoming>| {
                    let blob = blob.clone();
                    async move {
                        let body = request.into_body().collect().await?.to_bytes();
                        let sent: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let content = sent["content"].as_str().map_or(0, str::len);
                        let answer = format!(
                            r#"{{"error":false,"reason":"dispatched","data":{{"content":{content},"blob":"{blob}"}}}}"#
                        );
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(answer),
                        )))
                    }
                },
            );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            );
        }
    });
    let app = over_http2(addr).await;
    let content = "c".repeat(300 << 10);
    let body = json!({
        "sessionID": "session_h2",
        "body": {"type": "text", "from": "operator", "origin": "chat", "content": content},
    });
    let reply = app
        .call("send/message/in/conversation", &body.to_string())
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        &reply.text[..reply.text.len().min(300)]
    );
    let result = &reply.json()["result"];
    assert_eq!(result["content"], content.len());
    assert_eq!(result["blob"].as_str().map(str::len), Some(blob.len()));
}

/// A stream Crisp refuses with REFUSED_STREAM was not acted on (RFC 9113, section 8.7), so
/// even a write is sent again, and the caller sees only the answer to the second.
#[tokio::test]
async fn with_http2_a_refused_stream_is_sent_again_even_for_a_write() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let streams = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = streams.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(mut connection) = h2::server::handshake(tcp).await else {
                    return;
                };
                while let Some(Ok((_request, mut respond))) = connection.accept().await {
                    if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    let head = http::Response::builder()
                        .header("content-type", "application/json")
                        .body(())
                        .expect("head");
                    let Ok(mut body) = respond.send_response(head, false) else {
                        continue;
                    };
                    let _ = body.send_data(
                        bytes::Bytes::from_static(
                            br#"{"error":false,"reason":"dispatched","data":{"fingerprint":7}}"#,
                        ),
                        true,
                    );
                }
            });
        }
    });
    let app = over_http2(addr).await;
    let reply = app
        .call(
            "send/message/in/conversation",
            r#"{"sessionID":"session_h2","body":{"type":"text","from":"operator","origin":"chat","content":"hello"}}"#,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["result"]["fingerprint"], 7, "{}", reply.text);
    assert_eq!(streams.load(Ordering::SeqCst), 2);
}

/// An HTTP/1.1 upstream that counts the connections it accepted and records each request's
/// `Host`. Each connection is dropped `lifetime` after it opens, if one is given; the first
/// request is answered with `first_size` bytes of `data` (for an answer over the cap), the
/// others with a small envelope.
struct Http1Upstream {
    base: String,
    addr: std::net::SocketAddr,
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    hosts: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn http1_upstream(lifetime: Option<Duration>, first_size: Option<usize>) -> Http1Upstream {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let opened = std::sync::Arc::new(AtomicUsize::new(0));
    let hosts = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (count, seen) = (opened.clone(), hosts.clone());
    let requests = std::sync::Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (seen, requests) = (seen.clone(), requests.clone());
            let service = hyper::service::service_fn(move |request: http::Request<_>| {
                let host = request
                    .headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push(host);
                let body = match first_size {
                    Some(size) if requests.fetch_add(1, Ordering::SeqCst) == 0 => format!(
                        r#"{{"error":false,"reason":"resolved","data":"{}"}}"#,
                        "x".repeat(size)
                    ),
                    _ => r#"{"error":false,"reason":"resolved","data":{"count":7}}"#.to_owned(),
                };
                async move {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from(body)),
                    ))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tcp), service);
            match lifetime {
                Some(lifetime) => {
                    tokio::spawn(tokio::time::timeout(lifetime, connection));
                }
                None => {
                    tokio::spawn(connection);
                }
            }
        }
    });
    Http1Upstream {
        base: format!("http://{addr}/v1"),
        addr,
        opened,
        hosts,
    }
}

/// Over plain HTTP the gateway keeps its HTTP/1.1 connections to Crisp: calls one after
/// another go on one connection, each naming Crisp's host.
#[tokio::test]
async fn over_http1_calls_one_after_another_share_one_connection() {
    let upstream = http1_upstream(None, None).await;
    let app = TestApp::spawn_with(engines()[0], |c| c.upstream = upstream.base.clone()).await;
    for _ in 0..5 {
        let reply = app.call("count/visitors", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
    }
    let opened = upstream.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 1, "five calls in a row opened {opened} connections");
    let hosts = upstream.hosts.lock().expect("lock").clone();
    assert_eq!(hosts, vec![upstream.addr.to_string(); 5]);
}

/// A kept connection that Crisp closed (here, every connection is dropped 150 ms after it
/// opens) is replaced by the next call, and no call fails for it.
#[tokio::test]
async fn over_http1_a_connection_the_upstream_closed_is_opened_again() {
    let upstream = http1_upstream(Some(Duration::from_millis(150)), None).await;
    let app = TestApp::spawn_with(engines()[0], |c| c.upstream = upstream.base.clone()).await;
    for _ in 0..4 {
        let reply = app.call("count/visitors", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let opened = upstream.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 4);
}

/// A connection whose answer was not read to its end (over `upstream_max_response`) is
/// closed, not kept: the next call opens a new one and gets its whole answer, and the call
/// after that keeps using it.
#[tokio::test]
async fn over_http1_a_connection_left_mid_answer_is_not_kept() {
    const CAP: usize = 16 * 1024;
    let upstream = http1_upstream(None, Some(CAP * 4)).await;
    let app = TestApp::spawn_with(engines()[0], |c| {
        c.upstream = upstream.base.clone();
        c.upstream_max_response = CAP;
    })
    .await;
    let reply = app.call("count/visitors", "{}").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.reason(), "crisp_response_too_large");
    for _ in 0..2 {
        let reply = app.call("count/visitors", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
    }
    let opened = upstream.opened.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(opened, 2);
}
