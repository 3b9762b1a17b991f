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
    /// Length of the chunk that starts a run of at least `max` zero bytes (see `scan`).
    zero_cut: usize,
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
        let mut chunker = Chunker {
            params,
            mask_s,
            mask_l,
            table: Arc::new(table),
            zero_cut: 0,
        };
        chunker.zero_cut = chunker.gear_scan(&vec![0u8; params.max()]);
        chunker
    }

    /// Length of the chunk cut from a run of at least `max` zero bytes (a hole of a sparse
    /// file, a zeroed region of a disk image): every chunk that starts inside such a run,
    /// far enough from its end, has exactly this length and these bytes.
    pub fn zero_chunk_len(&self) -> usize {
        self.zero_cut
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
        // A window of at least `max` bytes is cut as its first `max` bytes are, and the cut
        // decision at `c` reads only bytes up to `c`: so a window that starts with
        // `zero_cut` zero bytes is cut exactly where `max` zeros are. Checking for zeros
        // runs at memory speed, several times faster than the gear hash, which makes the
        // holes of sparse files and zeroed disk regions almost free.
        if window.len() >= self.params.max() && is_zero(&window[..self.zero_cut]) {
            return self.zero_cut;
        }
        self.gear_scan(window)
    }

    /// The gear-hash cut search itself (fastcdc's `cut_gear`).
    fn gear_scan(&self, window: &[u8]) -> usize {
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

/// True if every byte of `data` is zero. Blocks of 4 KiB are OR-folded (which vectorizes)
/// and the search stops at the first block with a non-zero byte, so data that is not zero
/// costs one block.
pub fn is_zero(data: &[u8]) -> bool {
    data.chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunker(seed: u8) -> Chunker {
        let params = ChunkerParams::new(256, 1024, 4096).expect("valid");
        Chunker::new(params, &ChunkerSecret::from_bytes([seed; 32]))
    }

    /// Chunk lengths by the gear hash alone, without the zero-run shortcut.
    fn reference(chunker: &Chunker, data: &[u8]) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut offset = 0;
        while offset < data.len() {
            let length = chunker.gear_scan(&data[offset..]);
            lengths.push(length);
            offset += length;
        }
        lengths
    }

    /// Runs of zeros and of noise, in the lengths given.
    fn runs(parts: &[(bool, usize)], seed: u64) -> Vec<u8> {
        let mut xof = blake3::Hasher::new()
            .update(&seed.to_le_bytes())
            .finalize_xof();
        let mut data = Vec::new();
        for &(zero, len) in parts {
            let start = data.len();
            data.resize(start + len, 0);
            if !zero {
                xof.fill(&mut data[start..]);
            }
        }
        data
    }

    #[test]
    fn a_long_zero_run_is_cut_in_zero_chunk_lengths() {
        let c = chunker(3);
        assert_eq!(c.zero_chunk_len(), c.gear_scan(&[0u8; 4096]));
        let data = vec![0u8; 50_000];
        let lengths: Vec<usize> = c.chunks(&data).map(|c| c.length).collect();
        assert_eq!(lengths, reference(&c, &data));
        let whole = data.len() / c.zero_chunk_len();
        assert!(lengths[..whole - 1]
            .iter()
            .all(|&l| l == c.zero_chunk_len()));
    }

    #[test]
    fn is_zero_finds_one_set_byte_anywhere() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0u8; 10_000]));
        for at in [0, 1, 4095, 4096, 9_999] {
            let mut data = vec![0u8; 10_000];
            data[at] = 1;
            assert!(!is_zero(&data), "{at}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn zero_runs_are_cut_as_the_gear_hash_cuts_them(
            parts in prop::collection::vec((any::<bool>(), 1usize..14_000), 1..8),
            seed in any::<u64>(),
            key in any::<u8>(),
        ) {
            let data = runs(&parts, seed);
            let c = chunker(key);
            let lengths: Vec<usize> = c.chunks(&data).map(|c| c.length).collect();
            prop_assert_eq!(lengths, reference(&c, &data));
        }
    }
}
