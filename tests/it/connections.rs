//! Connection hygiene over real TCP: idle and slow-header connections are closed, a capped
//! listener still serves new clients by evicting an idle connection, a refused oversized body
//! is answered (not reset) even for a client that writes it all before reading, and the
//! metrics and sandbox listeners close idle connections too.
//!
//! These transport behaviours do not touch the database except for the real call, so only
//! that test runs on every engine.

use std::time::Duration;

use crisp_gateway::http::server::ConnectionLimits;
use crisp_gateway::sandbox::{self, SandboxConfig};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{Cli, Engine, TestApp, TestDb, engines, eventually, get};

/// How long a test waits for the server to close a connection before calling it a failure:
/// many times the header timeout the tests set, so a slow machine does not fail them.
const BOUND: Duration = Duration::from_secs(20);
const SHORT: Duration = Duration::from_secs(1);

/// Reads until the server closes the connection (end of stream or reset) and returns what it
/// sent; panics if it is still open after `BOUND`.
async fn closed_by_server(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {BOUND:?}"
    );
    seen
}

#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| c.header_timeout = SHORT).await;
    let mut idle = TcpStream::connect(app.addr).await.expect("connect");
    let sent = closed_by_server(&mut idle).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_keep_alive_connection_with_no_next_request_is_closed_too() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| c.header_timeout = SHORT).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .expect("write");
    let sent = closed_by_server(&mut conn).await;
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 200"), "{sent}");
}

