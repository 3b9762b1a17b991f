//! Reading packs: the header from the tail, then any blob by its entry.
//!
//! The reader does no I/O. A caller fetches `tail_range(pack_len)` (one ranged read), calls
//! [`PackReader::locate_header`] and, if the sealed header is longer than that first read,
//! fetches the one range it names.

use std::ops::Range;

use crate::crypto::{open, SEAL_OVERHEAD};
use crate::error::malformed;
use crate::header::{parse_header_plaintext, HEADER_AD, HEADER_PREFIX_LEN};
use crate::{MasterKeys, PackEntry, PackError};

/// Bytes the trailer (sealed header length, u32 LE) takes.
pub const TRAILER_LEN: u64 = 4;
/// Size of the first tail read: the trailer plus a header of up to ~1400 entries.
pub const TAIL_READ_LEN: u64 = 64 * 1024;

/// Namespace for pack-reading functions.
#[derive(Debug)]
pub struct PackReader;

impl PackReader {
    /// The range of the first read: the last `min(pack_len, TAIL_READ_LEN)` bytes.
    pub fn tail_range(pack_len: u64) -> Range<u64> {
        pack_len.saturating_sub(TAIL_READ_LEN)..pack_len
    }

    /// From the last `tail.len()` bytes of a pack of `pack_len` bytes, the range of its sealed
    /// header (excluding the trailer).
    ///
    /// # Errors
    /// [`PackError::Malformed`] for a pack too short to hold a header or a length that does
    /// not fit the pack.
    pub fn locate_header(pack_len: u64, tail: &[u8]) -> Result<Range<u64>, PackError> {
        const WHAT: &str = "pack trailer";
        let min_len = TRAILER_LEN + (SEAL_OVERHEAD + HEADER_PREFIX_LEN) as u64;
        if pack_len < min_len {
            return Err(malformed(
                WHAT,
                format!("pack of {pack_len} bytes is shorter than the minimum {min_len}"),
            ));
        }
        if (tail.len() as u64) < TRAILER_LEN || tail.len() as u64 > pack_len {
            return Err(malformed(
                WHAT,
                format!("tail of {} bytes for a pack of {pack_len}", tail.len()),
            ));
        }
        let header_len =
            u32::from_le_bytes(tail[tail.len() - 4..].try_into().expect("4 bytes")) as u64;
        if header_len < (SEAL_OVERHEAD + HEADER_PREFIX_LEN) as u64
            || header_len + TRAILER_LEN > pack_len
        {
            return Err(malformed(
                WHAT,
                format!(
                    "sealed header length {header_len} does not fit a pack of {pack_len} bytes"
                ),
            ));
        }
        let end = pack_len - TRAILER_LEN;
        Ok(end - header_len..end)
    }

    /// Authenticates and parses a sealed header read from `header_range` of a pack.
    pub fn parse_header(
        keys: &MasterKeys,
        pack_len: u64,
        header_range: Range<u64>,
        sealed: &[u8],
    ) -> Result<Vec<PackEntry>, PackError> {
        if sealed.len() as u64 != header_range.end - header_range.start
            || header_range.end + TRAILER_LEN != pack_len
        {
            return Err(malformed(
                "pack header",
                "header bytes do not match the located range",
            ));
        }
        let plain = open(keys.data_key(), HEADER_AD, sealed, || {
            "pack header".to_string()
        })?;
        parse_header_plaintext(&plain, header_range.start)
    }

    /// Parses the header when `tail` (the last bytes of the pack) already holds all of it.
    ///
    /// # Errors
    /// As [`PackReader::locate_header`] and [`PackReader::parse_header`], and
    /// [`PackError::Malformed`] if the tail is too short (use the two-step API then).
    pub fn from_tail(
        keys: &MasterKeys,
        pack_len: u64,
        tail: &[u8],
    ) -> Result<Vec<PackEntry>, PackError> {
        let range = Self::locate_header(pack_len, tail)?;
        let tail_start = pack_len - tail.len() as u64;
        if range.start < tail_start {
            return Err(malformed(
                "pack header",
                "the tail read does not hold the whole header",
            ));
        }
        let local = (range.start - tail_start) as usize..(range.end - tail_start) as usize;
        Self::parse_header(keys, pack_len, range, &tail[local])
    }

    /// Parses the header of a whole pack held in memory.
    pub fn from_bytes(keys: &MasterKeys, pack: &[u8]) -> Result<Vec<PackEntry>, PackError> {
        Self::from_tail(keys, pack.len() as u64, pack)
    }

    /// The sealed bytes of one blob within a whole pack held in memory.
    ///
    /// # Errors
    /// [`PackError::Malformed`] if the entry's range lies outside `pack`.
    pub fn blob_bytes<'a>(pack: &'a [u8], entry: &PackEntry) -> Result<&'a [u8], PackError> {
        let range = entry.range();
        pack.get(range.start as usize..range.end as usize)
            .ok_or_else(|| {
                malformed(
                    "pack",
                    format!("blob {} at {range:?} is outside the pack", entry.id),
                )
            })
    }
}
