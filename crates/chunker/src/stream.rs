//! Chunking a `Read` without copying each chunk.
//!
//! Why not `fastcdc::v2020::StreamCDC`: it copies every chunk into a fresh `Vec` and
//! memmoves its buffer after every chunk, which halves throughput at 1 MiB chunks. Here the
//! input is read into a large shared buffer and chunks are handed out as `Bytes` views of it;
//! only the unfinished tail (less than one chunk) is moved when the buffer is refilled, and the
//! buffer itself is reused whenever the caller has dropped every chunk cut from it.

use std::io::{ErrorKind, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::{Chunker, ChunkerError};

/// One chunk of a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamChunk {
    /// Byte offset of the chunk in the stream.
    pub offset: u64,
    /// The chunk's bytes: a view into the chunker's buffer (no copy).
    pub data: Bytes,
}

/// Iterator over the chunks of a reader; see [`Chunker::stream`].
///
/// Memory: one buffer of `2 × max` bytes, allocated lazily (so a short input touches only the
/// pages it fills). Chunks are views of that buffer; while the caller holds any of them when
/// the buffer must be refilled, a fresh buffer is allocated and the old one lives until its last
/// chunk is dropped. A caller that drops chunks promptly (or holds a bounded number) keeps
/// memory bounded by about `2 × max` plus what it holds.
///
/// Reads are retried on `ErrorKind::Interrupted`; short reads of any size (down to one byte
/// at a time) are fine. After the first error the iterator yields `None`.
pub struct StreamChunker<R> {
    chunker: Chunker,
    reader: R,
    buffer: Arc<Vec<u8>>,
    /// Unconsumed bytes are `buffer[start..end]`.
    start: usize,
    end: usize,
    /// Stream offset of `buffer[start]`.
    offset: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> StreamChunker<R> {
    pub(crate) fn new(chunker: Chunker, reader: R) -> Self {
        StreamChunker {
            chunker,
            reader,
            buffer: Arc::new(Vec::new()),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            done: false,
        }
    }

    /// Bytes of input consumed into chunks so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Gives the reader back (for example to reuse a file handle). Unread input stays in it;
    /// input already buffered but not yet returned as chunks is lost.
    pub fn into_reader(self) -> R {
        self.reader
    }

    fn buffer_len(&self) -> usize {
        2 * self.chunker.params().max()
    }

    /// Moves the unconsumed tail to the front of a writable buffer (the same one if no chunk
    /// of it is alive) and reads until the buffer is full or the input ends.
    fn refill(&mut self) -> Result<(), ChunkerError> {
        let tail = self.start..self.end;
        let tail_len = tail.len();
        let capacity = self.buffer_len();
        let buffer = match Arc::get_mut(&mut self.buffer) {
            Some(buffer) if buffer.len() == capacity => {
                buffer.copy_within(tail, 0);
                buffer
            }
            _ => {
                // Zeroed allocation: large ones come straight from the OS as untouched pages.
                let mut fresh = vec![0u8; capacity];
                fresh[..tail_len].copy_from_slice(&self.buffer[tail]);
                self.buffer = Arc::new(fresh);
                Arc::get_mut(&mut self.buffer).expect("just created")
            }
        };
        self.start = 0;
        self.end = tail_len;
        while self.end < capacity {
            match self.reader.read(&mut buffer[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n.min(capacity - self.end),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ChunkerError::Io(e)),
            }
        }
        Ok(())
    }

    fn take(&mut self, length: usize) -> StreamChunk {
        let range = self.start..self.start + length;
        let chunk = StreamChunk {
            offset: self.offset,
            data: shared_slice(&self.buffer, range),
        };
        self.start += length;
        self.offset += length as u64;
        chunk
    }
}

impl<R: Read> Iterator for StreamChunker<R> {
    type Item = Result<StreamChunk, ChunkerError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let available = self.end - self.start;
            if available > 0 {
                let cut = self.chunker.scan(&self.buffer[self.start..self.end]);
                // A cut inside the window is final; one at its end is final only if the
                // window is already `max` long or the input has ended.
                if cut < available || self.eof || available >= self.chunker.params().max() {
                    return Some(Ok(self.take(cut)));
                }
            } else if self.eof {
                self.done = true;
                return None;
            }
            if let Err(e) = self.refill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

/// A `Bytes` view of `buffer[range]` that keeps the buffer alive (no copy).
fn shared_slice(buffer: &Arc<Vec<u8>>, range: Range<usize>) -> Bytes {
    Bytes::from_owner(BufferSlice {
        buffer: Arc::clone(buffer),
        range,
    })
}

/// Owner of one chunk's bytes: keeps the shared buffer alive while the `Bytes` lives.
struct BufferSlice {
    buffer: Arc<Vec<u8>>,
    range: Range<usize>,
}

impl AsRef<[u8]> for BufferSlice {
    fn as_ref(&self) -> &[u8] {
        &self.buffer[self.range.clone()]
    }
}