#[tokio::test]
async fn a_slowloris_connection_trickling_its_headers_is_closed() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| c.header_timeout = SHORT).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n")
        .await
        .expect("write");
    let sent = trickled_until_closed(conn).await;
    assert!(
        !sent.contains(" 200 "),
        "the trickled request was served: {sent}"
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// Sends a header byte every 100 ms, never finishing the head, until the server closes the
/// connection, and returns what it sent; panics if it is still open after `BOUND`.
async fn trickled_until_closed(conn: TcpStream) -> String {
    let (mut reader, mut writer) = conn.into_split();
    let trickle = async move {
        for _ in 0..BOUND.as_millis() / 100 {
            if writer.write_all(b"X").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the server kept a trickling connection open for {BOUND:?}");
    };
    let closed = async move {
        let mut seen = Vec::new();
        let _ = reader.read_to_end(&mut seen).await;
        seen
    };
    let sent = tokio::select! {
        () = trickle => Vec::new(),
        seen = closed => seen,
    };
    String::from_utf8_lossy(&sent).into_owned()
}

#[tokio::test]
async fn a_keep_alive_connection_trickling_its_next_head_is_closed() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| c.header_timeout = SHORT).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .expect("write");
    let mut first = vec![0; 4096];
    let n = conn.read(&mut first).await.expect("the first answer");
    let first = String::from_utf8_lossy(&first[..n]).into_owned();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    // The next request's head, never finished.
    conn.write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    let sent = trickled_until_closed(conn).await;
    assert!(
        !sent.contains(" 200 "),
        "the trickled request was served: {sent}"
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}

#[tokio::test]
async fn a_call_in_flight_when_the_server_stops_is_answered_before_it_exits() {
    let db = TestDb::new(Engine::Sqlite).await;
    let cli = Cli::for_db(&db, Engine::Sqlite).await;
    let key = cli
        .workspace_with_key("acme", ("ident-stop", "web-stop"), "crisp-key-stop")
        .await;
    let crisp = crate::helpers::FakeCrisp::start().await;
    crisp.script(
        crate::helpers::Answer::ok(r#"[{"session_id":"held"}]"#)
            .delayed(Duration::from_millis(1500)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let server = cli
        .serve(
            &[("CRISP_GATEWAY_UPSTREAM", &crisp.base)],
            &dir.path().join("serve.log"),
        )
        .await;
    let (http, url) = (
        server.http.clone(),
        server.url("/api/crisp/list/conversations"),
    );
    let held =
        tokio::spawn(async move { crate::helpers::post_json(&http, &url, Some(&key), "{}").await });
    let arrived = eventually(BOUND, || async { !crisp.received().is_empty() }).await;
    assert!(arrived, "the call never reached Crisp");
    // SIGTERM while Crisp still holds the call: the server waits for it, then exits cleanly.
    server.stop().await;
    let reply = held.await.expect("the caller's task");
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["result"][0]["session_id"], "held");
}

#[tokio::test]
async fn at_the_connection_cap_an_idle_connection_is_evicted_for_a_new_client() {
    const CAP: usize = 20;
    for engine in engines() {
        let app = TestApp::spawn_with(engine, |c| {
            c.max_connections = CAP;
            // Long enough that no idle connection times out during the test.
            c.header_timeout = Duration::from_secs(600);
        })
        .await;
        let mut idle = Vec::new();
        for _ in 0..CAP {
            idle.push(TcpStream::connect(app.addr).await.expect("connect"));
        }
        // Watch every idle connection for being closed by the server.
        let (closed_tx, mut closed_rx) = tokio::sync::mpsc::unbounded_channel();
        for (index, mut stream) in idle.into_iter().enumerate() {
            let closed_tx = closed_tx.clone();
            tokio::spawn(async move {
                let mut buf = [0; 64];
                if let Ok(0) | Err(_) = stream.read(&mut buf).await {
                    let _ = closed_tx.send(index);
                }
            });
        }

        let health = get(&reqwest::Client::new(), &app.url("/healthz")).await;
        assert_eq!(health.status, 200, "{}", health.text);
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);

        let evicted = tokio::time::timeout(BOUND, closed_rx.recv()).await;
        assert!(
            matches!(evicted, Ok(Some(_))),
            "no idle connection was closed to make room"
        );
    }
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_new_one_is_closed_at_once() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| {
        c.max_connections = 1;
        c.header_timeout = Duration::from_secs(600);
    })
    .await;
    app.crisp
        .script(crate::helpers::Answer::ok("[]").delayed(Duration::from_secs(3)));
    let slow = tokio::spawn({
        let http = reqwest::Client::new();
        let url = app.url("/api/crisp/list/conversations");
        let key = app.key.clone();
        async move { crate::helpers::post_json(&http, &url, Some(&key), "{}").await }
    });
    // The slow call holds the only slot once the fake Crisp has received it.
    let crisp = app.crisp.clone();
    assert!(eventually(BOUND, || async { !crisp.received().is_empty() }).await);
    let mut refused = TcpStream::connect(app.addr).await.expect("connect");
    let sent = closed_by_server(&mut refused).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    let reply = slow.await.expect("slow call");
    assert_eq!(
        reply.status, 200,
        "the busy call was not cut: {}",
        reply.text
    );
}

/// A raw request whose whole body is written before the answer is read, as Python's urllib
/// does; returns the raw answer. The send buffer is kept small, as over a real network, so
/// that the body is still being written when the answer comes (on loopback the kernel's
/// buffers would otherwise take the whole body at once).
async fn send_all_then_read(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> String {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_send_buffer_size(64 << 10).expect("send buffer");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(body)
        .await
        .expect("the whole body is taken, not reset");
    let mut answer = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut answer))
        .await
        .expect("the answer ends")
        .expect("the answer is read, not reset");
    String::from_utf8(answer).expect("utf-8 answer")
}

fn assert_payload_too_large(answer: &str) {
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 413 "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nconnection: close"),
        "{head}"
    );
    let json: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["ok"], false, "{json}");
    assert_eq!(json["error"]["status"], 413, "{json}");
    assert_eq!(json["error"]["reason"], "payload_too_large", "{json}");
    assert!(
        json["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("1048576")),
        "{json}"
    );
}

