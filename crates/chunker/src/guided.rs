//! Re-chunking a changed input along its previous version's chunks.
//!
//! A file that changed since the parent snapshot is read again whole, and most of it is
//! usually what it was: a database or volume image rewrites pages in place. Its previous
//! chunks are known (ids and lengths); where the input at the current cut holds a previous
//! chunk again (confirmed by the caller, by its keyed id), that chunk is taken as is, with
//! no gear-hash search, because a cut this chunker made inside an input ends at the same
//! place whatever follows it. Where it does not, the search runs as usual, and guidance
//! resumes at the first cut that lands on a previous chunk's start. The chunks produced are
//! exactly those of [`Chunker::stream`](crate::Chunker::stream) over the same input.

use std::io::Read;

use crate::{ChunkerError, StreamChunk, StreamChunker};

/// Iterator over the chunks of a reader, guided by an earlier version's chunks; see the
/// module documentation. Yields each chunk with `Some(key)` when it is a previous chunk the
/// caller confirmed, `None` when it was found by the search.
pub struct Guided<R, K, F> {
    chunks: StreamChunker<R>,
    previous: std::vec::IntoIter<(K, usize)>,
    /// The previous chunk at or after the current position, and its offset.
    next: Option<(K, usize)>,
    next_offset: u64,
    confirm: F,
}

impl<R, K, F> Guided<R, K, F>
where
    R: Read,
    K: Clone,
    F: FnMut(&K, &[u8]) -> bool,
{
    /// Chunks `chunks`' input along `previous`: `(key, length)` of the earlier version's
    /// chunks in order, **all but its last** (a last chunk may have been cut by the end of
    /// its input, which the new input need not share), each cut by the same chunker.
    /// `confirm(key, bytes)` says whether `bytes` are that previous chunk (by a keyed hash:
    /// equal bytes, or a chunk is taken that the search would not have cut).
    pub fn new(chunks: StreamChunker<R>, previous: Vec<(K, usize)>, confirm: F) -> Self {
        let mut previous = previous.into_iter();
        let next = previous.next();
        Guided {
            chunks,
            previous,
            next,
            next_offset: 0,
            confirm,
        }
    }

    /// The previous chunk starting exactly at the current position, if any (passing over
    /// those that start before it).
    fn aligned(&mut self) -> Option<(K, usize)> {
        let position = self.chunks.position();
        while let Some((_, length)) = &self.next {
            if self.next_offset >= position {
                break;
            }
            self.next_offset += *length as u64;
            self.next = self.previous.next();
        }
        self.next.clone().filter(|_| self.next_offset == position)
    }
}

impl<R, K, F> Iterator for Guided<R, K, F>
where
    R: Read,
    K: Clone,
    F: FnMut(&K, &[u8]) -> bool,
{
    type Item = Result<(StreamChunk, Option<K>), ChunkerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some((key, length)) = self.aligned() {
            let confirm = &mut self.confirm;
            match self
                .chunks
                .next_known(length, |bytes| confirm(&key, bytes).then_some(()))
            {
                Ok(Some((chunk, ()))) => return Some(Ok((chunk, Some(key)))),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
        self.chunks.next().map(|chunk| chunk.map(|c| (c, None)))
    }
}
