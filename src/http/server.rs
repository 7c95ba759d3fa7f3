//! Serves a listener's connections with hygiene: a header-read timeout, an idle timeout, a cap
//! on open connections that evicts the longest-idle one, and a lingering close after a refused
//! request body.
//!
//! Every listener (gateway, metrics, sandbox) serves through [`serve`], HTTP/1 and h2c alike.
//!
//! - **Header timeout.** A connection with no request in flight is waiting for a request head:
//!   its first, or the next one on an HTTP/1 keep-alive connection. Once it has waited
//!   `header_timeout` it is closed, whether it sent nothing or trickles its headers. The
//!   connection's one timer measures this from when it last became idle, and looks again only
//!   when it fires: hyper's own header-read timer would cost a boxed timer per request.
//! - **Idle timeout.** An HTTP/2 connection that has served a request and has no stream open
//!   is closed after `idle_timeout`.
//! - **Connection cap.** At `max_connections` a new connection evicts the one idle longest (no
//!   request in flight; one that never sent a request counts as idle since it was accepted), so
//!   `/healthz` and real calls are still served under a flood; if none is idle the new one is
//!   closed at once.
//! - **Lingering close.** A refused oversized body (413) is answered with `Connection: close`,
//!   and the rest of the body is read and discarded for a bounded time and size before the
//!   socket closes: closing with unread data would make the kernel reset the connection, and a
//!   client that writes its whole body before reading would see the reset, not the 413.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use atomic_waker::AtomicWaker;
use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tower::Service;

use super::protocol::{Connection, Peek, Protocols};
use crate::app::config::Config;

/// How long, and how many bytes, a refused body is read and discarded before the socket
/// closes (nginx's lingering close does the same).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 << 20;

/// How long a connection that has served requests may take to finish a graceful close
/// (flushing its last answer) once evicted or timed out, before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The pause after an accept error that is not one connection's own (such as running out of
/// file descriptors), so that the loop neither spins nor floods the log.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(1);

/// Descriptors kept back from the connection cap for everything that is not a client
/// connection: listeners, the database file and its journal, the log, the runtime's own.
const FILE_RESERVE: u64 = 64;
/// The largest database pool (Postgres's); SQLite's is smaller.
const DB_POOL_RESERVE: u64 = 16;

/// The limits one listener applies to its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// The configured limits; `max_connections = 0` derives the cap from the open-file limit.
    pub fn from_config(config: &Config) -> Self {
        let max_connections = match config.max_connections {
            0 => derived_cap(open_file_limit(), concurrency_cap(config)),
            n => n,
        };
        Self {
            header_timeout: config.header_timeout,
            idle_timeout: config.idle_timeout,
            max_connections,
        }
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self::from_config(&Config::default())
    }
}

/// Requests in flight before new ones are shed: `max_concurrency`, or else the calls the memory
/// budget holds, and never more than a quarter of the open-file limit: a call holds two
/// descriptors (the caller's connection and Crisp's), and the other half stays for connections
/// that hold no call (idle keep-alive clients, or a flood of them; see `derived_cap`).
pub fn concurrency_cap(config: &Config) -> usize {
    derived_concurrency(
        config.max_concurrency,
        config.memory_calls(),
        open_file_limit(),
    )
}

fn derived_concurrency(configured: usize, memory_calls: usize, open_files: u64) -> usize {
    match configured {
        0 => memory_calls
            .min(usize::try_from(open_files / 4).unwrap_or(usize::MAX))
            .max(1),
        n => n,
    }
}