#[tokio::test]
async fn a_client_that_writes_a_whole_oversized_body_before_reading_gets_the_413() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let body = vec![b'a'; 2 << 20];
    for _ in 0..5 {
        let head = format!(
            "POST /api/crisp/list/conversations HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            app.key,
            body.len()
        );
        assert_payload_too_large(&send_all_then_read(app.addr, &head, &body).await);
    }
    // Without a length the limit is found while reading; the rest is drained all the same.
    let mut chunked = format!("{:x}\r\n", body.len()).into_bytes();
    chunked.extend_from_slice(&body);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let head = format!(
        "POST /api/crisp/list/conversations HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        app.key
    );
    assert_payload_too_large(&send_all_then_read(app.addr, &head, &chunked).await);
    assert!(
        app.crisp.received().is_empty(),
        "nothing oversized reached Crisp"
    );
    assert_eq!(app.get("/healthz").await.status, 200);
}

/// hyper's HTTP/1.1 read buffer starts at 1 KiB in this build (vendor/hyper): a request with
/// a head and a body many times that size, and an answer many times that size, all cross whole,
/// both between the caller and the gateway and between the gateway and Crisp.
#[tokio::test]
async fn a_request_and_an_answer_many_times_the_first_read_buffer_cross_whole() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let content = "c".repeat(300 << 10);
    let blob = "b".repeat(700 << 10);
    app.crisp.script(crate::helpers::Answer::ok(&format!(
        r#"{{"fingerprint":1,"blob":"{blob}"}}"#
    )));
    let reply = app
        .http
        .post(app.url("/api/crisp/send/message/in/conversation"))
        .bearer_auth(&app.key)
        .header("x-padding", "p".repeat(6 << 10))
        .header("content-type", "application/json")
        .body(
            serde_json::json!({
                "sessionID": "session_big",
                "body": {"type": "text", "from": "operator", "origin": "chat", "content": content},
            })
            .to_string(),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(reply.status(), 200);
    let answer: Value =
        serde_json::from_slice(&reply.bytes().await.expect("answer")).expect("JSON answer");
    assert_eq!(
        answer["result"]["blob"].as_str().map(str::len),
        Some(blob.len())
    );
    let received = app.crisp.take_received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].json()["content"].as_str(),
        Some(content.as_str())
    );
}

#[tokio::test]
async fn the_sandbox_listener_closes_an_idle_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let limits = ConnectionLimits {
        header_timeout: SHORT,
        ..ConnectionLimits::default()
    };
    let _sandbox =
        sandbox::spawn_with_limits(listener, SandboxConfig::default(), limits).expect("spawn");
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    let sent = closed_by_server(&mut idle).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
}

