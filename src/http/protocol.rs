//! A client connection served as HTTP/1.1 or HTTP/2, told apart by peeking at its first bytes.
//!
//! hyper-util's `auto` builder reads the first 24 bytes itself and hands them to hyper's HTTP/1
//! reader as a first, separate read. hyper's read buffer then doubles on the next read, and
//! every connection keeps the larger buffer while its calls are held. Peeking leaves the bytes
//! in the socket, so hyper's first read takes the whole request head.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::HttpService;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::ReadBuf;
use tokio::net::TcpStream;

/// What every HTTP/2 connection starts with (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Enough of the preface to tell it from every HTTP/1.1 method: none is `PRI`.
const DECISIVE: usize = 4;

/// How long to wait before peeking again at a connection that sent only the first bytes of
/// the preface (a peek cannot wait for more data, as a read would), doubled each time, so a
/// connection stalled there costs a few wake-ups until the header timeout closes it.
const REPEEK: Duration = Duration::from_millis(5);

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The builders a listener serves its connections with.
pub struct Protocols {
    pub http1: http1::Builder,
    pub http2: http2::Builder<TokioExecutor>,
}

/// An IO type whose socket can be peeked at.
pub trait Peek {
    fn tcp(&self) -> Option<&TcpStream>;
}

/// A connection's IO, as both of hyper's connections take it.
pub trait Io: Peek + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}

impl<I: Peek + tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for I {}

/// A service both of hyper's connections can serve.
pub trait Serve:
    HttpService<
        Incoming,
        Error: Into<BoxError>,
        Future: Send + 'static,
        ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
    >
{
}

impl<S> Serve for S where
    S: HttpService<
            Incoming,
            Error: Into<BoxError>,
            Future: Send + 'static,
            ResBody: Body<Data: Send, Error: Into<BoxError>> + Send + 'static,
        >
{
}

pin_project_lite::pin_project! {
    /// One connection: waiting for its first bytes, then served by hyper in the protocol they
    /// name.
    #[project = StateProj]
    enum State<I, S>
    where
        S: HttpService<Incoming>,
    {
        Peeking {
            io: Option<TokioIo<I>>,
            service: Option<S>,
            repeek: Option<Pin<Box<tokio::time::Sleep>>>,
            wait: Duration,
        },
        Http1 {
            #[pin]
            conn: http1::UpgradeableConnection<TokioIo<I>, S>,
        },
        // Boxed: hyper's HTTP/2 connection is the larger, and a connection's task is as large
        // as its largest state; an HTTP/2 connection carries many calls to amortise it.
        Http2 {
            conn: Pin<Box<http2::Connection<TokioIo<I>, S, TokioExecutor>>>,
        },
        Done,
    }
}

pin_project_lite::pin_project! {
    /// Serves one connection to its end; `graceful_shutdown` as hyper's own connections.
    pub struct Connection<'a, I, S>
    where
        S: HttpService<Incoming>,
    {
        protocols: &'a Protocols,
        #[pin]
        state: State<I, S>,
    }
}

impl<'a, I, S> Connection<'a, I, S>
where
    S: HttpService<Incoming>,
{
    pub fn new(protocols: &'a Protocols, io: I, service: S) -> Self {
        Self {
            protocols,
            state: State::Peeking {
                io: Some(TokioIo::new(io)),
                service: Some(service),
                repeek: None,
                wait: REPEEK,
            },
        }
    }
}

impl<I: Io, S: Serve> Connection<'_, I, S> {
    /// Lets requests in flight finish and closes the connection; one still waiting for its
    /// first bytes just ends.
    pub fn graceful_shutdown(self: Pin<&mut Self>) {
        let mut state = self.project().state;
        match state.as_mut().project() {
            StateProj::Peeking { .. } => state.set(State::Done),
            StateProj::Http1 { conn } => conn.graceful_shutdown(),
            StateProj::Http2 { conn } => conn.as_mut().graceful_shutdown(),
            StateProj::Done => {}
        }
    }

    /// Whether hyper serves the connection as HTTP/2: its own idle time counts between
    /// streams, where an HTTP/1 connection waits for its next request head.
    pub fn is_http2(&self) -> bool {
        matches!(self.state, State::Http2 { .. })
    }
}

impl<I: Io, S: Serve> Future for Connection<'_, I, S> {
    type Output = Result<(), BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let protocols = *this.protocols;
        let mut state = this.state;
        loop {
            let next = match state.as_mut().project() {
                StateProj::Peeking {
                    io,
                    service,
                    repeek,
                    wait,
                } => {
                    if let Some(sleep) = repeek {
                        ready!(sleep.as_mut().poll(cx));
                        *repeek = None;
                    }
                    let Some(socket) = io.as_ref().and_then(|io| io.inner().tcp()) else {
                        return Poll::Ready(Ok(()));
                    };
                    let protocol = match ready!(peek(socket, cx)) {
                        Ok(Some(protocol)) => protocol,
                        // Closed before a byte was sent: nothing to serve.
                        Ok(None) => return Poll::Ready(Ok(())),
                        Err(Undecided) => {
                            *repeek = Some(Box::pin(tokio::time::sleep(*wait)));
                            *wait = wait.saturating_mul(2);
                            continue;
                        }
                    };
                    let (Some(io), Some(service)) = (io.take(), service.take()) else {
                        return Poll::Ready(Ok(()));
                    };
                    match protocol {
                        Protocol::Http1 => State::Http1 {
                            conn: protocols
                                .http1
                                .serve_connection(io, service)
                                .with_upgrades(),
                        },
                        Protocol::Http2 => State::Http2 {
                            conn: Box::pin(protocols.http2.serve_connection(io, service)),
                        },
                    }
                }
                StateProj::Http1 { conn } => return conn.poll(cx).map_err(Into::into),
                StateProj::Http2 { conn } => return conn.as_mut().poll(cx).map_err(Into::into),
                StateProj::Done => return Poll::Ready(Ok(())),
            };
            state.set(next);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// Only the first bytes of the preface have arrived.
struct Undecided;

/// The protocol the first bytes name, `None` for a connection closed before sending any.
fn peek(socket: &TcpStream, cx: &mut Context<'_>) -> Poll<Result<Option<Protocol>, Undecided>> {
    let mut bytes = [0u8; DECISIVE];
    let mut buf = ReadBuf::new(&mut bytes);
    match ready!(socket.poll_peek(cx, &mut buf)) {
        // A socket error: hyper's first read meets it and ends the connection.
        Err(_) => Poll::Ready(Ok(Some(Protocol::Http1))),
        Ok(0) => Poll::Ready(Ok(None)),
        Ok(_) => Poll::Ready(decide(buf.filled())),
    }
}

/// HTTP/2 when the bytes start the preface, HTTP/1.1 as soon as they differ from it.
fn decide(first: &[u8]) -> Result<Option<Protocol>, Undecided> {
    if !PREFACE.starts_with(first) {
        Ok(Some(Protocol::Http1))
    } else if first.len() >= DECISIVE {
        Ok(Some(Protocol::Http2))
    } else {
        Err(Undecided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bytes_name_the_protocol() {
        assert_eq!(decide(b"POST").ok(), Some(Some(Protocol::Http1)));
        assert_eq!(decide(b"GET ").ok(), Some(Some(Protocol::Http1)));
        // `P` then not `R`: decided before four bytes.
        assert_eq!(decide(b"PU").ok(), Some(Some(Protocol::Http1)));
        assert_eq!(decide(b"PRI ").ok(), Some(Some(Protocol::Http2)));
        assert!(decide(b"PR").is_err());
        assert!(decide(b"P").is_err());
    }
}
