//! The pack header: one fixed-size entry per blob, sealed, at the end of the pack.
//!
//! Plaintext layout (docs/format.md#pack-header), little-endian:
//!
//! ```text
//! 0  1      version = 1
//! 1  4      n = number of entries
//! 5  46 × n entries: type u8 ‖ compression u8 ‖ offset u32 ‖ stored length u32
//!                    ‖ plaintext length u32 ‖ id [32]
//! ```
//! Entries are in pack order and tile the data region exactly: the first starts at 0, each
//! next one where the previous ended, and the last ends where the sealed header begins.

use crate::blob::{Compression, MAX_BLOB_LEN};
use crate::crypto::SEAL_OVERHEAD;
use crate::error::malformed;
use crate::{BlobId, BlobType, PackError};

/// Format version of the header plaintext.
pub const HEADER_VERSION: u8 = 1;
/// Bytes per header entry.
pub const ENTRY_LEN: usize = 46;
/// Bytes before the first entry.
pub const HEADER_PREFIX_LEN: usize = 5;
/// AD of the sealed header.
pub(crate) const HEADER_AD: &[u8] = b"cairn pack header v1";

/// Where one blob lives in its pack and how to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PackEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// How the payload is stored.
    pub compression: Compression,
    /// Offset of the sealed blob from the start of the pack.
    pub offset: u32,
    /// Length of the sealed blob (payload + 40).
    pub stored_len: u32,
    /// Length of the plaintext.
    pub plain_len: u32,
    /// The blob's id.
    pub id: BlobId,
}

impl PackEntry {
    /// Byte range of the sealed blob within the pack.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset as u64..self.offset as u64 + self.stored_len as u64
    }
}

pub(crate) fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_PREFIX_LEN + ENTRY_LEN * entries.len());
    out.push(HEADER_VERSION);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        encode_entry(e, &mut out);
    }
    out
}

/// Appends the 46-byte encoding of one entry (shared by pack headers and index files).
pub fn encode_entry(e: &PackEntry, out: &mut Vec<u8>) {
    out.push(e.blob_type.to_byte());
    out.push(e.compression.to_byte());
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.stored_len.to_le_bytes());
    out.extend_from_slice(&e.plain_len.to_le_bytes());
    out.extend_from_slice(e.id.as_bytes());
}

/// Decodes one 46-byte entry and checks the rules that need no context: known type and
/// compression, stored length ≥ 40, plaintext length ≤ 1 GiB, and for uncompressed blobs
/// stored length = plaintext length + 40. `what` names the containing object in errors.
pub fn decode_entry(
    raw: &[u8; ENTRY_LEN],
    what: &'static str,
    index: usize,
) -> Result<PackEntry, PackError> {
    let u32_at = |at: usize| u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes"));
    let blob_type = BlobType::from_byte(raw[0])
        .ok_or_else(|| malformed(what, format!("entry {index}: unknown blob type {}", raw[0])))?;
    let compression = Compression::from_byte(raw[1]).ok_or_else(|| {
        malformed(
            what,
            format!("entry {index}: unknown compression {}", raw[1]),
        )
    })?;
    let entry = PackEntry {
        blob_type,
        compression,
        offset: u32_at(2),
        stored_len: u32_at(6),
        plain_len: u32_at(10),
        id: BlobId(raw[14..46].try_into().expect("32 bytes")),
    };
    if (entry.stored_len as usize) < SEAL_OVERHEAD {
        return Err(malformed(
            what,
            format!(
                "entry {index}: stored length {} is below 40",
                entry.stored_len
            ),
        ));
    }
    if entry.plain_len > MAX_BLOB_LEN {
        return Err(malformed(
            what,
            format!(
                "entry {index}: plaintext length {} exceeds 1 GiB",
                entry.plain_len
            ),
        ));
    }
    if compression == Compression::None
        && entry.stored_len as u64 != entry.plain_len as u64 + SEAL_OVERHEAD as u64
    {
        return Err(malformed(
            what,
            format!(
                "entry {index}: uncompressed blob of {} bytes stored in {}",
                entry.plain_len, entry.stored_len
            ),
        ));
    }
    Ok(entry)
}

