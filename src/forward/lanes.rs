//! HTTP/2 connections to Crisp that the gateway holds itself, for `upstream_http = "http2"`
//! and for `auto` when TLS picks HTTP/2: a call is a stream on one of the open connections,
//! driven by the h2 crate directly.
//!
//! A server caps the streams open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS;
//! 100 to 256 is common), and the gateway caps them too (`MAX_STREAMS`). A call goes on the
//! open connection carrying the fewest, and when every one is at its cap, on a new one:
//! thousands of calls held at once take as many connections as the cap requires, instead of
//! waiting in line behind a fixed few. A
//! connection opened for a burst is let go by the first call after it has carried nothing
//! for the idle timeout.
//!
//! hyper's HTTP/2 client spawns a task for every request, which waits for the answer and
//! passes it back through a channel. That task (~2.6 KiB) lives as long as Crisp takes to
//! answer, and each call costs one wake-up more. Here the call's own future polls its stream.
//! hyper-util's pooled client would add a boxed ~3 KiB future per call on top of that.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream};
use http::{Request, Response};
use http_body::{Body, Frame};
use hyper_util::rt::TokioIo;

use super::transport::{Dialer, TransportError, Version, chain, not_sent, run_connection};

/// What hyper's HTTP/2 client sets, kept so that a large answer never waits for a window
/// update mid-body: a stream may receive 2 MiB, all of a connection's streams 5 MiB.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
/// Crisp's answers carry a handful of headers; a larger head is refused as hyper does.
const MAX_HEADER_LIST: u32 = 16 << 10;
/// Streams assumed allowed before the server's settings arrive (hyper's default). A new
/// connection waits for them, up to `SETTINGS_WAIT` (see `Lanes::connect`).
const INITIAL_MAX_SEND_STREAMS: usize = 100;
/// The most streams one connection carries even when the server allows more: one
/// connection's task, and the server's, would otherwise carry every call. Thousands of calls
/// held on one connection went through at half the rate, or less, that they did spread over
/// connections of this many (bench/README.md, "Twelfth round").
const MAX_STREAMS: usize = 128;
/// How long after a failed attempt no connection is tried while others are open: calls wait
/// for room on those instead of trying, one after another, a server that refuses more.
const RETRY_OPEN: Duration = Duration::from_secs(1);
/// The longest a new connection waits for the server's settings before it is used anyway.
const SETTINGS_WAIT: Duration = Duration::from_secs(2);

/// One open connection. `closed` is set by its task when the connection ends, and by a call
/// that found it could take no new stream.
struct Conn {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
    /// Streams the gateway has open on it: taken when a call picks it, given back when the
    /// call's answer is read or dropped.
    streams: AtomicUsize,
    /// The most streams it carries at once: the server's cap, or `MAX_STREAMS` under a
    /// higher one; noted when it opened and as each stream ends.
    cap: AtomicUsize,
    /// When the last stream was given back, in milliseconds since `opened`.
    idle_since: AtomicU64,
    opened: Instant,
    signal: Arc<Signal>,
}

/// How calls waiting for room learn that there may be some.
#[derive(Default)]
struct Signal {
    /// Told when a connection opened or failed to, and when a stream ended while calls wait.
    changed: tokio::sync::Notify,
    /// Calls waiting for room.
    waiting: AtomicUsize,
}

impl Conn {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }

    /// Reads the server's cap again (it may change it at any time), kept so that choosing a
    /// connection does not take each one's lock in h2.
    fn note_cap(&self) -> usize {
        // A server that is draining may allow none.
        let cap = self.sender.current_max_send_streams().min(MAX_STREAMS);
        self.cap.store(cap, Ordering::Release);
        cap
    }

    /// Whether it may take one more stream.
    fn has_room(&self) -> bool {
        self.streams.load(Ordering::Acquire) < self.cap.load(Ordering::Acquire)
    }

    /// Carrying nothing, and for at least `timeout`.
    fn idle_for(&self, timeout: Duration) -> bool {
        self.streams.load(Ordering::Acquire) == 0
            && self.opened.elapsed().as_millis()
                >= u128::from(self.idle_since.load(Ordering::Acquire)) + timeout.as_millis()
    }
}

