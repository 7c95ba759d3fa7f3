//! The HTTP client to Crisp over rustls — HTTP/1.1 connections kept in `keepalive`, a few
//! HTTP/2 connections held in `lanes`, or, where TLS negotiates the version (`auto` over
//! HTTPS), hyper-util's connection pool — and the request line built from a translated call
//! without parsing a URL.
//!
//! Why hyper and not reqwest: the gateway's own cost must round to zero next to a plain
//! reverse proxy, and reqwest's per-request layers (parsing the URL string with IDNA host
//! handling, the redirect and retry services, the boxed connector stack) cost about 30 µs of
//! CPU a call on this project's benchmark machine, as much as nginx spends on a whole proxied
//! request (`bench/README.md`). Everything the gateway needed from it — pooling, keep-alive,
//! TLS with the platform's roots, HTTP/2 by ALPN, connect and call timeouts — is here.

use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tower::Service;

use crate::catalog::Method;

use super::UpstreamRequest;
use super::keepalive::Keepalive;
use super::lanes::Lanes;

/// Sent on every call so Crisp (and anything between) can tell who is calling.
const USER_AGENT: &str = concat!("crisp-gateway/", env!("CARGO_PKG_VERSION"));
const X_CRISP_TIER: HeaderName = HeaderName::from_static("x-crisp-tier");

/// The base URL, split once at start-up into the parts every request reuses.
#[derive(Debug, Clone)]
struct Base {
    scheme: Scheme,
    authority: Authority,
    /// The `Host` an HTTP/1.1 request names: the authority without the scheme's default port.
    host: HeaderValue,
    /// Path prefix without a trailing slash, e.g. `/v1`.
    prefix: String,
    /// As configured, for messages and logs.
    display: String,
}

impl Base {
    fn parse(base: &str) -> Result<Self, TransportError> {
        let display = base.trim_end_matches('/').to_owned();
        let invalid = |why: &str| {
            TransportError::Config(format!(
                "the Crisp base URL `{display}` {why}; set it like `https://api.crisp.chat/v1`"
            ))
        };
        let uri: Uri = display.parse().map_err(|_| invalid("is not a valid URL"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| invalid("has no scheme"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(invalid("must start with http:// or https://"));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| invalid("has no host"))?;
        if uri.query().is_some() {
            return Err(invalid("must not carry a query"));
        }
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16() {
            Some(port) if port != default_port => authority.as_str(),
            _ => authority.host(),
        };
        let host = HeaderValue::from_str(host).map_err(|_| invalid("has an invalid host"))?;
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            host,
            prefix,
            display,
        })
    }

    /// The URL of `path` on the base's scheme and host.
    fn uri(&self, path: PathAndQuery) -> Result<Uri, TransportError> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path);
        Uri::from_parts(parts)
            .map_err(|e| TransportError::Config(format!("cannot build the Crisp URL: {e}")))
    }
}

/// The HTTP version spoken to Crisp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamHttp {
    /// HTTP/2 when TLS negotiates it (ALPN), else HTTP/1.1.
    #[default]
    Auto,
    Http1,
    /// HTTP/2 only: by ALPN over TLS, by prior knowledge (h2c) over plain HTTP.
    Http2,
}

/// Why a call did not get an answer from Crisp.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Config(String),
    /// No connection could be made: nothing was sent.
    #[error("cannot connect to crisp: {0}")]
    Connect(String),
    /// The connection broke while sending or reading: Crisp may have acted on the call.
    #[error("the connection to crisp failed: {0}")]
    Broken(String),
    /// Crisp's answer is larger than `upstream_max_response`; at most that much was read.
    #[error("crisp's {status} answer is larger than the {limit}-byte limit")]
    TooLarge { status: u16, limit: usize },
}

impl TransportError {
    /// True when the request certainly never left: no connection, or no request to send.
    pub fn never_left(&self) -> bool {
        matches!(self, Self::Connect(_) | Self::Config(_))
    }

    fn from_client(err: hyper_util::client::legacy::Error) -> Self {
        let detail = chain(&err);
        if err.is_connect() {
            Self::Connect(detail)
        } else {
            Self::Broken(detail)
        }
    }
}

