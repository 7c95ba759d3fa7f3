//! Bytes kept in the pieces they arrived in, so that an answer read in several reads is
//! forwarded without first being copied into one buffer.
//!
//! An answer of tens of kilobytes arrives in several reads (HTTP/1.1) or DATA frames (HTTP/2);
//! joining them cost an allocation and a copy of every byte, and held two copies of the answer
//! while the copy was made. A response body can send the pieces as they are: hyper writes a
//! body's frames with one vectored write.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes in one or more pieces; never holds an empty piece.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Chunks {
    pieces: Pieces,
    len: usize,
}

/// One piece is the common case (a small answer), kept without a `Vec`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Pieces {
    #[default]
    Empty,
    One(Bytes),
    Many(Vec<Bytes>),
}

impl Chunks {
    /// Adds a piece at the end.
    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        self.len += piece.len();
        self.pieces = match std::mem::take(&mut self.pieces) {
            Pieces::Empty => Pieces::One(piece),
            Pieces::One(first) => Pieces::Many(vec![first, piece]),
            Pieces::Many(mut pieces) => {
                pieces.push(piece);
                Pieces::Many(pieces)
            }
        };
    }

    /// The total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[Bytes] {
        match &self.pieces {
            Pieces::Empty => &[],
            Pieces::One(piece) => std::slice::from_ref(piece),
            Pieces::Many(pieces) => pieces,
        }
    }

    /// The bytes as one buffer: free for one piece, a copy for several.
    pub fn to_bytes(&self) -> Bytes {
        match &self.pieces {
            Pieces::Empty => Bytes::new(),
            Pieces::One(piece) => piece.clone(),
            Pieces::Many(pieces) => {
                let mut whole = BytesMut::with_capacity(self.len);
                for piece in pieces {
                    whole.put_slice(piece);
                }
                whole.freeze()
            }
        }
    }

    /// The bytes in `range`, sharing the pieces' memory.
    ///
    /// # Panics
    /// When `range` is decreasing or reaches past the end, as slicing does.
    #[must_use]
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.len,
            "range {range:?} out of {} bytes",
            self.len
        );
        let mut out = Self::default();
        let mut at = 0;
        for piece in self.pieces() {
            let (from, to) = (at, at + piece.len());
            at = to;
            if to <= range.start {
                continue;
            }
            if from >= range.end {
                break;
            }
            let start = range.start.saturating_sub(from);
            let end = range.end.min(to) - from;
            out.push(piece.slice(start..end));
        }
        out
    }

    /// Consumes the chunks, yielding the pieces in order.
    pub fn into_pieces(self) -> IntoPieces {
        IntoPieces(match self.pieces {
            Pieces::Empty => Inner::One(None),
            Pieces::One(piece) => Inner::One(Some(piece)),
            Pieces::Many(pieces) => Inner::Many(pieces.into_iter()),
        })
    }
}

impl From<Bytes> for Chunks {
    fn from(piece: Bytes) -> Self {
        let mut chunks = Self::default();
        chunks.push(piece);
        chunks
    }
}

impl From<&'static [u8]> for Chunks {
    fn from(bytes: &'static [u8]) -> Self {
        Bytes::from_static(bytes).into()
    }
}

/// Pieces below this size that follow another small one are joined as they arrive.
const SMALL: usize = 4 << 10;

/// Gathers a body's pieces as they arrive. A body sent a few bytes at a time would otherwise
/// be kept as thousands of pieces (and written out as as many); small pieces that follow one
/// another are joined, so there are at most two pieces per `SMALL` bytes. The usual answer,
/// one piece or a few large ones, is kept without a copy.
#[derive(Debug, Default)]
pub struct Gather {
    chunks: Chunks,
    /// A small piece that may stand alone, kept as it came.
    small: Option<Bytes>,
    /// Small pieces joined, once a second one followed.
    joined: BytesMut,
}