/// The cap that keeps client connections within the open-file limit: what is left after the
/// reserve for files, the database pool and upstream connections (at most one per request in
/// flight). The reserve never takes more than half, so a low limit still serves.
fn derived_cap(open_files: u64, max_concurrency: usize) -> usize {
    let upstream = u64::try_from(max_concurrency).unwrap_or(u64::MAX);
    let reserve = FILE_RESERVE
        .saturating_add(DB_POOL_RESERVE)
        .saturating_add(upstream);
    let cap = open_files
        .saturating_sub(reserve)
        .max(open_files / 2)
        .max(1);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// The process's open-file soft limit, raised once to the hard limit where allowed.
pub fn open_file_limit() -> u64 {
    static LIMIT: OnceLock<u64> = OnceLock::new();
    *LIMIT.get_or_init(raise_open_file_limit)
}

#[cfg(unix)]
fn raise_open_file_limit() -> u64 {
    let before = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map(|(soft, _)| soft)
        .ok();
    match rlimit::increase_nofile_limit(rlimit::INFINITY) {
        Ok(now) => {
            if before.is_some_and(|before| before < now) {
                tracing::info!(
                    from = before,
                    to = now,
                    "raised the open-file limit to its hard limit"
                );
            }
            now
        }
        Err(e) => {
            let soft = before.unwrap_or(UNKNOWN_OPEN_FILE_LIMIT);
            tracing::warn!(error = %e, limit = soft, "cannot raise the open-file limit");
            soft
        }
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> u64 {
    rlimit::increase_nofile_limit(rlimit::INFINITY).unwrap_or(UNKNOWN_OPEN_FILE_LIMIT)
}

/// The limit assumed when the system does not say: the usual default soft limit.
const UNKNOWN_OPEN_FILE_LIMIT: u64 = 1024;

/// What a listener runs for each request: a router, or the main listener's `http::Front`. It
/// gets the peer's address with the request, so the service decides whether a handler needs
/// it as `ConnectInfo` (an extension costs an allocation per request).
pub trait Responder: Clone + Send + Sync + 'static {
    type Future: Future<Output = Response<axum::body::Body>> + Send + 'static;

    fn respond(&self, request: axum::extract::Request, peer: SocketAddr) -> Self::Future;
}

impl Responder for Router {
    type Future = Routed;

    fn respond(&self, mut request: axum::extract::Request, peer: SocketAddr) -> Routed {
        request.extensions_mut().insert(ConnectInfo(peer));
        // A router is always ready: `poll_ready` need not be called first.
        Routed {
            inner: self.clone().call(request),
        }
    }
}

pin_project_lite::pin_project! {
    /// A router's answer.
    pub struct Routed {
        #[pin]
        inner: axum::routing::future::RouteFuture<Infallible>,
    }
}

impl Future for Routed {
    type Output = Response<axum::body::Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(response) = ready!(self.project().inner.poll(cx));
        Poll::Ready(response)
    }
}

/// Serves `service` on `listener` until `shutdown` resolves, then stops accepting, closes the
/// connections that have nothing in flight and waits for the others to finish their calls.
/// `name` labels the listener's metrics and log lines.
pub async fn serve<R: Responder>(
    listener: TcpListener,
    service: R,
    limits: ConnectionLimits,
    name: &'static str,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Arc::new(Registry::new(name, limits));
    // hyper's own header-read timer would be a boxed timer made and dropped per request;
    // the connection's one timer covers the wait for a head instead (`Conn::idle_check`).
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.header_read_timeout(None);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // The CONNECT protocol is what HTTP/2 websockets use, as `axum::serve` enables it.
    http2.timer(TokioTimer::new()).enable_connect_protocol();
    let protocols = Arc::new(Protocols { http1, http2 });
    let mut accept_errors = AcceptErrors::default();
    let mut shutdown = pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors: an idle connection gives one back.
                registry.evict_idlest();
                accept_errors.record(name, &error).await;
                continue;
            }
        };
        // An answer hyper writes in more than one piece must not wait for the caller's
        // delayed ACK between them.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a connection");
        }
        let Some(slot) = registry.admit() else {
            crate::telemetry::metrics::connection_closed(name, "refused");
            drop(stream);
            continue;
        };
        let conn = registry.register();
        let socket = Socket {
            stream: Some(stream),
            conn: conn.clone(),
            slot: Some(slot),
        };
        let service = Tracked {
            service: service.clone(),
            conn: conn.clone(),
            peer,
        };
        tokio::spawn(drive(
            protocols.clone(),
            socket,
            service,
            Registered {
                registry: registry.clone(),
                conn,
            },
        ));
    }
    drop(listener);
    registry.ask_all(STOP);
    // Each connection task leaves the registry as it ends.
    while !registry.conns.lock().is_empty() {
        registry.emptied.notified().await;
    }
}