/// An error and its causes on one line, e.g. `client error (Connect): tcp connect error:
/// Connection refused (os error 111)`.
pub(super) fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A request a connection gave back unsent, or whose stream the server refused before acting
/// on it: nothing reached Crisp.
pub(super) fn not_sent(error: &dyn std::error::Error) -> TransportError {
    TransportError::Connect(format!(
        "the connection did not take the request: {}",
        chain(error)
    ))
}

/// Opens a connection to Crisp's origin (TCP, then TLS for HTTPS) for `keepalive` and `lanes`,
/// which hold their connections themselves.
pub(super) async fn dial(
    connector: &HttpsConnector<HttpConnector>,
    origin: &Uri,
) -> Result<MaybeHttpsStream<TokioIo<TcpStream>>, TransportError> {
    let mut connector = connector.clone();
    std::future::poll_fn(|cx| connector.poll_ready(cx))
        .await
        .map_err(|e| TransportError::Connect(chain(&*e)))?;
    connector
        .call(origin.clone())
        .await
        .map_err(|e| TransportError::Connect(chain(&*e)))
}

/// Drives a client connection until it ends; how it ended is worth a debug line at most, as
/// the call on it (if any) reports its own failure.
pub(super) fn run_connection<E: std::error::Error>(
    connection: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    version: &'static str,
) {
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %chain(&error), version, "a connection to Crisp ended");
        }
    });
}

/// What Crisp answered: the status, the headers the gateway reads, and the whole body.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

/// Separate pools (or lanes), so that HTTP/2 has this many connections to a host instead of
/// one. hyper opens one HTTP/2 stream at a time per connection (the next waits until the
/// connection's task has flushed the last), which capped one connection far below the calls a
/// gateway holds (`bench/run --held`), and a server's cap on streams per connection would be
/// the whole gateway's cap on calls in flight.
const HTTP2_POOLS: usize = 4;

type Pool = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How calls reach Crisp.
enum Route {
    /// `upstream_http = "http1"`, and `auto` over plain HTTP: HTTP/1.1 connections kept open
    /// between calls.
    Kept(Keepalive),
    /// `upstream_http = "http2"`: `HTTP2_POOLS` connections held by the gateway.
    Lanes(Lanes),
    /// `auto` over HTTPS, where the TLS handshake picks the version: `HTTP2_POOLS` pools that
    /// calls take in turn.
    Pooled(Box<[Pool]>),
}

/// How long a connection to Crisp stays open with no call on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

pub struct Transport {
    route: Route,
    next: std::sync::atomic::AtomicUsize,
    base: Base,
    user_agent: HeaderValue,
    max_response: usize,
}

impl Transport {
    /// `max_response` bounds the body read from one answer, so one huge answer (or several at
    /// once) cannot take the process's memory.
    pub fn new(
        base: &str,
        http: UpstreamHttp,
        connect_timeout: Duration,
        max_response: usize,
    ) -> Result<Self, TransportError> {
        let base = Base::parse(base)?;
        let mut http_connector = HttpConnector::new();
        http_connector.enforce_http(false);
        http_connector.set_nodelay(true);
        http_connector.set_connect_timeout(Some(connect_timeout));
        http_connector.set_keepalive(Some(Duration::from_secs(30)));
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_platform_verifier(provider)
            .map_err(|e| TransportError::Config(format!("cannot set up TLS: {e}")))?
            .https_or_http();
        // The versions offered in the TLS handshake follow the setting.
        let https = match http {
            UpstreamHttp::Auto => tls.enable_all_versions().wrap_connector(http_connector),
            UpstreamHttp::Http1 => tls.enable_http1().wrap_connector(http_connector),
            UpstreamHttp::Http2 => tls.enable_http2().wrap_connector(http_connector),
        };
        let origin = base.uri(PathAndQuery::from_static("/"))?;
        let route = match http {
            // A call is a stream on one of a few shared connections: a call held costs a
            // stream's state instead of a connection with its own task, buffers and
            // descriptor. Over plain HTTP this is prior knowledge (h2c), as the sandbox and
            // any h2c-capable server or proxy accept.
            UpstreamHttp::Http2 => Route::Lanes(Lanes::new(HTTP2_POOLS, https, origin)),
            UpstreamHttp::Auto if base.scheme == Scheme::HTTPS => {
                Route::Pooled((0..HTTP2_POOLS).map(|_| pool(https.clone())).collect())
            }
            UpstreamHttp::Auto | UpstreamHttp::Http1 => {
                Route::Kept(Keepalive::new(https, origin, IDLE_TIMEOUT))
            }
        };
        Ok(Self {
            route,
            next: std::sync::atomic::AtomicUsize::new(0),
            base,
            user_agent: HeaderValue::from_static(USER_AGENT),
            max_response,
        })
    }

