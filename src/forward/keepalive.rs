//! HTTP/1.1 connections to Crisp that the gateway keeps open between calls, for
//! `upstream_http = "http1"`, and for `auto` over plain HTTP or when TLS picks HTTP/1.1: a call
//! takes the connection most recently given back, or opens one, and gives it back once
//! Crisp's answer is read whole.
//!
//! hyper-util's pooled client costs, on every call, a pool checkout and return keyed by a
//! hashed scheme and host, a boxed future of about 3 KiB held while Crisp answers, and a task
//! spawned to wait until the connection is ready again. A stack of hyper's own senders needs
//! none of them: one host, and the caller knows when the answer has been read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};

use super::transport::{Dialer, TransportError, Version, chain, not_sent, run_connection};

type Sender = SendRequest<Full<Bytes>>;

struct Idle {
    sender: Sender,
    since: Instant,
}

pub struct Keepalive {
    /// Most recently given back on top; so the oldest, at the bottom, are the ones to expire.
    idle: parking_lot::Mutex<Vec<Idle>>,
    dialer: Arc<Dialer>,
    idle_timeout: Duration,
}

/// A connection taken for one call. [`Lease::give_back`] once the answer has been read to its
/// end; dropped otherwise (an error, a timeout, an answer left unread), it closes the
/// connection, which could not carry another request.
pub struct Lease<'a> {
    keepalive: &'a Keepalive,
    sender: Sender,
}

impl Lease<'_> {
    pub fn give_back(self) {
        if !self.sender.is_closed() {
            self.keepalive.put(self.sender);
        }
    }
}

impl Keepalive {
    /// No count cap on idle connections: they are leftovers of calls in flight, which
    /// `max_concurrency` bounds, and `idle_timeout` ends them.
    pub fn new(dialer: Arc<Dialer>, idle_timeout: Duration) -> Self {
        Self {
            idle: parking_lot::Mutex::new(Vec::new()),
            dialer,
            idle_timeout,
        }
    }

    /// Sends the request `build` makes (its URI in origin form, its `Host` set) on an idle
    /// connection or a new one. It is built once a connection is in hand, so that it is not
    /// kept in the call's future, which is sized for its largest state and held while Crisp
    /// answers. A request an idle connection never took (Crisp had closed it) goes once
    /// more, on a fresh connection.
    pub async fn send(
        &self,
        build: impl FnOnce() -> Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease<'_>), TransportError> {
        let (mut sender, reused) = match self.take().await {
            Some(sender) => (sender, true),
            // Boxed: connecting (TCP, TLS, the handshake) is a large future, and inline it
            // would size every call's future, held while Crisp answers, for a rare step.
            None => (Box::pin(self.connect()).await?, false),
        };
        let request = match sender.try_send_request(build()).await {
            Ok(response) => return Ok((response, self.lease(sender))),
            Err(mut refused) => match refused.take_message() {
                Some(request) if reused => request,
                Some(_) => return Err(not_sent(refused.error())),
                None => return Err(TransportError::Broken(chain(refused.error()))),
            },
        };
        let mut sender = Box::pin(self.connect()).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok((response, self.lease(sender))),
            Err(refused) if refused.message().is_some() => Err(not_sent(refused.error())),
            Err(refused) => Err(TransportError::Broken(chain(refused.error()))),
        }
    }

    fn lease(&self, sender: Sender) -> Lease<'_> {
        Lease {
            keepalive: self,
            sender,
        }
    }

    /// The most recently given back connection that is still open and within the idle
    /// timeout; the others met on the way are dropped, which closes them.
    async fn take(&self) -> Option<Sender> {
        loop {
            let idle = self.idle.lock().pop()?;
            if idle.since.elapsed() >= self.idle_timeout {
                continue;
            }
            let mut sender = idle.sender;
            // Ready at once, unless its task is still finishing the last answer; an error is a
            // connection Crisp closed while it was idle.
            if std::future::poll_fn(|cx| sender.poll_ready(cx))
                .await
                .is_ok()
            {
                return Some(sender);
            }
        }
    }

    fn put(&self, sender: Sender) {
        let mut idle = self.idle.lock();
        let now = Instant::now();
        // Pushed in time order, so the expired ones are a prefix: dropped here, so a
        // connection no call takes any more does not stay open until Crisp closes it.
        let expired = idle.partition_point(|i| now.duration_since(i.since) >= self.idle_timeout);
        idle.drain(..expired);
        idle.push(Idle { sender, since: now });
    }

    async fn connect(&self) -> Result<Sender, TransportError> {
        let io = self.dialer.dial(Version::Http1).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| TransportError::Connect(chain(&e)))?;
        run_connection(connection, "HTTP/1.1");
        Ok(sender)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http::Uri;
    use http_body_util::BodyExt;
    use hyper_util::client::legacy::connect::HttpConnector;

    use super::*;

    /// A local HTTP/1.1 server answering `ok`; counts the connections opened and ended.
    async fn server() -> (Uri, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}/", listener.local_addr().expect("addr"));
        let (opened, ended) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (open, end) = (opened.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                open.fetch_add(1, Ordering::SeqCst);
                let end = end.clone();
                let service = hyper::service::service_fn(|_: Request<Incoming>| async {
                    Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from_static(
                        b"ok",
                    ))))
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                    end.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        (origin.parse().expect("origin"), opened, ended)
    }

    fn keepalive(origin: Uri, idle_timeout: Duration) -> Keepalive {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(rustls::crypto::aws_lc_rs::default_provider())
            .expect("tls")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let dialer = Dialer::new(connector, origin, Duration::from_secs(5), false);
        Keepalive::new(Arc::new(dialer), idle_timeout)
    }

    async fn send(keepalive: &Keepalive) -> (Response<Incoming>, Lease<'_>) {
        let request = Request::builder()
            .uri("/")
            .header(http::header::HOST, "localhost")
            .body(Full::new(Bytes::new()))
            .expect("request");
        keepalive.send(|| request).await.expect("send")
    }

    /// One call whose answer is read to its end, so its connection is given back.
    async fn call(keepalive: &Keepalive) {
        let (response, lease) = send(keepalive).await;
        let body = response.into_body().collect().await.expect("body");
        assert_eq!(body.to_bytes(), "ok");
        lease.give_back();
    }

    /// The connections the server saw end, once one has or `limit` has passed.
    async fn ended_within(ended: &AtomicUsize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        while ended.load(Ordering::SeqCst) < 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        ended.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn a_connection_idle_past_the_timeout_is_closed_not_used() {
        let (origin, opened, ended) = server().await;
        let keepalive = keepalive(origin, Duration::from_millis(100));
        call(&keepalive).await;
        call(&keepalive).await;
        assert_eq!(opened.load(Ordering::SeqCst), 1, "kept between calls");
        tokio::time::sleep(Duration::from_millis(250)).await;
        call(&keepalive).await;
        assert_eq!(
            opened.load(Ordering::SeqCst),
            2,
            "a new one past the timeout"
        );
        // The expired connection was dropped, which closes it: the server sees it end.
        assert_eq!(ended_within(&ended, Duration::from_secs(5)).await, 1);
    }

    #[tokio::test]
    async fn a_lease_dropped_before_its_answer_was_read_closes_the_connection() {
        let (origin, opened, ended) = server().await;
        let keepalive = keepalive(origin, Duration::from_secs(60));
        let (response, lease) = send(&keepalive).await;
        drop((response, lease));
        call(&keepalive).await;
        assert_eq!(opened.load(Ordering::SeqCst), 2);
        assert_eq!(ended_within(&ended, Duration::from_secs(5)).await, 1);
    }
}
