//! Chunking a `Read` without copying each chunk.
//!
//! Why not `fastcdc::v2020::StreamCDC`: it copies every chunk into a fresh `Vec` and memmoves
//! its buffer after every chunk, which halves throughput at 1 MiB chunks. Here input is read
//! into a large block and chunks are handed out as `Bytes` views of it. New input is appended
//! behind the data already handed out, so a slow producer (a pipe delivering 64 KiB at a
//! time) costs no extra copies; only when the block is full is the unfinished tail (shorter
//! than one chunk) moved, into the same block if no chunk of it is alive, else into a new one.
//!
//! Why a hand-written buffer: `bytes::BytesMut` can hand out frozen views and keep appending,
//! but only by zero-filling (or copying into) its spare capacity before every read, which
//! costs a pass over the data; `Read` needs initialized memory, and this block is initialized
//! once when allocated.

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

/// A fixed-size, zero-initialized buffer shared between the chunker and the chunks it handed
/// out. Held as a raw pointer so that no reference to the whole buffer is ever created while
/// it is shared.
///
/// Invariant (upheld by `StreamChunker`): bytes in `[0, end)` may be referenced by chunks and
/// are never written while any chunk of this block is alive; the chunker writes only to
/// `[end, len)`, which no chunk covers, or anywhere once it holds the only reference.
struct Block {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: shared access only reads ranges that are never written while shared (see the
// invariant above); writes go through `spare_mut` to a range no reader can see, or through
// `Arc::get_mut` when unshared.
unsafe impl Sync for Block {}
// SAFETY: the block owns its allocation (freed once, in `Drop`), so moving it to another
// thread moves sole ownership.
unsafe impl Send for Block {}

impl Block {
    fn new(len: usize) -> Arc<Block> {
        let raw = Box::into_raw(vec![0u8; len].into_boxed_slice());
        Arc::new(Block {
            ptr: std::ptr::NonNull::new(raw.cast::<u8>()).expect("Box pointers are non-null"),
            len,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The bytes in `range`, which must lie below the chunker's `end`.
    fn get(&self, range: Range<usize>) -> &[u8] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds of the allocation; the range is below `end`, so it is never
        // written while this block is shared.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(range.start), range.len()) }
    }

    /// Mutable access to `[from, len)`.
    ///
    /// # Safety
    /// The caller must be the block's only writer, and no chunk (nor any other live
    /// reference) may cover `[from, len)`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn spare_mut(&self, from: usize) -> &mut [u8] {
        assert!(from <= self.len);
        std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(from), self.len - from)
    }

    /// The whole buffer, given exclusive access.
    fn all_mut(&mut self) -> &mut [u8] {
        // SAFETY: `&mut self` means no chunk or other reference to this block exists.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` came from `Box::into_raw` of a boxed slice of this length.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            )))
        }
    }
}

/// Owner of one chunk's bytes: keeps the block alive while the `Bytes` lives.
struct BlockSlice {
    block: Arc<Block>,
    range: Range<usize>,
}

impl AsRef<[u8]> for BlockSlice {
    fn as_ref(&self) -> &[u8] {
        self.block.get(self.range.clone())
    }
}

/// Iterator over the chunks of a reader; see [`Chunker::stream`].
///
/// Memory: one block of `2 × max` bytes, or smaller when the input's size is known to be
/// smaller ([`Chunker::stream_sized`]); it grows to `2 × max` if the input outgrows the hint. Chunks are views of the block; if the caller still holds chunks of it when
/// it is full, a new block is allocated and the old one lives until its last chunk is dropped.
/// A caller that holds a bounded number of chunks keeps memory bounded by a few blocks.
///
/// Reading: input is read until at least `max` bytes are buffered (or the block is full, or
/// the input ends), so a slow producer is never made to fill the whole block first. Reads are
/// retried on `ErrorKind::Interrupted`; any read size works, down to one byte. After the first
/// error the iterator yields `None`.
pub struct StreamChunker<R> {
    chunker: Chunker,
    reader: R,
    /// Size of the next block to allocate: small for inputs known to be small, `2 × max`
    /// once an input outgrows its hint.
    next_block_len: usize,
    block: Arc<Block>,
    /// Unconsumed bytes are `block[start..end]`; `[end..]` is free space.
    start: usize,
    end: usize,
    /// Stream offset of `block[start]`.
    offset: u64,
    eof: bool,
    done: bool,
}

impl<R: Read> StreamChunker<R> {
    pub(crate) fn new(chunker: Chunker, reader: R, size_hint: Option<u64>) -> Self {
        let full = 2 * chunker.params().max();
        // One byte beyond the expected size lets the read that reports end of input happen
        // without first growing the block.
        let next_block_len = size_hint.map_or(full, |hint| {
            (hint.saturating_add(1)).clamp(4096, full as u64) as usize
        });
        StreamChunker {
            chunker,
            reader,
            next_block_len,
            block: Block::new(0),
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

    /// Gives the reader back. Unread input stays in it; input already buffered but not yet
    /// returned as chunks is lost.
    pub fn into_reader(self) -> R {
        self.reader
    }

    /// Offers the next `length` bytes as a chunk without searching for a cut: `known` sees
    /// them and answers whether they are a chunk it already knows. Returns the chunk and the
    /// answer when it does; `Ok(None)` when `known` refuses, when fewer than `length` bytes
    /// are left, or when `length` is zero or above `max` (nothing is consumed then: the next
    /// call cuts from the same place).
    ///
    /// The caller vouches for the cut: these bytes must be a chunk this chunker cut, from its
    /// first byte, somewhere other than at the end of its input. Such a cut ends at the same
    /// place whatever bytes follow (the decision at a position reads only bytes up to it), so
    /// chunks accepted here are exactly those the search would have found. Re-chunking a
    /// changed file along its previous version's chunks (confirmed by their keyed ids) this
    /// way skips the gear hash over every unchanged chunk.
    pub fn next_known<T>(
        &mut self,
        length: usize,
        known: impl FnOnce(&[u8]) -> Option<T>,
    ) -> Result<Option<(StreamChunk, T)>, ChunkerError> {
        if self.done || length == 0 || length > self.chunker.params().max() {
            return Ok(None);
        }
        while self.end - self.start < length && !self.eof {
            if let Err(e) = self.fill() {
                self.done = true;
                return Err(e);
            }
        }
        if self.end - self.start < length {
            return Ok(None);
        }
        Ok(known(self.block.get(self.start..self.start + length)).map(|t| (self.take(length), t)))
    }

    /// Makes room behind `end`: when the block is full, moves the unconsumed tail to the front
    /// of this block (if no chunk of it is alive) or of a new one.
    fn make_room(&mut self) {
        if self.end < self.block.len() {
            return;
        }
        let full = 2 * self.chunker.params().max();
        // A block filled to the brim means the input may be longer than its hint.
        let capacity = if self.block.len() == 0 {
            self.next_block_len
        } else {
            full
        };
        let tail = self.start..self.end;
        match Arc::get_mut(&mut self.block) {
            Some(block) if block.len() == capacity => block.all_mut().copy_within(tail.clone(), 0),
            _ => {
                let fresh = Block::new(capacity);
                // SAFETY: `fresh` is not shared yet.
                unsafe {
                    fresh.spare_mut(0)[..tail.len()].copy_from_slice(self.block.get(tail.clone()))
                };
                self.block = fresh;
            }
        }
        self.start = 0;
        self.end = tail.len();
    }

    /// Reads until `max` bytes are buffered, the block is full, or the input ends.
    fn fill(&mut self) -> Result<(), ChunkerError> {
        self.make_room();
        let max = self.chunker.params().max();
        let capacity = self.block.len();
        while self.end < capacity && self.end - self.start < max {
            // SAFETY: this iterator is the block's only writer and every chunk handed out lies
            // below `self.end`.
            let spare = unsafe { self.block.spare_mut(self.end) };
            match self.reader.read(spare) {
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
            data: Bytes::from_owner(BlockSlice {
                block: Arc::clone(&self.block),
                range,
            }),
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
                let cut = self.chunker.scan(self.block.get(self.start..self.end));
                // A cut inside the window is final; one at its end is final only if the
                // window is already `max` long or the input has ended.
                if cut < available || self.eof || available >= self.chunker.params().max() {
                    return Some(Ok(self.take(cut)));
                }
            } else if self.eof {
                self.done = true;
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}