impl Gather {
    /// The bytes gathered so far.
    pub fn len(&self) -> usize {
        self.chunks.len() + self.small.as_ref().map_or(0, Bytes::len) + self.joined.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn push(&mut self, piece: Bytes) {
        if piece.is_empty() {
            return;
        }
        if piece.len() >= SMALL {
            self.flush();
            self.chunks.push(piece);
            return;
        }
        match self.small.take() {
            None if self.joined.is_empty() => self.small = Some(piece),
            held => {
                if let Some(held) = held {
                    self.joined.extend_from_slice(&held);
                }
                self.joined.extend_from_slice(&piece);
                if self.joined.len() >= SMALL {
                    self.flush();
                }
            }
        }
    }

    fn flush(&mut self) {
        if let Some(small) = self.small.take() {
            self.chunks.push(small);
        }
        if !self.joined.is_empty() {
            self.chunks.push(self.joined.split().freeze());
        }
    }

    pub fn finish(mut self) -> Chunks {
        self.flush();
        self.chunks
    }
}

/// The pieces of [`Chunks`], by value.
#[derive(Debug)]
pub struct IntoPieces(Inner);

#[derive(Debug)]
enum Inner {
    One(Option<Bytes>),
    Many(std::vec::IntoIter<Bytes>),
}

impl Iterator for IntoPieces {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        match &mut self.0 {
            Inner::One(piece) => piece.take(),
            Inner::Many(pieces) => pieces.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(pieces: &[&'static str]) -> Chunks {
        let mut chunks = Chunks::default();
        for piece in pieces {
            chunks.push(Bytes::from_static(piece.as_bytes()));
        }
        chunks
    }

    #[test]
    fn pieces_keep_their_order_and_drop_empties() {
        let c = chunks(&["ab", "", "cde", "f"]);
        assert_eq!(c.len(), 6);
        assert_eq!(c.pieces().len(), 3);
        assert_eq!(c.to_bytes(), "abcdef");
        assert_eq!(c.into_pieces().collect::<Vec<_>>(), ["ab", "cde", "f"]);
        assert!(chunks(&[""]).is_empty());
        assert_eq!(chunks(&[]).into_pieces().count(), 0);
    }

    #[test]
    fn a_slice_is_the_same_bytes_as_slicing_the_whole() {
        let c = chunks(&["ab", "cde", "f", "ghij"]);
        let whole = c.to_bytes();
        for start in 0..=whole.len() {
            for end in start..=whole.len() {
                let slice = c.slice(start..end);
                assert_eq!(slice.to_bytes(), whole.slice(start..end), "{start}..{end}");
                assert_eq!(slice.len(), end - start);
                assert!(slice.pieces().iter().all(|p| !p.is_empty()));
            }
        }
    }

    #[test]
    fn small_pieces_in_a_row_are_joined_and_large_ones_kept() {
        let gathered = |sizes: &[usize]| {
            let mut gather = Gather::default();
            let mut sent = Vec::new();
            for (i, &size) in sizes.iter().enumerate() {
                let piece = vec![b'a' + (i % 26) as u8; size];
                sent.extend_from_slice(&piece);
                gather.push(Bytes::from(piece));
                assert_eq!(gather.len(), sent.len());
            }
            let chunks = gather.finish();
            assert_eq!(chunks.to_bytes(), sent);
            chunks.pieces().iter().map(Bytes::len).collect::<Vec<_>>()
        };
        // One small answer, and large pieces, are kept as they came.
        assert_eq!(gathered(&[100]), [100]);
        assert_eq!(gathered(&[SMALL, 2 * SMALL, 10]), [SMALL, 2 * SMALL, 10]);
        // A body a byte at a time is joined into pieces of `SMALL`.
        let pieces = gathered(&[1; 3 * SMALL + 5]);
        assert_eq!(pieces, [SMALL, SMALL, SMALL, 5]);
        // Small pieces between large ones are joined together, never into the large ones.
        assert_eq!(
            gathered(&[10, 20, SMALL, 30, SMALL + 1, 40]),
            [30, SMALL, 30, SMALL + 1, 40]
        );
    }

    #[test]
    #[should_panic(expected = "out of 3 bytes")]
    fn a_slice_past_the_end_panics() {
        let _ = chunks(&["abc"]).slice(1..4);
    }
}
