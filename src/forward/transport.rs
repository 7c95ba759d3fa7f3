//! The HTTP client to Crisp over rustls — HTTP/1.1 connections kept in `keepalive`, a few
//! HTTP/2 connections held in `lanes`, or whichever of the two the TLS handshake picked
//! (`auto` over HTTPS) — and the request line built from a translated call without parsing a
//! URL.
//!
//! Why hyper and not reqwest: the gateway's own cost must round to zero next to a plain
//! reverse proxy, and reqwest's per-request layers (parsing the URL string with IDNA host
//! handling, the redirect and retry services, the boxed connector stack) cost about 30 µs of
//! CPU a call on this project's benchmark machine, as much as nginx spends on a whole proxied
//! request (`bench/README.md`). Everything the gateway needed from it — pooling, keep-alive,
//! TLS with the platform's roots, HTTP/2 by ALPN, connect and call timeouts — is here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderName, HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tower::Service;

use crate::catalog::Method;
use crate::kernel::chunks::{Chunks, Gather};

use super::UpstreamRequest;
use super::keepalive::Keepalive;
use super::lanes::Lanes;
use super::turnstile::Turnstile;

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
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("{0}")]
    Config(String),
    /// No connection could be made: nothing was sent.
    #[error("cannot connect to crisp: {0}")]
    Connect(String),
    /// The TLS handshake found Crisp's certificate untrusted (or not Crisp's): nothing was
    /// sent, and trying again will not help until the base URL or the trusted CAs change.
    #[error("crisp's TLS certificate is not trusted: {0}")]
    Untrusted(String),
    /// A new connection's TLS handshake picked the other HTTP version than the one this
    /// call's path speaks: it was closed, nothing was sent.
    #[error("cannot connect to crisp: {0}")]
    OtherVersion(String),
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
        matches!(
            self,
            Self::Connect(_) | Self::Config(_) | Self::Untrusted(_) | Self::OtherVersion(_)
        )
    }

    /// Why a connection could not be opened.
    fn connect(error: &(dyn std::error::Error + 'static)) -> Self {
        match tls_error(error) {
            Some(rustls::Error::InvalidCertificate(_)) => Self::Untrusted(chain(error)),
            // Only what `upstream_http` allows was offered, and the server speaks none of it
            // (a server may also carry on without picking: `dial` tells that case).
            Some(
                rustls::Error::NoApplicationProtocol
                | rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol),
            ) => Self::OtherVersion(format!(
                "the TLS handshake found no HTTP version that both Crisp and upstream_http \
                 allow (upstream_http = \"auto\" speaks whichever Crisp picks): {}",
                chain(error)
            )),
            _ => Self::Connect(chain(error)),
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

/// The rustls error somewhere in `error`'s chain, if any. TLS errors arrive wrapped in an
/// `io::Error` (twice, by tokio-rustls and hyper-rustls), whose `source` skips the error it
/// wraps, so the walk steps into each wrapped error.
fn tls_error<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        next = match error.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// A request a connection gave back unsent, or whose stream the server refused before acting
/// on it: nothing reached Crisp.
pub(super) fn not_sent(error: &dyn std::error::Error) -> TransportError {
    TransportError::Connect(format!(
        "the connection did not take the request: {}",
        chain(error)
    ))
}

/// An HTTP version a connection to Crisp speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    Http1 = 1,
    Http2 = 2,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Self::Http1 => "HTTP/1.1",
            Self::Http2 => "HTTP/2",
        }
    }

    fn other(self) -> Self {
        match self {
            Self::Http1 => Self::Http2,
            Self::Http2 => Self::Http1,
        }
    }
}

pub(super) type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// Opens connections to Crisp's origin (TCP, then TLS for HTTPS) for `keepalive` and `lanes`,
/// which hold their connections themselves, and remembers the version the last TLS handshake
/// picked, which `auto` follows.
pub(super) struct Dialer {
    connector: HttpsConnector<HttpConnector>,
    origin: Uri,
    /// The TCP connect and the TLS handshake together.
    timeout: Duration,
    /// `auto`: the transport follows what the handshake picks, rather than refusing it.
    follows: bool,
    /// 0 until a TLS handshake has picked a version, then that `Version`.
    picked: AtomicU8,
}