/// One connection, from accept to close. A connection that never started a request is simply
/// dropped when it is evicted, times out or the server stops: there is nothing to finish. One
/// that has served requests is closed gracefully (its last answer flushed, an HTTP/2 GOAWAY),
/// and dropped if that takes longer than `CLOSE_GRACE`.
async fn drive<R: Responder>(
    protocols: Arc<Protocols>,
    socket: Socket,
    service: Tracked<R>,
    registered: Registered,
) {
    let conn = registered.conn.clone();
    let name = registered.registry.name;
    let limits = registered.registry.limits;
    let mut connection = pin!(Connection::new(&protocols, socket, service));
    let timer = tokio::time::sleep(limits.header_timeout);
    let mut timer = pin!(timer);
    // Evicted or timed out: closing gracefully, and the timer now runs to the drop.
    let mut closing = false;
    let mut stopping = false;
    loop {
        // The connection first; what is asked of it and its timer are looked at only while
        // it waits. The task is woken for every request and answer, so this poll is on the
        // path of each: an atomic and the timer, not a lock per signal.
        let event = std::future::poll_fn(|cx| {
            // Its error, if any, is the client's doing or a closed socket: nothing to act on.
            if connection.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Ended);
            }
            conn.waker.register(cx.waker());
            let asked = conn.asked.load(Ordering::Acquire);
            if asked & EVICT != 0 && !closing {
                return Poll::Ready(Event::Evicted);
            }
            if asked & STOP != 0 && !stopping {
                return Poll::Ready(Event::Stopping);
            }
            timer.as_mut().poll(cx).map(|()| Event::Timer)
        })
        .await;
        match event {
            Event::Ended => break,
            Event::Evicted => {
                crate::telemetry::metrics::connection_closed(name, "evicted");
                if !conn.served() {
                    break;
                }
                connection.as_mut().graceful_shutdown();
                closing = true;
                timer
                    .as_mut()
                    .reset(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            Event::Stopping => {
                stopping = true;
                if !conn.served() {
                    break;
                }
                // In-flight calls finish; the caller bounds the wait with its grace period.
                connection.as_mut().graceful_shutdown();
            }
            Event::Timer => {
                if closing {
                    break;
                }
                let http2 = connection.is_http2();
                match conn.idle_check(limits, http2) {
                    IdleCheck::Busy(recheck) | IdleCheck::Idle(recheck) => {
                        timer.as_mut().reset(tokio::time::Instant::now() + recheck);
                    }
                    IdleCheck::Expired => {
                        if !conn.served() {
                            crate::telemetry::metrics::connection_closed(name, "header_timeout");
                            break;
                        }
                        // Named for the limit that closed it, as `idle_check` picked it.
                        let reason = if http2 {
                            "idle_timeout"
                        } else {
                            "header_timeout"
                        };
                        crate::telemetry::metrics::connection_closed(name, reason);
                        connection.as_mut().graceful_shutdown();
                        closing = true;
                        timer
                            .as_mut()
                            .reset(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        }
    }
}

/// What woke a connection's task with something to do.
enum Event {
    /// The connection is done, or failed.
    Ended,
    Evicted,
    Stopping,
    Timer,
}

/// What another task asks of a connection (bits of `Conn::asked`): to close for a newcomer,
/// or to finish because the server stops.
const EVICT: u8 = 1;
const STOP: u8 = 2;

/// What the idle timer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IdleCheck {
    /// A request is in flight: look again after this long.
    Busy(Duration),
    /// Idle, but not yet for long enough: look again after this long.
    Idle(Duration),
    Expired,
}

/// The open connections of one listener.
struct Registry {
    name: &'static str,
    limits: ConnectionLimits,
    epoch: Instant,
    open: AtomicUsize,
    next_id: AtomicU64,
    conns: parking_lot::Mutex<HashMap<u64, Arc<Conn>, foldhash::fast::RandomState>>,
    /// Told when the last connection leaves, for a stopping server waiting on them.
    emptied: Notify,
}

impl Registry {
    fn new(name: &'static str, limits: ConnectionLimits) -> Self {
        Self {
            name,
            limits,
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            conns: parking_lot::Mutex::new(HashMap::default()),
            emptied: Notify::new(),
        }
    }

    /// A slot for a new connection: at the cap, the idlest connection is evicted to make room;
    /// `None` when every connection is busy.
    fn admit(self: &Arc<Self>) -> Option<Slot> {
        if self.open.load(Ordering::Relaxed) >= self.limits.max_connections && !self.evict_idlest()
        {
            return None;
        }
        self.open.fetch_add(1, Ordering::Relaxed);
        crate::telemetry::metrics::connection_opened(self.name);
        Some(Slot {
            registry: self.clone(),
        })
    }

    fn register(&self) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn::new(id, self.epoch));
        self.conns.lock().insert(id, conn.clone());
        conn
    }

    /// Tells the connection idle longest (no request in flight, not already evicted) to close;
    /// false when there is none.
    fn evict_idlest(&self) -> bool {
        let conns = self.conns.lock();
        let idlest = conns
            .values()
            .filter(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.evicted())
            .min_by_key(|c| c.idle_since_ms.load(Ordering::Relaxed));
        match idlest {
            Some(conn) => {
                conn.ask(EVICT);
                true
            }
            None => false,
        }
    }

    /// Asks every open connection the same (`STOP`).
    fn ask_all(&self, what: u8) {
        for conn in self.conns.lock().values() {
            conn.ask(what);
        }
    }
}

/// A connection's place in the registry, given up when its task ends.
struct Registered {
    registry: Arc<Registry>,
    conn: Arc<Conn>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut conns = self.registry.conns.lock();
        conns.remove(&self.conn.id);
        if conns.is_empty() {
            // A permit if nobody waits yet: the waiter looks at the map again either way.
            self.registry.emptied.notify_one();
        }
    }
}