    /// The base URL as configured, for messages.
    pub fn base(&self) -> &str {
        &self.base.display
    }

    /// The request target: the base's path prefix, the translated path, and the query with
    /// names and values encoded as single components.
    pub fn target(&self, request: &UpstreamRequest) -> String {
        let mut target = String::with_capacity(self.base.prefix.len() + request.path.len() + 64);
        target.push_str(&self.base.prefix);
        target.push_str(&request.path);
        for (i, (name, value)) in request.query.iter().enumerate() {
            target.push(if i == 0 { '?' } else { '&' });
            target.extend(percent_encoding::utf8_percent_encode(
                name,
                crate::catalog::COMPONENT,
            ));
            target.push('=');
            target.extend(percent_encoding::utf8_percent_encode(
                value,
                crate::catalog::COMPONENT,
            ));
        }
        target
    }

    /// The full URL a request goes to (for messages and tests).
    pub fn url(&self, request: &UpstreamRequest) -> String {
        format!(
            "{}://{}{}",
            self.base.scheme,
            self.base.authority,
            self.target(request)
        )
    }

    /// Sends one request and reads the whole answer. `authorization` and `tier` are the
    /// account's prebuilt header values; the caller bounds the time this takes.
    pub async fn call(
        &self,
        request: &UpstreamRequest,
        authorization: &HeaderValue,
        tier: &HeaderValue,
        request_id: &str,
    ) -> Result<Answer, TransportError> {
        let path = PathAndQuery::from_maybe_shared(Bytes::from(self.target(request)))
            .map_err(|e| TransportError::Config(format!("cannot build the Crisp URL: {e}")))?;
        // HTTP/1.1 names the path alone and the host in `Host`; the others take the full URL.
        let uri = match self.route {
            Route::Kept(_) => Uri::from(path),
            Route::Lanes(_) | Route::Pooled(_) => self.base.uri(path)?,
        };
        // Built again only when HTTP/2 sends a request a second time (`Lanes::send`).
        let head = || {
            let mut outgoing = Request::new(());
            *outgoing.method_mut() = method(request.method);
            *outgoing.uri_mut() = uri.clone();
            let headers = outgoing.headers_mut();
            headers.reserve(8);
            if let Route::Kept(_) = self.route {
                headers.insert(header::HOST, self.base.host.clone());
            }
            headers.insert(header::USER_AGENT, self.user_agent.clone());
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            headers.insert(header::AUTHORIZATION, authorization.clone());
            headers.insert(X_CRISP_TIER, tier.clone());
            if let Ok(id) = HeaderValue::from_str(request_id) {
                headers.insert(crate::kernel::request_id::REQUEST_ID, id);
            }
            if request.body.is_some() {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            outgoing
        };
        let body = request.body.clone().unwrap_or_default();
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let read = Read {
            limit: self.max_response,
            head: request.method == Method::Head,
        };
        let answer = match &self.route {
            Route::Kept(keepalive) => {
                let (response, lease) = keepalive.send(head().map(|()| Full::new(body))).await?;
                let answer = read.answer(response).await?;
                // Read to its end, the connection can carry the next call; on an early
                // return, the lease is dropped and the connection closed.
                lease.give_back();
                answer
            }
            Route::Lanes(lanes) => read.answer(lanes.send(&head, body, turn).await?).await?,
            Route::Pooled(pools) => {
                let response = pools[turn % pools.len()]
                    .request(head().map(|()| Full::new(body)))
                    .await
                    .map_err(TransportError::from_client)?;
                read.answer(response).await?
            }
        };
        Ok(answer)
    }
}

/// How an answer's body is read: at most `limit` bytes, and none expected after a HEAD.
struct Read {
    limit: usize,
    head: bool,
}

impl Read {
    /// The answer's status, headers and whole body, whichever connection it came on.
    async fn answer<B>(&self, response: Response<B>) -> Result<Answer, TransportError>
    where
        B: http_body::Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = response.into_parts();
        let (limit, status) = (self.limit, parts.status.as_u16());
        // A HEAD answer's Content-Length is the size of the GET it stands for, not of a body.
        if !self.head && declared_length(&parts.headers).is_some_and(|n| n > limit as u64) {
            return Err(TransportError::TooLarge { status, limit });
        }
        // Chunked answers, and any that lie about their length, stop at the limit.
        let body = Limited::new(body, limit)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<LengthLimitError>() {
                    TransportError::TooLarge { status, limit }
                } else {
                    TransportError::Broken(chain(&*e))
                }
            })?
            .to_bytes();
        Ok(Answer {
            status,
            headers: parts.headers,
            body,
        })
    }
}