impl Dialer {
    pub(super) fn new(
        connector: HttpsConnector<HttpConnector>,
        origin: Uri,
        timeout: Duration,
        follows: bool,
    ) -> Self {
        Self {
            connector,
            origin,
            timeout,
            follows,
            picked: AtomicU8::new(0),
        }
    }

    /// A new connection that speaks `wants`. Over TLS the handshake picks the version (ALPN;
    /// none picked is HTTP/1.1): a connection that picked the other one is closed unused, as
    /// neither side could read the other.
    pub(super) async fn dial(&self, wants: Version) -> Result<Io, TransportError> {
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(|e| TransportError::Connect(chain(&*e)))?;
        // A server that accepts and then never completes the handshake would otherwise hold
        // the call, and the calls waiting for this connection, until their own deadlines.
        let io = tokio::time::timeout(self.timeout, connector.call(self.origin.clone()))
            .await
            .map_err(|_| {
                TransportError::Connect(format!(
                    "no connection to {} within {:?} (TCP and TLS)",
                    self.origin, self.timeout
                ))
            })?
            .map_err(|e| TransportError::connect(&*e))?;
        if let MaybeHttpsStream::Https(tls) = &io {
            let picked = match tls.inner().get_ref().1.alpn_protocol() {
                Some(b"h2") => Version::Http2,
                _ => Version::Http1,
            };
            self.picked.store(picked as u8, Ordering::Release);
            if picked != wants {
                let hint = if self.follows {
                    "Crisp's servers disagree on the version, or changed it"
                } else {
                    "upstream_http = \"auto\" speaks whichever Crisp picks"
                };
                return Err(TransportError::OtherVersion(format!(
                    "the TLS handshake with {} picked {} where {} was wanted ({hint})",
                    self.origin,
                    picked.name(),
                    wants.name()
                )));
            }
        }
        Ok(io)
    }

    /// How long a new connection may take, the TCP connect and the TLS handshake together.
    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The version the last TLS handshake picked, if one has.
    pub(super) fn picked(&self) -> Option<Version> {
        match self.picked.load(Ordering::Acquire) {
            1 => Some(Version::Http1),
            2 => Some(Version::Http2),
            _ => None,
        }
    }
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

/// What Crisp answered: the status, the headers the gateway reads, and the whole body in the
/// pieces it arrived in.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Chunks,
}

/// How calls reach Crisp.
enum Route {
    /// `upstream_http = "http1"`, and `auto` over plain HTTP: HTTP/1.1 connections kept open
    /// between calls.
    Kept(Keepalive),
    /// `upstream_http = "http2"`: connections held by the gateway, as many as the server's
    /// cap on streams per connection requires.
    Lanes(Lanes),
    /// `auto` over HTTPS: either, as the TLS handshake picked (see `Transport::negotiated`).
    Negotiated {
        lanes: Lanes,
        kept: Keepalive,
        /// Passed by the one call that opens the first connection, while the others wait
        /// to learn which way to go.
        probe: Turnstile,
    },
}

/// The longest a new connection to Crisp may take, TLS included.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection to Crisp stays open with no call on it.
const IDLE_TIMEOUT: Duration = Duration::from_secs(45);

/// How to reach Crisp, as configured.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Crisp's REST base URL, up to and including `/v1`.
    pub base: String,
    pub http: UpstreamHttp,
    /// A PEM file of certificates to trust for Crisp's TLS besides the system's.
    pub ca_file: Option<PathBuf>,
    /// One attempt's time limit.
    pub timeout: Duration,
    /// The largest answer read, in bytes.
    pub max_response: usize,
}

pub struct Transport {
    route: Route,
    dialer: Arc<Dialer>,
    base: Base,
    user_agent: HeaderValue,
    max_response: usize,
}