/// One open descriptor counted against the cap; released when the socket is closed (after
/// any lingering close).
struct Slot {
    registry: Arc<Registry>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.open.fetch_sub(1, Ordering::Relaxed);
        crate::telemetry::metrics::connection_released(self.registry.name);
    }
}

/// What is known of one connection, kept cheap: a few atomics touched per request.
struct Conn {
    id: u64,
    epoch: Instant,
    in_flight: AtomicU32,
    /// Milliseconds since `epoch` when the connection last became idle (accepted, or its
    /// last request finished).
    idle_since_ms: AtomicU64,
    served: AtomicBool,
    /// An answer was sent before its request body was read: read the rest before closing.
    linger: AtomicBool,
    /// What other tasks asked of the connection (`EVICT`, `STOP`), and its task to wake when
    /// they do.
    asked: AtomicU8,
    waker: AtomicWaker,
}

impl Conn {
    fn new(id: u64, epoch: Instant) -> Self {
        Self {
            id,
            epoch,
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(millis_since(epoch, Instant::now())),
            served: AtomicBool::new(false),
            linger: AtomicBool::new(false),
            asked: AtomicU8::new(0),
            waker: AtomicWaker::new(),
        }
    }

    /// Sets `what` and wakes the connection's task. The task registers its waker before it
    /// reads `asked`, so either it sees the bit or this wakes it.
    fn ask(&self, what: u8) {
        self.asked.fetch_or(what, Ordering::AcqRel);
        self.waker.wake();
    }

    fn evicted(&self) -> bool {
        self.asked.load(Ordering::Relaxed) & EVICT != 0
    }

    fn served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.served.store(true, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Whether the connection has been idle too long. An HTTP/2 connection that has served
    /// requests gets `idle_timeout` with no stream open; any other connection with no request
    /// in flight waits for a request head (its first, or the next on a keep-alive
    /// connection, whole or trickling in) and gets `header_timeout`.
    fn idle_check(&self, limits: ConnectionLimits, http2: bool) -> IdleCheck {
        let limit = if self.served() && http2 {
            limits.idle_timeout
        } else {
            limits.header_timeout
        };
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return IdleCheck::Busy(limit);
        }
        let idle_since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        let idle_for = self.epoch.elapsed().saturating_sub(idle_since);
        match limit.checked_sub(idle_for) {
            Some(left) if !left.is_zero() => IdleCheck::Idle(left),
            _ => IdleCheck::Expired,
        }
    }
}

