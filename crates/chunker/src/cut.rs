//! The cut-point search over in-memory data.

use std::sync::Arc;

use fastcdc::v2020::{cut_gear, select_masks, Normalization};

use crate::{ChunkerParams, ChunkerSecret, GearTable, StreamChunker};

/// Finds content-defined cut points with one repository's parameters and gear table.
///
/// Cheap to clone (the table is shared), `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    table: Arc<GearTable>,
}

/// One chunk of an in-memory input: `data[offset..offset + length]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Chunk {
    /// Byte offset of the chunk in the input.
    pub offset: usize,
    /// Length in bytes (never zero).
    pub length: usize,
}

impl Chunker {
    /// A chunker with the table derived from `secret` (what repositories use).
    pub fn new(params: ChunkerParams, secret: &ChunkerSecret) -> Self {
        Self::with_table(params, GearTable::keyed(secret))
    }

    /// A chunker with an explicit table, e.g. [`GearTable::canonical`] in tests.
    pub fn with_table(params: ChunkerParams, table: GearTable) -> Self {
        let (mask_s, mask_l) = select_masks(params.avg(), Normalization::Level1);
        Chunker {
            params,
            mask_s,
            mask_l,
            table: Arc::new(table),
        }
    }

    /// The parameters this chunker cuts with.
    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    /// Length of the chunk that starts at `window[0]`, looking at no more than `max` bytes.
    ///
    /// If the returned length is shorter than `window`, it is a true cut point whatever
    /// bytes follow the window. If it equals `window.len()` and the window is shorter than
    /// `max`, the cut is only valid if the window ends the input. (The cut decision at
    /// position `c` depends only on bytes `..=c`, and the strict mask applies below
    /// `min(avg, window.len())`, which agrees with the full-length scan for every tested
    /// position inside the window.)
    pub(crate) fn scan(&self, window: &[u8]) -> usize {
        let p = &self.params;
        let (_hash, cut) = cut_gear(
            window,
            p.min(),
            p.avg(),
            p.max(),
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            self.table.gear(),
            self.table.gear_ls(),
        );
        cut
    }

    /// Length of the first chunk of `data`, where `data` is the whole rest of the input.
    /// Returns 0 only for empty input.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        self.scan(data)
    }

    /// Iterates over the chunks of an in-memory input, in order, covering every byte.
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> SliceChunks<'a> {
        SliceChunks {
            chunker: self,
            data,
            offset: 0,
        }
    }

    /// Chunks a reader with a reusable buffer of `2 × max` bytes; see [`StreamChunker`].
    pub fn stream<R: std::io::Read>(&self, reader: R) -> StreamChunker<R> {
        StreamChunker::new(self.clone(), reader, None)
    }

    /// Like [`Chunker::stream`] for an input of about `size` bytes (a file's length): the
    /// buffer is sized to it, so many mid-sized files cost no `2 × max` allocation each.
    /// Cut points are the same whatever the hint, also if the input turns out longer.
    pub fn stream_sized<R: std::io::Read>(&self, reader: R, size: u64) -> StreamChunker<R> {
        StreamChunker::new(self.clone(), reader, Some(size))
    }
}

/// Iterator over the chunks of a slice; see [`Chunker::chunks`].
#[derive(Debug)]
pub struct SliceChunks<'a> {
    chunker: &'a Chunker,
    data: &'a [u8],
    offset: usize,
}

impl Iterator for SliceChunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        let rest = &self.data[self.offset..];
        if rest.is_empty() {
            return None;
        }
        let length = self.chunker.scan(rest);
        let chunk = Chunk {
            offset: self.offset,
            length,
        };
        self.offset += length;
        Some(chunk)
    }
}
