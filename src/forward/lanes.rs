//! HTTP/2 connections to Crisp that the gateway holds itself, for `upstream_http = "http2"`
//! and for `auto` when TLS picks HTTP/2: a call is a stream on one of a few connections,
//! driven by the h2 crate directly.
//!
//! hyper's HTTP/2 client spawns a task for every request, which waits for the answer and
//! passes it back through a channel. That task (~2.6 KiB) lives as long as Crisp takes to
//! answer, and each call costs one wake-up more. Here the call's own future polls its stream.
//! hyper-util's pooled client would add a boxed ~3 KiB future per call on top of that.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream};
use http::{Request, Response};
use http_body::{Body, Frame};
use hyper_util::rt::TokioIo;

use super::transport::{Dialer, TransportError, Version, chain, not_sent, run_connection};
use super::turnstile::Turnstile;

/// What hyper's HTTP/2 client sets, kept so that a large answer never waits for a window
/// update mid-body: a stream may receive 2 MiB, all of a connection's streams 5 MiB.
const STREAM_WINDOW: u32 = 2 << 20;
const CONNECTION_WINDOW: u32 = 5 << 20;
/// Crisp's answers carry a handful of headers; a larger head is refused as hyper does.
const MAX_HEADER_LIST: u32 = 16 << 10;
/// Streams assumed allowed before the server's settings arrive (hyper's default).
const INITIAL_MAX_SEND_STREAMS: usize = 100;

/// One open connection. `closed` is set by its task when the connection ends, and by a call
/// that found it could take no new stream.
struct Conn {
    sender: SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Conn {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire)
    }
}

/// One connection slot: opened on first use, and again once its connection has closed.
struct Lane {
    conn: parking_lot::Mutex<Option<Arc<Conn>>>,
    /// Passed while connecting, so the calls that find the lane closed open one connection.
    connecting: Turnstile,
}

impl Lane {
    fn open(&self) -> Option<Arc<Conn>> {
        self.conn
            .lock()
            .as_ref()
            .filter(|conn| conn.is_open())
            .cloned()
    }
}

pub struct Lanes {
    lanes: Box<[Lane]>,
    dialer: Arc<Dialer>,
}

impl Lanes {
    pub fn new(count: usize, dialer: Arc<Dialer>) -> Self {
        Self {
            lanes: (0..count.max(1))
                .map(|_| Lane {
                    conn: parking_lot::Mutex::new(None),
                    connecting: Turnstile::default(),
                })
                .collect(),
            dialer,
        }
    }

    /// Opens lane `turn`'s connection, unless it is open.
    pub async fn open(&self, turn: usize) -> Result<(), TransportError> {
        self.conn(self.lane(turn)).await.map(drop)
    }

    fn lane(&self, turn: usize) -> &Lane {
        &self.lanes[turn % self.lanes.len()]
    }

    /// Sends the request `head` builds, with `body`, as one stream on lane `turn` (modulo
    /// their count). A request Crisp certainly did not act on goes once more, built again:
    /// one the connection could not take (it closed, or the server sent GOAWAY), which goes on
    /// a fresh connection, and one whose stream the server refused.
    pub async fn send(
        &self,
        head: &impl Fn() -> Request<()>,
        body: Bytes,
        turn: usize,
    ) -> Result<Response<Stream>, TransportError> {
        let lane = self.lane(turn);
        match self.send_once(lane, head, body.clone()).await {
            Err(Failure::Unsent(_)) => self.send_once(lane, head, body).await,
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
        lane: &Lane,
        head: &impl Fn() -> Request<()>,
        body: Bytes,
    ) -> Result<Response<Stream>, Failure> {
        let mut sender = self.ready(lane).await?;
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
            Ok(response) => Ok(response.map(Stream)),
            // Refused before the server acted on it (RFC 9113, section 8.7).
            Err(error) if error.reason() == Some(Reason::REFUSED_STREAM) => {
                Err(Failure::Unsent(error))
            }
            Err(error) => Err(Failure::Transport(TransportError::Broken(chain(&error)))),
        }
    }

    /// A sender that may open a stream now on the lane's connection, opening one if needed.
    /// A connection that can take no new stream is marked closed for the calls after.
    async fn ready(&self, lane: &Lane) -> Result<SendRequest<Bytes>, Failure> {
        let conn = self.conn(lane).await.map_err(Failure::Transport)?;
        conn.sender.clone().ready().await.map_err(|error| {
            conn.closed.store(true, Ordering::Release);
            Failure::Unsent(error)
        })
    }

    async fn conn(&self, lane: &Lane) -> Result<Arc<Conn>, TransportError> {
        if let Some(conn) = lane.open() {
            return Ok(conn);
        }
        let connecting = lane.connecting.wait().await?;
        if let Some(conn) = lane.open() {
            return Ok(conn);
        }
        // Boxed: connecting (TLS, the HTTP/2 handshake) is a large future, and inline it would
        // size every call's future, held while Crisp answers, for a step taken once.
        match Box::pin(self.connect()).await {
            Ok(conn) => {
                let conn = Arc::new(conn);
                *lane.conn.lock() = Some(conn.clone());
                Ok(conn)
            }
            Err(error) => {
                connecting.failed(&error);
                Err(error)
            }
        }
    }

    async fn connect(&self) -> Result<Conn, TransportError> {
        let io = self.dialer.dial(Version::Http2).await?;
        let (sender, connection) = h2::client::Builder::new()
            .initial_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_header_list_size(MAX_HEADER_LIST)
            .initial_max_send_streams(INITIAL_MAX_SEND_STREAMS)
            .enable_push(false)
            // The connector speaks hyper's IO traits; h2 speaks tokio's.
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| TransportError::Connect(chain(&e)))?;
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
        Ok(Conn { sender, closed })
    }
}

/// Why one attempt failed.
enum Failure {
    /// Crisp certainly did not act on the request: it may go again.
    Unsent(h2::Error),
    Transport(TransportError),
}

/// An answer's body as it arrives on its stream. Each chunk read is handed back to the
/// stream's flow-control window, so Crisp may send the next.
pub struct Stream(RecvStream);

impl Body for Stream {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, h2::Error>>> {
        let stream = &mut self.0;
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
        self.0.is_end_stream()
    }
}