impl Transport {
    /// `upstream.max_response` bounds the body read from one answer, so one huge answer (or
    /// several at once) cannot take the process's memory.
    pub fn new(upstream: &Upstream) -> Result<Self, TransportError> {
        let base = Base::parse(&upstream.base)?;
        let mut http_connector = HttpConnector::new();
        http_connector.enforce_http(false);
        http_connector.set_nodelay(true);
        // Half an attempt at most: a connection that takes longer leaves the call too little.
        // hyper-util splits it among the addresses the name resolves to, so that one that
        // drops packets leaves time for the next; `Dialer` holds TCP and TLS together to it.
        let connect_timeout = (upstream.timeout / 2).min(MAX_CONNECT_TIMEOUT);
        http_connector.set_connect_timeout(Some(connect_timeout));
        http_connector.set_keepalive(Some(Duration::from_secs(30)));
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(upstream.ca_file.as_deref())?)
            .https_or_http();
        // The versions offered in the TLS handshake follow the setting.
        let https = match upstream.http {
            UpstreamHttp::Auto => tls.enable_all_versions().wrap_connector(http_connector),
            UpstreamHttp::Http1 => tls.enable_http1().wrap_connector(http_connector),
            UpstreamHttp::Http2 => tls.enable_http2().wrap_connector(http_connector),
        };
        let dialer = Arc::new(Dialer::new(
            https,
            base.uri(PathAndQuery::from_static("/"))?,
            connect_timeout,
            upstream.http == UpstreamHttp::Auto,
        ));
        // A call on `lanes` is a stream on a shared connection: a call held costs a stream's
        // state instead of a connection with its own task, buffers and descriptor.
        // Over plain HTTP this is prior knowledge (h2c), as the sandbox and any h2c-capable
        // server or proxy accept.
        let lanes = || Lanes::new(dialer.clone(), IDLE_TIMEOUT);
        let kept = || Keepalive::new(dialer.clone(), IDLE_TIMEOUT);
        let route = match upstream.http {
            UpstreamHttp::Http2 => Route::Lanes(lanes()),
            UpstreamHttp::Auto if base.scheme == Scheme::HTTPS => Route::Negotiated {
                lanes: lanes(),
                kept: kept(),
                probe: Turnstile::default(),
            },
            UpstreamHttp::Auto | UpstreamHttp::Http1 => Route::Kept(kept()),
        };
        Ok(Self {
            route,
            dialer,
            base,
            user_agent: HeaderValue::from_static(USER_AGENT),
            max_response: upstream.max_response,
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
        // HTTP/1.1 names the path alone and the host in `Host`; HTTP/2 takes the full URL,
        // built for the routes that may speak it.
        let full = match self.route {
            Route::Kept(_) => None,
            Route::Lanes(_) | Route::Negotiated { .. } => Some(self.base.uri(path.clone())?),
        };
        let head = |version: Version| {
            let mut outgoing = Request::new(());
            *outgoing.method_mut() = method(request.method);
            let host = match (version, &full) {
                (Version::Http2, Some(full)) => {
                    *outgoing.uri_mut() = full.clone();
                    None
                }
                _ => {
                    *outgoing.uri_mut() = Uri::from(path.clone());
                    Some(self.base.host.clone())
                }
            };
            let headers = outgoing.headers_mut();
            headers.reserve(8);
            if let Some(host) = host {
                headers.insert(header::HOST, host);
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
        let read = Read {
            limit: self.max_response,
            head: request.method == Method::Head,
        };
        match &self.route {
            Route::Kept(kept) => read.kept(kept, || head(Version::Http1), body).await,
            Route::Lanes(lanes) => {
                let h2_head = || head(Version::Http2);
                read.answer(lanes.send(&h2_head, body).await?).await
            }
            Route::Negotiated { lanes, kept, probe } => {
                let mut version = self.negotiated(lanes, probe).await?;
                let mut switched = false;
                loop {
                    let sent = match version {
                        Version::Http1 => {
                            read.kept(kept, || head(Version::Http1), body.clone()).await
                        }
                        Version::Http2 => {
                            let h2_head = || head(Version::Http2);
                            match lanes.send(&h2_head, body.clone()).await {
                                Ok(response) => read.answer(response).await,
                                Err(error) => Err(error),
                            }
                        }
                    };
                    match sent {
                        // A new connection picked the other version (Crisp changed what it
                        // offers): nothing was sent, so the call goes once more that way.
                        Err(TransportError::OtherVersion(_)) if !switched => {
                            version = version.other();
                            switched = true;
                        }
                        sent => return sent,
                    }
                }
            }
        }
    }

    /// The version a call takes under `auto` over HTTPS: what the last TLS handshake picked.
    /// Before any has, one call opens an HTTP/2 connection while the others wait, and what
    /// that handshake picked sends them all; an HTTP/1.1 Crisp costs one connection opened
    /// and closed once.
    async fn negotiated(
        &self,
        lanes: &Lanes,
        probe: &Turnstile,
    ) -> Result<Version, TransportError> {
        if let Some(version) = self.dialer.picked() {
            return Ok(version);
        }
        let probing = probe.wait().await?;
        if let Some(version) = self.dialer.picked() {
            return Ok(version);
        }
        match lanes.open().await {
            Ok(()) => Ok(Version::Http2),
            Err(TransportError::OtherVersion(_)) => Ok(Version::Http1),
            Err(error) => {
                probing.failed(&error);
                Err(error)
            }
        }
    }
}

/// How an answer's body is read: at most `limit` bytes, and none expected after a HEAD.
struct Read {
    limit: usize,
    head: bool,
}

impl Read {
    /// Sends the request `head` builds, with `body`, on a kept HTTP/1.1 connection and reads
    /// the answer. Read to its end, the connection can carry the next call; on an early
    /// return, the lease is dropped and the connection closed.
    async fn kept(
        &self,
        keepalive: &Keepalive,
        head: impl FnOnce() -> Request<()>,
        body: Bytes,
    ) -> Result<Answer, TransportError> {
        let build = || head().map(|()| Full::new(body));
        let (response, lease) = keepalive.send(build).await?;
        let answer = self.answer(response).await?;
        lease.give_back();
        Ok(answer)
    }

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
        // The pieces are kept as they came (`Gather`); chunked answers, and any that lie
        // about their length, stop at the limit.
        let mut body = std::pin::pin!(body);
        let mut pieces = Gather::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let e: Box<dyn std::error::Error + Send + Sync> = e.into();
                TransportError::Broken(chain(&*e))
            })?;
            if let Ok(data) = frame.into_data() {
                if data.len() > limit - pieces.len() {
                    return Err(TransportError::TooLarge { status, limit });
                }
                pieces.push(data);
            }
        }
        Ok(Answer {
            status,
            headers: parts.headers,
            body: pieces.finish(),
        })
    }
}