/// A hyper-util pool, for `auto` over HTTPS, where ALPN picks HTTP/1.1 or HTTP/2 per connection.
fn pool(https: HttpsConnector<HttpConnector>) -> Pool {
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(IDLE_TIMEOUT)
        // No count cap on idle connections: with a cap below the calls in flight, every call
        // past it closed its connection and the next one opened a new one (a connect, a task
        // and fresh buffers per call), which `bench/run --held` showed as most of the
        // gateway's CPU per call at thousands held. Idle connections are leftovers of calls in
        // flight, so `max_concurrency` (and through it the memory budget and the open-file
        // limit) already bounds them, and the idle timeout ends them.
        .pool_max_idle_per_host(usize::MAX)
        .build(https)
}

/// The answer's `Content-Length`, when it sent a valid one.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn method(method: Method) -> http::Method {
    match method {
        Method::Get => http::Method::GET,
        Method::Head => http::Method::HEAD,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str, query: &[(&str, &str)]) -> UpstreamRequest {
        UpstreamRequest {
            method: Method::Get,
            path: path.into(),
            query: query
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: None,
        }
    }

    #[test]
    fn base_urls_are_checked_once() {
        assert!(Base::parse("https://api.crisp.chat/v1/").is_ok());
        assert!(Base::parse("http://127.0.0.1:8080").is_ok());
        // `Host` names the port only when it is not the scheme's own.
        for (base, host) in [
            ("https://api.crisp.chat/v1", "api.crisp.chat"),
            ("https://api.crisp.chat:443/v1", "api.crisp.chat"),
            ("http://127.0.0.1:8080/v1", "127.0.0.1:8080"),
            ("http://localhost:80", "localhost"),
            ("https://crisp.example:80/v1", "crisp.example:80"),
        ] {
            assert_eq!(Base::parse(base).expect(base).host, host, "{base}");
        }
        for bad in [
            "api.crisp.chat/v1",
            "ftp://x/v1",
            "https://x/v1?a=b",
            "not a url",
        ] {
            let err = Base::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("https://api.crisp.chat/v1"), "{bad}: {err}");
        }
    }

    #[tokio::test]
    async fn targets_keep_the_prefix_and_encode_the_query() {
        let transport = Transport::new(
            "https://api.crisp.chat/v1/",
            UpstreamHttp::Auto,
            Duration::from_secs(1),
            1 << 20,
        )
        .expect("valid");
        let target = transport.target(&request(
            "/website/w%2F1/conversations/2",
            &[("search_query", "a&b=c d"), ("filter_unread", "1")],
        ));
        assert_eq!(
            target,
            "/v1/website/w%2F1/conversations/2?search_query=a%26b%3Dc%20d&filter_unread=1"
        );
        assert_eq!(
            transport.url(&request("/website/w", &[])),
            "https://api.crisp.chat/v1/website/w"
        );
    }
}