fn millis_since(epoch: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// A request in flight on a connection; when the last one ends the connection is idle.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let conn = &self.0;
        if conn.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.idle_since_ms
                .store(millis_since(conn.epoch, Instant::now()), Ordering::Relaxed);
        }
    }
}

/// The accepted socket, counted against the cap until it is closed. When the connection ends
/// after a refused body, the socket lingers: it is handed to a task that discards what the
/// client still sends, within bounds, so the client reads the answer rather than a reset.
struct Socket {
    stream: Option<TcpStream>,
    conn: Arc<Conn>,
    slot: Option<Slot>,
}

impl Socket {
    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        self.stream
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl Peek for Socket {
    fn tcp(&self) -> Option<&TcpStream> {
        self.stream.as_ref()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()?).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(self.get_mut().stream()?).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(AsyncWrite::is_write_vectored)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(self.get_mut().stream()?).poll_shutdown(cx)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        if !self.conn.linger.load(Ordering::Relaxed) {
            return;
        }
        if let (Some(stream), Ok(runtime)) =
            (self.stream.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(linger(stream, self.slot.take()));
        }
    }
}

/// Reads and discards what the client still sends, up to `LINGER_BYTES` or `LINGER_TIME`,
/// then closes.
async fn linger(mut stream: TcpStream, slot: Option<Slot>) {
    let _ = stream.shutdown().await;
    let mut buf = vec![0; 16 << 10];
    let mut left = LINGER_BYTES;
    let _ = tokio::time::timeout(LINGER_TIME, async {
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
    drop(stream);
    drop(slot);
}

/// The listener's service for one connection: counts the request in flight until its answer's
/// body is done, and hands the peer's address along.
#[derive(Clone)]
struct Tracked<R> {
    service: R,
    conn: Arc<Conn>,
    peer: SocketAddr,
}

impl<R: Responder> hyper::service::Service<Request<Incoming>> for Tracked<R> {
    type Response = Response<TrackedBody<axum::body::Body>>;
    type Error = Infallible;
    type Future = TrackedFuture<R::Future>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_flight = self.conn.begin();
        let http1 = request.version() <= Version::HTTP_11;
        let request = request.map(axum::body::Body::new);
        TrackedFuture {
            inner: self.service.respond(request, self.peer),
            in_flight: Some(in_flight),
            http1,
        }
    }
}

pin_project_lite::pin_project! {
    struct TrackedFuture<F> {
        #[pin]
        inner: F,
        in_flight: Option<InFlight>,
        http1: bool,
    }
}

impl<F: Future<Output = Response<axum::body::Body>>> Future for TrackedFuture<F> {
    type Output = Result<Response<TrackedBody<axum::body::Body>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx));
        if *this.http1
            && response.status() == StatusCode::PAYLOAD_TOO_LARGE
            && let Some(in_flight) = this.in_flight.as_ref()
        {
            in_flight.0.linger.store(true, Ordering::Relaxed);
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let in_flight = this.in_flight.take();
        Poll::Ready(Ok(response.map(|inner| TrackedBody { inner, in_flight })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that ends its request's time in flight when it is finished or dropped.
    pub struct TrackedBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
    }
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.in_flight.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Accept errors, logged at most once a second with how many there were.
#[derive(Default)]
struct AcceptErrors {
    unlogged: u64,
    logged_at: Option<Instant>,
}

impl AcceptErrors {
    async fn record(&mut self, listener: &'static str, error: &io::Error) {
        // The peer gave up before the accept: nothing is wrong with the listener.
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
        ) {
            return;
        }
        crate::telemetry::metrics::accept_error(listener);
        if let Some(count) = self.note(Instant::now()) {
            tracing::warn!(listener, error = %error, count, "cannot accept connections; backing off");
        }
        tokio::time::sleep(ACCEPT_BACKOFF).await;
    }

    /// Counts one error; returns the count to log when a line is due.
    fn note(&mut self, now: Instant) -> Option<u64> {
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= ACCEPT_LOG_EVERY);
        if !due {
            return None;
        }
        self.logged_at = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections,
        }
    }

    #[test]
    fn derived_concurrency_leaves_half_the_files_to_connections_without_a_call() {
        // A 20,000-file container with memory for far more calls: a quarter of the files.
        let calls = derived_concurrency(0, 98_000, 20_000);
        assert_eq!(calls, 5_000);
        // So at least 10,000 client connections fit beside every call in flight.
        assert!(derived_cap(20_000, calls) >= 10_500);
        assert_eq!(
            derived_concurrency(0, 2_048, 1_048_576),
            2_048,
            "memory binds"
        );
        assert_eq!(
            derived_concurrency(64, 2_048, 1_048_576),
            64,
            "a set value wins"
        );
        assert_eq!(derived_concurrency(0, 0, 0), 1);
    }

    #[test]
    fn the_derived_cap_leaves_a_reserve_but_never_more_than_half() {
        assert_eq!(derived_cap(1_048_576, 1024), 1_048_576 - 64 - 16 - 1024);
        assert_eq!(derived_cap(20_000, 1024), 20_000 - 1104);
        assert_eq!(derived_cap(1024, 1024), 512);
        assert_eq!(derived_cap(0, 1024), 1);
    }

    #[test]
    fn the_connection_idle_longest_is_evicted_and_busy_ones_never() {
        let registry = Arc::new(Registry::new("test", limits(3)));
        let slots: Vec<_> = (0..3).map(|_| registry.admit().expect("room")).collect();
        let conns: Vec<_> = (0..3).map(|_| registry.register()).collect();
        conns[0].idle_since_ms.store(500, Ordering::Relaxed);
        conns[1].idle_since_ms.store(100, Ordering::Relaxed);
        conns[2].idle_since_ms.store(50, Ordering::Relaxed);
        let busy = conns[2].begin();

        let fourth = registry.admit().expect("an idle one makes room");
        assert!(conns[1].evicted(), "idle longest");
        assert!(!conns[2].evicted(), "busy");
        assert!(!conns[0].evicted());

        let fifth = registry.admit().expect("the next idle one makes room");
        assert!(conns[0].evicted());
        assert!(
            registry.admit().is_none(),
            "every other connection is busy or already closing"
        );
        drop(busy);
        assert_eq!(registry.open.load(Ordering::Relaxed), 5);
        drop((slots, fourth, fifth));
        assert_eq!(registry.open.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn idle_time_counts_from_the_last_request_and_not_while_busy() {
        let epoch = Instant::now();
        let conn = Arc::new(Conn::new(0, epoch));
        let limits = limits(10);
        assert!(
            matches!(conn.idle_check(limits, false), IdleCheck::Idle(left) if left <= limits.header_timeout)
        );
        conn.idle_since_ms.store(0, Ordering::Relaxed);
        let zero = ConnectionLimits {
            header_timeout: Duration::ZERO,
            ..limits
        };
        assert_eq!(conn.idle_check(zero, false), IdleCheck::Expired);
        let request = conn.begin();
        assert_eq!(
            conn.idle_check(zero, false),
            IdleCheck::Busy(Duration::ZERO)
        );
        assert_eq!(
            conn.idle_check(zero, true),
            IdleCheck::Busy(limits.idle_timeout)
        );
        drop(request);
        assert!(conn.served());
        // Served over HTTP/2: idle between streams; over HTTP/1: waiting for the next head.
        assert!(
            matches!(conn.idle_check(limits, true), IdleCheck::Idle(left) if left > limits.header_timeout)
        );
        assert!(
            matches!(conn.idle_check(limits, false), IdleCheck::Idle(left) if left <= limits.header_timeout)
        );
    }

    #[test]
    fn accept_errors_are_logged_at_most_once_a_second_with_a_count() {
        let mut errors = AcceptErrors::default();
        let start = Instant::now();
        assert_eq!(errors.note(start), Some(1));
        assert_eq!(errors.note(start + Duration::from_millis(10)), None);
        assert_eq!(errors.note(start + Duration::from_millis(500)), None);
        assert_eq!(errors.note(start + Duration::from_millis(1000)), Some(3));
        assert_eq!(errors.note(start + Duration::from_millis(1001)), None);
    }
}
