//! HTTP/2 connections to Crisp that the gateway holds itself, for `upstream_http = "http2"`:
//! a call is a stream sent on hyper's `SendRequest` of one of a few connections.
//!
//! hyper-util's pooled client boxes a future of about 3 KiB per call (its pool checkout, its
//! connect-or-reuse race and its retry) that stays alive for as long as Crisp takes to answer;
//! with HTTP/2 there is nothing to check out, so a call held costs only its stream.

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http2::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::transport::{TransportError, chain, dial, not_sent, run_connection};

type Sender = SendRequest<Full<Bytes>>;

/// One connection: opened on first use, and again once it has closed.
struct Lane {
    sender: parking_lot::Mutex<Option<Sender>>,
    /// Held while connecting, so the calls that find the lane closed open one connection.
    connecting: tokio::sync::Mutex<()>,
}

impl Lane {
    fn open(&self) -> Option<Sender> {
        self.sender
            .lock()
            .as_ref()
            .filter(|sender| !sender.is_closed())
            .cloned()
    }
}

pub struct Lanes {
    lanes: Box<[Lane]>,
    connector: HttpsConnector<HttpConnector>,
    /// Where the connections go: the base URL's scheme and authority.
    origin: Uri,
}

impl Lanes {
    pub fn new(count: usize, connector: HttpsConnector<HttpConnector>, origin: Uri) -> Self {
        Self {
            lanes: (0..count.max(1))
                .map(|_| Lane {
                    sender: parking_lot::Mutex::new(None),
                    connecting: tokio::sync::Mutex::new(()),
                })
                .collect(),
            connector,
            origin,
        }
    }

    /// Sends a request on lane `turn` (modulo their count). A request the connection never
    /// took (it had closed) goes once more, on a fresh connection.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        turn: usize,
    ) -> Result<Response<Incoming>, TransportError> {
        let lane = &self.lanes[turn % self.lanes.len()];
        let mut sender = self.sender(lane).await?;
        let request = match sender.try_send_request(request).await {
            Ok(response) => return Ok(response),
            Err(mut refused) => match refused.take_message() {
                Some(request) => request,
                None => return Err(TransportError::Broken(chain(refused.error()))),
            },
        };
        let mut sender = self.sender(lane).await?;
        match sender.try_send_request(request).await {
            Ok(response) => Ok(response),
            Err(refused) if refused.message().is_some() => Err(not_sent(refused.error())),
            Err(refused) => Err(TransportError::Broken(chain(refused.error()))),
        }
    }

    async fn sender(&self, lane: &Lane) -> Result<Sender, TransportError> {
        if let Some(sender) = lane.open() {
            return Ok(sender);
        }
        let _connecting = lane.connecting.lock().await;
        if let Some(sender) = lane.open() {
            return Ok(sender);
        }
        // Boxed: connecting (TLS, the HTTP/2 handshake) is a large future, and inline it would
        // size every call's future, held while Crisp answers, for a step taken once.
        let sender = Box::pin(self.connect()).await?;
        *lane.sender.lock() = Some(sender.clone());
        Ok(sender)
    }

    async fn connect(&self) -> Result<Sender, TransportError> {
        let io = dial(&self.connector, &self.origin).await?;
        let (sender, connection) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await
            .map_err(|e| TransportError::Connect(chain(&e)))?;
        run_connection(connection, "HTTP/2");
        Ok(sender)
    }
}