#[tokio::test]
async fn the_metrics_listener_closes_an_idle_connection() {
    // A real serve process with the metrics listener on port 0, found again from its log: a
    // free port picked here could be taken before the gateway binds it.
    let db = TestDb::new(Engine::Sqlite).await;
    let cli = Cli::for_db(&db, Engine::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = cli
        .serve(
            &[
                ("CRISP_GATEWAY_METRICS_LISTEN", "127.0.0.1:0"),
                ("CRISP_GATEWAY_HEADER_TIMEOUT", "1s"),
            ],
            &dir.path().join("serve.log"),
        )
        .await;
    let metrics_addr = server.listener("metrics listening");
    // A connection per request: the server closes a kept-alive one once the header timeout
    // passes, which this test waits out, and a pooled one could be picked as it closes.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let url = format!("http://{metrics_addr}/metrics");
    let up = eventually(BOUND, || async {
        http.get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(up, "the metrics listener did not answer");
    let mut idle = TcpStream::connect(metrics_addr).await.expect("connect");
    let sent = closed_by_server(&mut idle).await;
    assert!(sent.is_empty(), "{}", String::from_utf8_lossy(&sent));
    let metrics = get(&http, &url).await.text;
    assert!(
        metrics.contains(
            "crisp_gateway_connections_closed_total{listener=\"metrics\",reason=\"header_timeout\"}"
        ),
        "{metrics}"
    );
    assert_eq!(get(&http, &server.url("/healthz")).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn an_http2_connection_with_no_open_stream_is_closed_after_the_idle_timeout() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| c.idle_timeout = SHORT).await;
    let tcp = TcpStream::connect(app.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    let mut connection = tokio::spawn(connection);
    let request = axum::http::Request::get(format!("http://{}/healthz", app.addr))
        .body(axum::body::Body::empty())
        .expect("request");
    let response = sender.send_request(request).await.expect("h2c answer");
    assert_eq!(response.status(), 200);
    drop(response);
    let closed = tokio::time::timeout(BOUND, &mut connection).await;
    assert!(
        closed.is_ok(),
        "the server kept an idle HTTP/2 connection open for {BOUND:?}"
    );
}

#[tokio::test]
async fn handlers_see_the_peer_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let router =
        axum::Router::new().route(
            "/peer",
            axum::routing::get(
                |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<
                    std::net::SocketAddr,
                >| async move { peer.to_string() },
            ),
        );
    tokio::spawn(crisp_gateway::http::server::serve(
        listener,
        router,
        ConnectionLimits::default(),
        "test",
        std::future::pending(),
    ));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let local = tcp.local_addr().expect("local addr");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = axum::http::Request::get("/peer")
        .header("host", "gw")
        .body(axum::body::Body::empty())
        .expect("request");
    let response = sender.send_request(request).await.expect("answer");
    let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), 1024)
        .await
        .expect("body");
    assert_eq!(body, local.to_string().as_bytes());
}

/// The protocol is told by peeking at the first bytes: a request whose first bytes arrive on
/// their own (`P`, then the rest of a `POST`) is still read whole as HTTP/1.1.
#[tokio::test]
async fn a_request_whose_first_byte_arrives_alone_is_served() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    conn.write_all(b"P").await.expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.write_all(
        b"OST /api/crisp/list/conversations HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nConnection: close\r\n\r\n{}",
    )
    .await
    .expect("write");
    let sent = closed_by_server(&mut conn).await;
    let sent = String::from_utf8_lossy(&sent);
    assert!(sent.starts_with("HTTP/1.1 401"), "{sent}");
    assert!(sent.contains(r#""reason":"#), "{sent}");
}

/// A request head larger than hyper's first read buffer (a 60 KB path) is still read and
/// answered with the JSON error, not refused by the HTTP layer.
#[tokio::test]
async fn a_large_request_head_gets_the_json_error() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let mut conn = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /api/crisp/{} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}",
        "a".repeat(60_000),
        app.key
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let sent = closed_by_server(&mut conn).await;
    let sent = String::from_utf8_lossy(&sent);
    assert!(
        sent.starts_with("HTTP/1.1 404"),
        "{}",
        &sent[..sent.len().min(300)]
    );
    assert!(
        sent.contains("unknown_action"),
        "{}",
        &sent[..sent.len().min(300)]
    );
}

#[tokio::test]
async fn a_body_that_trickles_past_the_deadline_gets_the_gateways_504() {
    let app = TestApp::spawn_with(Engine::Sqlite, |c| {
        c.request_timeout = Duration::from_millis(600);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /api/crisp/list/conversations HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 40\r\n\r\n{{\"websiteID\":",
        app.key
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let started = std::time::Instant::now();
    let mut answer = vec![0; 4096];
    let n = tokio::time::timeout(BOUND, stream.read(&mut answer))
        .await
        .expect("an answer before the bound")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    assert!(head.starts_with("HTTP/1.1 504 "), "{head}");
    let json: Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["error"]["reason"], "gateway_timeout", "{json}");
    assert_eq!(json["tool"], "crisp_list_conversations", "{json}");
    // The deadline, not the header or idle timeout, ended the wait.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(app.crisp.received().is_empty(), "nothing reached Crisp");
}