/// TLS to Crisp: rustls with the platform's verifier, trusting the certificates in `ca_file`
/// besides the system's (a proxy's or a private CA's).
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TransportError> {
    let extra = match ca_file {
        Some(path) => trusted(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cannot = |e: rustls::Error| TransportError::Config(format!("cannot set up TLS: {e}"));
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
            .map_err(cannot)?;
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(cannot)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The certificates in a PEM file.
fn trusted(path: &Path) -> Result<Vec<CertificateDer<'static>>, TransportError> {
    let invalid = |why: String| {
        TransportError::Config(format!(
            "upstream_ca_file `{}` {why}; give a PEM file of CA certificates \
             (-----BEGIN CERTIFICATE----- blocks)",
            path.display()
        ))
    };
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("cannot be read: {e}")))?;
    if certificates.is_empty() {
        return Err(invalid("holds no certificate".into()));
    }
    Ok(certificates)
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

    #[test]
    fn a_ca_file_that_holds_no_certificate_is_refused_at_start() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), "not a certificate").expect("write");
        for path in [file.path(), Path::new("/nonexistent/ca.pem")] {
            let err = tls_config(Some(path)).expect_err("refused").to_string();
            assert!(err.starts_with("upstream_ca_file `"), "{err}");
            assert!(err.contains("give a PEM file"), "{err}");
        }
        assert!(tls_config(None).is_ok());
    }

    #[tokio::test]
    async fn targets_keep_the_prefix_and_encode_the_query() {
        let upstream = Upstream {
            base: "https://api.crisp.chat/v1/".into(),
            http: UpstreamHttp::Auto,
            ca_file: None,
            timeout: Duration::from_secs(1),
            max_response: 1 << 20,
        };
        let transport = Transport::new(&upstream).expect("valid");
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