/// A stream taken on a connection, given back when dropped (which tells the calls waiting for
/// room, if any).
struct Slot(Arc<Conn>);

impl Slot {
    fn take(conn: &Arc<Conn>) -> Self {
        conn.streams.fetch_add(1, Ordering::AcqRel);
        Self(conn.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let conn = &self.0;
        conn.note_cap();
        // Written before the stream is given back, so that a connection is never seen idle
        // with the time of an older lull.
        let now = u64::try_from(conn.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        conn.idle_since.store(now, Ordering::Release);
        // Sequentially consistent with `Waiting::new`: either this sees the call counted, or
        // the call, looking again once counted, sees this stream's room.
        conn.streams.fetch_sub(1, Ordering::SeqCst);
        if conn.signal.waiting.load(Ordering::SeqCst) > 0 {
            conn.signal.changed.notify_waiters();
        }
    }
}

pub struct Lanes {
    state: parking_lot::Mutex<State>,
    signal: Arc<Signal>,
    dialer: Arc<Dialer>,
    idle_timeout: Duration,
}

struct State {
    /// The open connections, oldest first.
    conns: Vec<Arc<Conn>>,
    /// Connections being opened.
    opening: usize,
    /// The streams a new connection is expected to take: the cap the last one opened got.
    expected_cap: usize,
    /// When and why the last attempt to open one failed, for the calls that waited on it.
    failed: Option<(Instant, TransportError)>,
}

impl Lanes {
    pub fn new(dialer: Arc<Dialer>, idle_timeout: Duration) -> Self {
        Self {
            state: parking_lot::Mutex::new(State {
                conns: Vec::new(),
                opening: 0,
                expected_cap: INITIAL_MAX_SEND_STREAMS,
                failed: None,
            }),
            signal: Arc::default(),
            dialer,
            idle_timeout,
        }
    }

    /// Opens a connection, unless one is open.
    pub async fn open(&self) -> Result<(), TransportError> {
        if self.state.lock().conns.iter().any(|conn| conn.is_open()) {
            return Ok(());
        }
        self.slot().await.map(drop)
    }

    /// Sends the request `head` builds, with `body`, as one stream. A request Crisp certainly
    /// did not act on goes once more, built again: one the connection could not take (it
    /// closed, or the server sent GOAWAY), which goes on another connection, and one whose
    /// stream the server refused.
    pub async fn send(
        &self,
        head: &impl Fn() -> Request<()>,
        body: Bytes,
    ) -> Result<Response<Stream>, TransportError> {
        match self.send_once(head, body.clone()).await {
            Err(Failure::Unsent(_)) => self.send_once(head, body).await,
            sent => sent,
        }
        .map_err(|failure| match failure {
            Failure::Unsent(error) => not_sent(&error),
            Failure::Transport(error) => error,
        })
    }

    /// The head is built once the connection is ready, so that it is not kept in the call's
    /// future, which is sized for its largest state and held while Crisp answers.
    async fn send_once(
        &self,
        head: &impl Fn() -> Request<()>,
        body: Bytes,
    ) -> Result<Response<Stream>, Failure> {
        let slot = self.slot().await.map_err(Failure::Transport)?;
        let mut sender = slot.0.sender.clone().ready().await.map_err(|error| {
            slot.0.closed.store(true, Ordering::Release);
            Failure::Unsent(error)
        })?;
        let end = body.is_empty();
        // After `ready`, sending fails only for a request h2 cannot encode: nothing left, and
        // sending it again would not help.
        let (answer, mut outgoing) = sender
            .send_request(head(), end)
            .map_err(|e| Failure::Transport(not_sent(&e)))?;
        if !end {
            outgoing
                .send_data(body, true)
                .map_err(|e| Failure::Transport(TransportError::Broken(chain(&e))))?;
        }
        match answer.await {
            Ok(response) => Ok(response.map(|recv| Stream { recv, _slot: slot })),
            // Refused before the server acted on it (RFC 9113, section 8.7).
            Err(error) if error.reason() == Some(Reason::REFUSED_STREAM) => {
                Err(Failure::Unsent(error))
            }
            Err(error) => Err(Failure::Transport(TransportError::Broken(chain(&error)))),
        }
    }

    /// A stream on the open connection carrying the fewest, or on a new one when every open
    /// connection is at its cap.
    ///
    /// Calls that find no room wait, and connections are opened for them in parallel, as many
    /// as the waiting calls fill at the cap the last connection got: a burst of thousands of
    /// calls does not wait for one handshake after another. They take the first room there
    /// is, on a new connection or where a stream ended. When no connection is open, an attempt
    /// that fails is the failure of every call that was waiting when it did, so that they do
    /// not try again one behind the other until their deadlines pass. When some are, the calls
    /// wait for their streams to end, and no connection is tried for `RETRY_OPEN` after a
    /// failure.
    async fn slot(&self) -> Result<Slot, TransportError> {
        let asked = Instant::now();
        let mut waiting: Option<Waiting<'_>> = None;
        loop {
            // A call waits for room no longer than a connection may take to open: past that
            // it has certainly not left, and says so (`Connect`), rather than run into the
            // attempt's time limit, which would leave a write's outcome unknown.
            let given_up = asked + self.dialer.timeout();
            let changed = self.signal.changed.notified();
            let mut changed = std::pin::pin!(changed);
            changed.as_mut().enable();
            let (opening, rest_until) = {
                let mut state = self.state.lock();
                if let Some(slot) = state.pick(self.idle_timeout) {
                    return Ok(slot);
                }
                let failed = state.failed.as_ref();
                if state.conns.is_empty()
                    && let Some((at, error)) = failed
                    && *at >= asked
                {
                    return Err(error.clone());
                }
                if Instant::now() >= given_up {
                    return Err(TransportError::Connect(format!(
                        "no HTTP/2 stream to Crisp came free within {:?}: every open connection \
                         is at Crisp's cap on streams, and no other was opened in time",
                        self.dialer.timeout()
                    )));
                }
                let Some(waiting) = waiting.as_ref() else {
                    // Counted from now on, a stream that ends wakes this call; one that ended
                    // since the look above did not, so look once more before waiting.
                    waiting = Some(Waiting::new(self));
                    continue;
                };
                // While no connection may be opened after a failure, the calls waiting look
                // again when that rest ends, should no stream end before.
                let rest_until = failed
                    .map(|(at, _)| *at + RETRY_OPEN)
                    .filter(|until| !state.conns.is_empty() && *until > Instant::now());
                let coming = state.opening.saturating_mul(state.expected_cap);
                let opening = (coming < waiting.count() && rest_until.is_none()).then(|| {
                    state.opening += 1;
                    Opening(self)
                });
                (opening, rest_until)
            };
            if let Some(opening) = opening {
                // Boxed: connecting (TLS, the HTTP/2 handshake) is a large future, and inline
                // it would size every call's future, held while Crisp answers, for a rare step.
                let opened = Box::pin(self.connect()).await;
                let mut state = self.state.lock();
                let slot = match opened {
                    Ok(conn) => {
                        let conn = Arc::new(conn);
                        state.expected_cap = conn.note_cap().max(1);
                        state.conns.push(conn.clone());
                        Some(Ok(Slot::take(&conn)))
                    }
                    Err(error) => {
                        state.failed = Some((Instant::now(), error.clone()));
                        // With others open, this call waits for room on them as the calls
                        // waiting beside it do; with none, every one of them fails.
                        state.conns.is_empty().then_some(Err(error))
                    }
                };
                drop(state);
                drop(opening);
                match slot {
                    Some(slot) => return slot,
                    None => continue,
                }
            }
            // Woken by a stream's end, by the rest's, or by giving up: either way, look again.
            // Boxed: a timer in this future would size every call held on Crisp (it is part
            // of the call's future) for a wait few calls make.
            let wake = rest_until.map_or(given_up, |until| until.min(given_up));
            let _ = Box::pin(tokio::time::timeout_at(wake.into(), changed)).await;
        }
    }

    async fn connect(&self) -> Result<Conn, TransportError> {
        let io = self.dialer.dial(Version::Http2).await?;
        let (sender, mut connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
            .enable_push(false)
            // The connector speaks hyper's IO traits; h2 speaks tokio's.
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| TransportError::Connect(chain(&e)))?;
        let mut ping = connection.ping_pong();
        let closed = Arc::new(AtomicBool::new(false));
        let ended = closed.clone();
        run_connection(
            async move {
                let ended_with = connection.await;
                ended.store(true, Ordering::Release);
                ended_with
            },
            "HTTP/2",
        );
        // The server's settings come before its answer to a ping: once it is back, the
        // connection's stream cap is the server's, and a burst of calls waiting for this
        // connection does not pile onto it past that cap.
        // A server slow to answer costs the wait, not the connection.
        if let Some(ping) = ping.as_mut()
            && let Ok(answered) =
                tokio::time::timeout(SETTINGS_WAIT, ping.ping(h2::Ping::opaque())).await
        {
            answered.map_err(|e| TransportError::Connect(chain(&e)))?;
        }
        Ok(Conn {
            signal: self.signal.clone(),
            sender,
            closed,
            streams: AtomicUsize::new(0),
            cap: AtomicUsize::new(INITIAL_MAX_SEND_STREAMS),
            idle_since: AtomicU64::new(0),
            opened: Instant::now(),
        })
    }
}

impl State {
    /// Takes a stream on the open connection with the most room, if one has any. Connections
    /// that ended are forgotten here, and so are those that carried nothing for the idle
    /// timeout, but for the oldest.
    fn pick(&mut self, idle_timeout: Duration) -> Option<Slot> {
        let mut first = true;
        self.conns.retain(|conn| {
            let keep = conn.is_open() && (first || !conn.idle_for(idle_timeout));
            first &= !keep;
            keep
        });
        let conn = self
            .conns
            .iter()
            .filter(|conn| conn.has_room())
            .min_by_key(|conn| conn.streams.load(Ordering::Acquire))?;
        Some(Slot::take(conn))
    }
}

/// A call counted among those waiting for room, until it has a stream or gives up.
struct Waiting<'a>(&'a Signal);

impl<'a> Waiting<'a> {
    fn new(lanes: &'a Lanes) -> Self {
        lanes.signal.waiting.fetch_add(1, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        Self(&lanes.signal)
    }

    fn count(&self) -> usize {
        self.0.waiting.load(Ordering::Acquire)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A connection being opened, counted until the attempt ends (or its call gives up, when
/// the calls waiting on it are told so that one of them opens another).
struct Opening<'a>(&'a Lanes);

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        self.0.state.lock().opening -= 1;
        self.0.signal.changed.notify_waiters();
    }
}

/// Why one attempt failed.
enum Failure {
    /// Crisp certainly did not act on the request: it may go again.
    Unsent(h2::Error),
    Transport(TransportError),
}

/// An answer's body as it arrives on its stream. Each chunk read is handed back to the
/// stream's flow-control window, so Crisp may send the next. The stream's slot on its
/// connection is given back when the body is dropped.
pub struct Stream {
    recv: RecvStream,
    _slot: Slot,
}

impl Body for Stream {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let stream = &mut self.recv;
        match ready!(stream.poll_data(cx)) {
            Some(Ok(data)) => {
                // Fails only once the stream is gone, which the next poll reports.
                let _ = stream.flow_control().release_capacity(data.len());
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Some(Err(error)) => Poll::Ready(Some(Err(error))),
            None => match ready!(stream.poll_trailers(cx)) {
                Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
                Ok(None) => Poll::Ready(None),
                Err(error) => Poll::Ready(Some(Err(error))),
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }
}
