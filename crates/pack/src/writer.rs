//! Assembling packs.

use bytes::Bytes;

use crate::crypto::seal;
use crate::header::{encode_header, HEADER_AD};
use crate::reader::PackReader;
use crate::{EncodedBlob, MasterKeys, PackEntry, PackError, PackId};

/// Default target pack size: 16 MiB.
pub const DEFAULT_PACK_SIZE: usize = 16 * 1024 * 1024;
/// Smallest accepted target pack size.
pub const MIN_PACK_SIZE: usize = 64 * 1024;
/// Largest accepted target pack size. A pack is finished once its blob bytes reach the target,
/// so it may exceed it by less than one blob: at most 2 GiB + 1 GiB + 40 bytes of blobs, which
/// still fits the 32-bit offsets.
pub const MAX_PACK_SIZE: usize = 1 << 31;
/// Blob bytes a pack may hold: every blob's `offset + stored_len` is a `u32`.
const PACK_LEN_LIMIT: u64 = u32::MAX as u64;

/// Collects encoded blobs into one pack.
///
/// Blobs are kept as the `Bytes` the encoder produced and never copied: a finished pack is a
/// list of parts, which object stores take as one vectored upload.
#[derive(Debug)]
pub struct PackWriter {
    target_size: usize,
    parts: Vec<Bytes>,
    entries: Vec<PackEntry>,
    len: u64,
}

/// A sealed pack: its id, its bytes (as parts, in order) and its entries.
#[derive(Clone, Debug)]
pub struct FinishedPack {
    /// BLAKE3 of the whole pack.
    pub id: PackId,
    /// The pack's bytes, in order; concatenated they are the pack file.
    pub parts: Vec<Bytes>,
    /// Total length in bytes.
    pub len: u64,
    /// The blobs it holds, as its header lists them.
    pub entries: Vec<PackEntry>,
}

impl FinishedPack {
    /// The pack as one contiguous buffer (copies; for tests and small packs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len as usize);
        for part in &self.parts {
            out.extend_from_slice(part);
        }
        out
    }
}

impl PackWriter {
    /// A writer that reports [`PackWriter::is_full`] once `target_size` bytes are reached.
    ///
    /// # Errors
    /// [`PackError::InvalidParameter`] outside `MIN_PACK_SIZE..=MAX_PACK_SIZE`.
    pub fn new(target_size: usize) -> Result<Self, PackError> {
        if !(MIN_PACK_SIZE..=MAX_PACK_SIZE).contains(&target_size) {
            return Err(PackError::InvalidParameter(format!(
                "pack size {target_size} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE}"
            )));
        }
        Ok(PackWriter {
            target_size,
            parts: Vec::new(),
            entries: Vec::new(),
            len: 0,
        })
    }

    /// Appends a blob.
    ///
    /// # Errors
    /// [`PackError::TooLarge`] if the pack's blob bytes would pass the 4 GiB offset limit:
    /// never for a caller that finishes the pack once [`PackWriter::is_full`] (target at most
    /// [`MAX_PACK_SIZE`]) and adds blobs within the blob limit, since then the pack holds
    /// less than the target before the add plus one blob of at most 1 GiB + 40 bytes.
    pub fn add(&mut self, blob: EncodedBlob) -> Result<(), PackError> {
        let stored_len = blob.sealed.len() as u64;
        if self.len + stored_len > PACK_LEN_LIMIT {
            return Err(PackError::TooLarge {
                what: "pack",
                size: self.len + stored_len,
                limit: PACK_LEN_LIMIT,
            });
        }
        self.entries.push(PackEntry {
            blob_type: blob.blob_type,
            compression: blob.compression,
            offset: self.len as u32,
            stored_len: stored_len as u32,
            plain_len: blob.plain_len,
            id: blob.id,
        });
        self.len += stored_len;
        self.parts.push(blob.sealed);
        Ok(())
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of blobs so far.
    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// True once the target size is reached; the caller should finish the pack.
    pub fn is_full(&self) -> bool {
        self.len >= self.target_size as u64
    }

    /// Seals the header, appends it and its length, and verifies the result by parsing the
    /// header back from the finished bytes exactly as a reader would.
    ///
    /// # Errors
    /// [`PackError::Random`] if no nonce could be drawn; [`PackError::Malformed`] if the
    /// re-read header differs (a bug, never expected).
    pub fn finish(mut self, keys: &MasterKeys) -> Result<FinishedPack, PackError> {
        let sealed = seal(keys.data_key(), HEADER_AD, &encode_header(&self.entries))?;
        let mut tail = sealed;
        tail.extend_from_slice(&(tail.len() as u32).to_le_bytes());
        let tail = Bytes::from(tail);
        self.len += tail.len() as u64;
        self.parts.push(tail.clone());

        let mut hasher = blake3::Hasher::new();
        for part in &self.parts {
            hasher.update(part);
        }
        let id = PackId(*hasher.finalize().as_bytes());

        // The tail part holds the whole sealed header, so one "ranged read" suffices.
        let reread = PackReader::from_tail(keys, self.len, &tail)?;
        if reread != self.entries {
            return Err(crate::error::malformed(
                "pack header",
                "re-read header differs from the written one",
            ));
        }
        Ok(FinishedPack {
            id,
            parts: self.parts,
            len: self.len,
            entries: self.entries,
        })
    }
}
