//! A successful call's envelope, `{"ok":true,"tool":…,"result":<data>}`, kept as its parts so
//! Crisp's `data` (a slice of the body Crisp sent, in the pieces it arrived in) is written to
//! the caller without a copy.
//!
//! On the benchmark's 50 KB answers, copying `data` into one contiguous envelope cost a 50 KB
//! allocation and memcpy per call and held a second copy of every answer in flight. As parts,
//! the HTTP response is a few frames that hyper sends with one vectored write.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use http_body::{Frame, SizeHint};

use crate::catalog::Action;
use crate::kernel::chunks::{Chunks, IntoPieces};

const TAIL: &[u8] = b"}";

#[derive(Debug, Clone)]
pub struct Envelope {
    /// `{"ok":true,"tool":"<tool>","result":`
    head: Bytes,
    /// The raw JSON of the result.
    data: Chunks,
    /// `}`, or `,"next_page":N}` for a paged answer with more pages.
    tail: Bytes,
}

impl Envelope {
    pub fn new(action: &Action, data: impl Into<Chunks>) -> Self {
        // Tool ids are `crisp_` + lowercase words and `_`: nothing to escape.
        let tool = action.tool.as_bytes();
        let mut head = BytesMut::with_capacity(tool.len() + 32);
        head.put_slice(b"{\"ok\":true,\"tool\":\"");
        head.put_slice(tool);
        head.put_slice(b"\",\"result\":");
        Self {
            head: head.freeze(),
            data: data.into(),
            tail: Bytes::from_static(TAIL),
        }
    }

    /// Says where a paged answer goes on: `,"next_page":N` after the result.
    #[must_use]
    pub fn with_next_page(mut self, page: u32) -> Self {
        self.tail = Bytes::from(format!(",\"next_page\":{page}}}"));
        self
    }

    fn len(&self) -> usize {
        self.head.len() + self.data.len() + self.tail.len()
    }

    /// The envelope as one buffer, for the front ends that store or re-read it.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(self.len());
        out.put_slice(&self.head);
        for piece in self.data.pieces() {
            out.put_slice(piece);
        }
        out.put_slice(&self.tail);
        out.freeze()
    }

    /// The envelope as a body of frames (its head, the pieces of the result, its tail), with
    /// its exact length; the front end wraps it in its framework's body type.
    pub fn into_body(
        self,
    ) -> impl http_body::Body<Data = Bytes, Error = std::convert::Infallible> + Send + 'static {
        Parts {
            left: self.len() as u64,
            head: Some(self.head),
            data: self.data.into_pieces(),
            tail: Some(self.tail),
        }
    }
}

struct Parts {
    left: u64,
    head: Option<Bytes>,
    data: IntoPieces,
    tail: Option<Bytes>,
}

impl http_body::Body for Parts {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let next = this
            .head
            .take()
            .or_else(|| this.data.next())
            .or_else(|| this.tail.take());
        Poll::Ready(next.map(|part| {
            this.left -= part.len() as u64;
            Ok(Frame::data(part))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::CATALOG;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn the_body_and_the_bytes_are_the_same_envelope() {
        let action = CATALOG.get("list/conversations").expect("action");
        for data in [&b"[]"[..], b"{\"a\":[1,2,3]}", b""] {
            let envelope = Envelope::new(action, Bytes::copy_from_slice(data));
            let whole = envelope.to_bytes();
            assert_eq!(
                whole,
                [
                    &b"{\"ok\":true,\"tool\":\"crisp_list_conversations\",\"result\":"[..],
                    data,
                    b"}"
                ]
                .concat()
            );
            assert_eq!(envelope.len(), whole.len());
            let body = envelope.into_body();
            assert_eq!(
                http_body::Body::size_hint(&body).exact(),
                Some(whole.len() as u64)
            );
            let sent = body.collect().await.expect("body").to_bytes();
            assert_eq!(sent, whole);
        }
        // A result in several pieces is sent as those pieces, between the head and the tail.
        let mut pieces = Chunks::default();
        for piece in ["[{\"a\":", "1},", "{}]"] {
            pieces.push(Bytes::from_static(piece.as_bytes()));
        }
        let body = Envelope::new(action, pieces).into_body();
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(67));
        let mut frames = Vec::new();
        let mut body = std::pin::pin!(body);
        while let Some(frame) = body.frame().await {
            frames.push(frame.expect("frame").into_data().expect("data"));
        }
        assert_eq!(
            frames,
            [
                "{\"ok\":true,\"tool\":\"crisp_list_conversations\",\"result\":",
                "[{\"a\":",
                "1},",
                "{}]",
                "}"
            ]
        );
        let paged = Envelope::new(action, Bytes::from_static(b"[1]")).with_next_page(3);
        assert_eq!(
            &paged.to_bytes()[..],
            b"{\"ok\":true,\"tool\":\"crisp_list_conversations\",\"result\":[1],\"next_page\":3}"
        );
    }
}