/// Parses and validates an authenticated header plaintext for a pack whose data region is
/// `data_len` bytes long.
///
/// # Errors
/// [`PackError::Malformed`] naming the first inconsistency.
pub fn parse_header_plaintext(plain: &[u8], data_len: u64) -> Result<Vec<PackEntry>, PackError> {
    const WHAT: &str = "pack header";
    if plain.len() < HEADER_PREFIX_LEN {
        return Err(malformed(
            WHAT,
            format!("{} bytes is too short", plain.len()),
        ));
    }
    if plain[0] != HEADER_VERSION {
        return Err(malformed(WHAT, format!("unsupported version {}", plain[0])));
    }
    let count = u32::from_le_bytes(plain[1..5].try_into().expect("4 bytes")) as usize;
    let body = &plain[HEADER_PREFIX_LEN..];
    if body.len() % ENTRY_LEN != 0 || body.len() / ENTRY_LEN != count {
        return Err(malformed(
            WHAT,
            format!(
                "{count} entries declared but {} bytes of entries",
                body.len()
            ),
        ));
    }
    // `count` is now bounded by the (already allocated) input, so this allocation is too.
    let mut entries = Vec::with_capacity(count);
    let mut expected_offset = 0u64;
    for (i, raw) in body.chunks_exact(ENTRY_LEN).enumerate() {
        let entry = decode_entry(raw.try_into().expect("ENTRY_LEN bytes"), WHAT, i)?;
        if entry.offset as u64 != expected_offset {
            return Err(malformed(
                WHAT,
                format!(
                    "entry {i} starts at {} but the previous blob ends at {expected_offset}",
                    entry.offset
                ),
            ));
        }
        expected_offset += entry.stored_len as u64;
        if expected_offset > data_len {
            return Err(malformed(
                WHAT,
                format!(
                    "entry {i} ends at {expected_offset}, past the data region of {data_len} bytes"
                ),
            ));
        }
        entries.push(entry);
    }
    if expected_offset != data_len {
        return Err(malformed(
            WHAT,
            format!("blobs cover {expected_offset} bytes but the data region is {data_len}"),
        ));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(offset: u32, stored_len: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            compression: Compression::Zstd,
            offset,
            stored_len,
            plain_len: 100,
            id: BlobId([offset as u8; 32]),
        }
    }

    #[test]
    fn round_trip() {
        let entries = vec![entry(0, 50), entry(50, 60)];
        let plain = encode_header(&entries);
        assert_eq!(plain.len(), HEADER_PREFIX_LEN + 2 * ENTRY_LEN);
        assert_eq!(parse_header_plaintext(&plain, 110).unwrap(), entries);
        assert_eq!(
            parse_header_plaintext(&encode_header(&[]), 0).unwrap(),
            vec![]
        );
    }

    #[test]
    fn inconsistent_layouts_are_rejected() {
        let cases: Vec<(Vec<PackEntry>, u64, &str)> = vec![
            (vec![entry(0, 50), entry(60, 60)], 120, "starts at 60"),
            (vec![entry(0, 50)], 49, "past the data region"),
            (vec![entry(0, 50)], 51, "cover 50"),
            (vec![entry(0, 10)], 10, "below 40"),
        ];
        for (entries, data_len, needle) in cases {
            let err = parse_header_plaintext(&encode_header(&entries), data_len).unwrap_err();
            assert!(err.to_string().contains(needle), "{err}");
        }
        let mut plain = encode_header(&[entry(0, 50)]);
        plain[1] = 2;
        assert!(parse_header_plaintext(&plain, 50)
            .unwrap_err()
            .to_string()
            .contains("2 entries"));
        let mut plain = encode_header(&[entry(0, 50)]);
        plain[5] = 7;
        assert!(parse_header_plaintext(&plain, 50)
            .unwrap_err()
            .to_string()
            .contains("blob type 7"));
        let mut plain = encode_header(&[entry(0, 50)]);
        plain[0] = 9;
        assert!(parse_header_plaintext(&plain, 50)
            .unwrap_err()
            .to_string()
            .contains("version 9"));
    }
}
