//! Crisp over HTTPS, as in production: `upstream_http = "auto"` speaks the version the TLS
//! handshake picks, follows Crisp when that changes, and trusts a CA from `upstream_ca_file`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::helpers::{TestApp, engines};

/// A Crisp over TLS with a certificate from its own CA. Each request is answered
/// `{"count":7}` and the HTTP version it came in is noted; `http2` says whether the next
/// connections may pick HTTP/2, and `lifetime` ends each connection that long after it opens.
struct TlsCrisp {
    addr: SocketAddr,
    /// The CA's certificate, as `upstream_ca_file` reads it.
    ca_file: tempfile::NamedTempFile,
    http2: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    seen: Arc<parking_lot::Mutex<Vec<http::Version>>>,
}

impl TlsCrisp {
    async fn start(http2: bool, lifetime: Option<Duration>) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let key = KeyPair::generate().expect("key");
        let certificate = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("certificate");
        let ca_file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(ca_file.path(), ca.pem()).expect("write CA");

        let acceptor = |alpn: &[&[u8]]| {
            let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::aws_lc_rs::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .expect("server config");
            config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        };
        let with_http2 = acceptor(&[b"h2", b"http/1.1"]);
        let http1_only = acceptor(&[b"http/1.1"]);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let http2 = Arc::new(AtomicBool::new(http2));
        let opened = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (offers, count, noted) = (http2.clone(), opened.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = if offers.load(Ordering::SeqCst) {
                    with_http2.clone()
                } else {
                    http1_only.clone()
                };
                let noted = noted.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let picked_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    let service = hyper::service::service_fn(move |request: http::Request<_>| {
                        noted.lock().push(request.version());
                        async {
                            let body = http_body_util::Full::new(bytes::Bytes::from_static(
                                br#"{"error":false,"reason":"resolved","data":{"count":7}}"#,
                            ));
                            Ok::<_, std::convert::Infallible>(http::Response::new(body))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let served = async move {
                        if picked_h2 {
                            let _ = hyper::server::conn::http2::Builder::new(
                                hyper_util::rt::TokioExecutor::new(),
                            )
                            .serve_connection(io, service)
                            .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(io, service)
                                .await;
                        }
                    };
                    match lifetime {
                        Some(lifetime) => drop(tokio::time::timeout(lifetime, served).await),
                        None => served.await,
                    }
                });
            }
        });
        Self {
            addr,
            ca_file,
            http2,
            opened,
            seen,
        }
    }

    /// A gateway on SQLite whose Crisp is this one, its CA trusted.
    async fn gateway(&self) -> TestApp {
        let (addr, ca_file) = (self.addr, self.ca_file.path().to_owned());
        TestApp::spawn_with(engines()[0], |c| {
            c.upstream = format!("https://{addr}/v1");
            c.upstream_ca_file = Some(ca_file);
        })
        .await
    }

    /// The versions of the requests seen since the last look.
    fn versions(&self) -> Vec<http::Version> {
        std::mem::take(&mut *self.seen.lock())
    }
}

const MESSAGE: &str =
    r#"{"sessionID":"s","body":{"type":"text","from":"operator","origin":"chat","content":"x"}}"#;

/// Crisp offers HTTP/2: calls in flight together are streams on the few connections the
/// gateway holds, not a connection each.
#[tokio::test]
async fn over_https_calls_are_http2_streams_when_crisp_picks_http2() {
    let crisp = TlsCrisp::start(true, None).await;
    let app = Arc::new(crisp.gateway().await);
    for reply in app.calls_at_once(24, "count/visitors", "{}").await {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
    }
    let versions = crisp.versions();
    assert_eq!(versions.len(), 24);
    assert!(
        versions.iter().all(|v| *v == http::Version::HTTP_2),
        "{versions:?}"
    );
    let opened = crisp.opened.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&opened),
        "{opened} connections for 24 calls"
    );
}

/// Crisp offers HTTP/1.1 only: calls go over HTTP/1.1 on a connection kept between them. The
/// first connection, opened to learn what Crisp picks, is the only one wasted.
#[tokio::test]
async fn over_https_calls_are_http1_on_kept_connections_when_crisp_has_no_http2() {
    let crisp = TlsCrisp::start(false, None).await;
    let app = crisp.gateway().await;
    for _ in 0..4 {
        let reply = app.call("count/visitors", "{}").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["result"]["count"], 7, "{}", reply.text);
    }
    let reply = app.call("send/message/in/conversation", MESSAGE).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(crisp.versions(), vec![http::Version::HTTP_11; 5]);
    assert_eq!(crisp.opened.load(Ordering::SeqCst), 2);
}

