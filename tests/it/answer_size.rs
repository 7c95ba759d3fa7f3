//! Crisp's answer size is capped: a huge answer is refused with 502 `crisp_response_too_large`
//! after reading at most the cap, whether Crisp declares its length or streams it in chunks.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::Response;
use http_body::Frame;
use tokio::net::TcpListener;

use std::time::Duration;

use crisp_gateway::store::AuditFilter;

use crate::helpers::{TestApp, engines, eventually};

/// How a fake Crisp sends its answer.
#[derive(Clone, Copy)]
enum Shape {
    /// A valid Crisp envelope of about `n` bytes, streamed in chunks without a length.
    Chunked(usize),
    /// A body that never ends, declared with a Content-Length of a gigabyte.
    DeclaredHuge,
    /// A body that never ends, in chunks: only a cap on reading stops it.
    EndlessChunked,
}

/// An answer body that streams `remaining` bytes (or forever) in 8 KiB chunks.
struct Stream {
    prefix: Option<Bytes>,
    remaining: Option<usize>,
    suffix: Option<Bytes>,
}

impl http_body::Body for Stream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(prefix) = self.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let chunk = match &mut self.remaining {
            None => 8192,
            Some(0) => return Poll::Ready(self.suffix.take().map(|s| Ok(Frame::data(s)))),
            Some(left) => {
                let n = (*left).min(8192);
                *left -= n;
                n
            }
        };
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; chunk])))))
    }
}

struct Fake {
    shape: Shape,
    calls: AtomicUsize,
}

async fn answer(State(fake): State<Arc<Fake>>) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let (remaining, declared) = match fake.shape {
        Shape::Chunked(n) => (Some(n), None),
        Shape::DeclaredHuge => (None, Some(1u64 << 30)),
        Shape::EndlessChunked => (None, None),
    };
    let body = Stream {
        prefix: Some(Bytes::from_static(
            br#"{"error":false,"reason":"resolved","data":""#,
        )),
        remaining,
        suffix: Some(Bytes::from_static(br#""}"#)),
    };
    let mut response = Response::new(Body::new(body));
    response.headers_mut().insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    if let Some(length) = declared {
        response
            .headers_mut()
            .insert("content-length", axum::http::HeaderValue::from(length));
    }
    response
}

async fn fake_crisp(shape: Shape) -> (String, Arc<Fake>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let fake = Arc::new(Fake {
        shape,
        calls: AtomicUsize::new(0),
    });
    let router = Router::new().fallback(answer).with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (format!("http://{addr}/v1"), fake)
}

const CAP: usize = 64 * 1024;

#[tokio::test]
async fn answers_over_the_cap_are_refused_with_502_and_not_retried() {
    for engine in engines() {
        for (shape, name) in [
            (Shape::DeclaredHuge, "declared length"),
            (Shape::EndlessChunked, "endless chunks"),
            (Shape::Chunked(CAP + 1), "chunks just past the cap"),
        ] {
            let (base, fake) = fake_crisp(shape).await;
            let app = TestApp::spawn_with(engine, |c| {
                c.upstream = base;
                c.upstream_max_response = CAP;
            })
            .await;
            let reply = app.call("list/conversations", "{}").await;
            assert_eq!(reply.status, 502, "{name}: {}", reply.text);
            assert_eq!(reply.reason(), "crisp_response_too_large", "{name}");
            let message = reply.message();
            assert!(message.contains(&CAP.to_string()), "{name}: {message}");
            assert!(message.contains("per_page"), "{name}: {message}");
            // A GET is retried on faults; a too-large answer is not a fault a retry mends.
            assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "{name}: retried");
            let audited = eventually(Duration::from_secs(5), || async {
                let rows = app
                    .store
                    .list_audit(&AuditFilter {
                        limit: 10,
                        ..AuditFilter::default()
                    })
                    .await
                    .expect("audit");
                rows.iter().any(|r| {
                    r.reason.as_deref() == Some("crisp_response_too_large")
                        && r.status == 502
                        && r.upstream_status == Some(200)
                })
            })
            .await;
            assert!(audited, "{name}: audited with Crisp's own status");
        }
    }
}

#[tokio::test]
async fn answers_under_the_cap_pass_whether_chunked_or_not() {
    for engine in engines() {
        let (base, _fake) = fake_crisp(Shape::Chunked(CAP - 1024)).await;
        let app = TestApp::spawn_with(engine, |c| {
            c.upstream = base;
            c.upstream_max_response = CAP;
        })
        .await;
        let reply = app.call("list/conversations", "{}").await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            &reply.text[..200.min(reply.text.len())]
        );
        let data = reply.json()["result"].as_str().map(str::len);
        assert_eq!(data, Some(CAP - 1024));
    }
}