/// Crisp stops offering HTTP/2, then offers it again (every connection here ends 150 ms after
/// it opens, so each step opens new ones): a write, which is never retried without an
/// idempotency key, still goes through once each time, in the version Crisp now picks.
#[tokio::test]
async fn over_https_the_gateway_follows_crisp_when_it_changes_version() {
    let crisp = TlsCrisp::start(true, Some(Duration::from_millis(150))).await;
    let app = crisp.gateway().await;
    let reply = app.call("send/message/in/conversation", MESSAGE).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(crisp.versions(), vec![http::Version::HTTP_2]);

    for (http2, version) in [
        (false, http::Version::HTTP_11),
        (true, http::Version::HTTP_2),
    ] {
        crisp.http2.store(http2, Ordering::SeqCst);
        // Long past the last connection's end, so the gateway has seen it close.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let reply = app.call("send/message/in/conversation", MESSAGE).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(
            crisp.versions(),
            vec![version],
            "Crisp offers HTTP/2: {http2}"
        );
    }
}

/// Without its CA in `upstream_ca_file`, a Crisp whose certificate the system does not trust
/// is refused before anything is sent, once (another try would meet the same certificate), and
/// the caller is told that retrying will not help and what its operator must check.
#[tokio::test]
async fn over_https_an_untrusted_certificate_is_refused_and_named() {
    let crisp = TlsCrisp::start(true, None).await;
    let addr = crisp.addr;
    let app = TestApp::spawn_with(engines()[0], |c| {
        c.upstream = format!("https://{addr}/v1");
    })
    .await;
    let reply = app.call("count/visitors", "{}").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.reason(), "crisp_unreachable");
    let message = reply.message();
    assert!(
        message.contains("does not trust the TLS certificate"),
        "{message}"
    );
    assert!(
        !message.contains("UnknownIssuer"),
        "the detail is the log's: {message}"
    );
    assert!(message.contains("upstream_ca_file"), "{message}");
    assert!(crisp.versions().is_empty());
    assert_eq!(crisp.opened.load(Ordering::SeqCst), 1, "not retried");
}

/// `upstream_http = "http2"` against a Crisp whose handshake picks HTTP/1.1: the call fails at
/// once, after one connection (another would be picked the same way), and the caller is told
/// that retrying will not help and which setting its operator must change.
#[tokio::test]
async fn over_https_a_forced_version_crisp_does_not_pick_is_refused_once_and_named() {
    let crisp = TlsCrisp::start(false, None).await;
    let (addr, ca_file) = (crisp.addr, crisp.ca_file.path().to_owned());
    let app = TestApp::spawn_with(engines()[0], |c| {
        c.upstream = format!("https://{addr}/v1");
        c.upstream_ca_file = Some(ca_file);
        c.upstream_http = crisp_gateway::forward::UpstreamHttp::Http2;
    })
    .await;
    let reply = app.call("count/visitors", "{}").await;
    assert_eq!(reply.status, 502, "{}", reply.text);
    assert_eq!(reply.reason(), "crisp_unreachable");
    let message = reply.message();
    assert!(message.contains("picked an HTTP version"), "{message}");
    assert!(message.contains("upstream_http = \"auto\""), "{message}");
    assert!(!message.contains("retry later"), "{message}");
    assert!(crisp.versions().is_empty(), "nothing was sent");
    assert_eq!(crisp.opened.load(Ordering::SeqCst), 1, "not retried");
}

/// A Crisp that accepts connections and never completes the TLS handshake: a connection
/// gives up after half an attempt's time, and the calls that waited behind it fail with its
/// error at once, a 502 each, rather than trying one after another until their deadlines
/// pass (a 504 each, the last ones much later). One connection is tried, with `auto` and with
/// `http2` alike.
#[tokio::test]
async fn over_https_a_handshake_that_never_ends_fails_every_waiting_call_at_once() {
    use crisp_gateway::forward::UpstreamHttp;
    for http in [UpstreamHttp::Auto, UpstreamHttp::Http2] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let mut silent = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                silent.push(tcp);
            }
        });
        let app = Arc::new(
            TestApp::spawn_with(engines()[0], |c| {
                c.upstream = format!("https://{addr}/v1");
                c.upstream_http = http;
                c.upstream_timeout = Duration::from_secs(2);
                c.retry_max_attempts = 1;
            })
            .await,
        );
        let started = std::time::Instant::now();
        for reply in app.calls_at_once(12, "count/visitors", "{}").await {
            assert_eq!(reply.status, 502, "{http:?}: {}", reply.text);
            assert_eq!(reply.reason(), "crisp_unreachable", "{}", reply.text);
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1900),
            "{http:?}: took {took:?}"
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "{http:?}");
    }
}
