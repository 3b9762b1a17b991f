//! Index files: binary, zstd-compressed, sealed (docs/format.md#index-files).
//!
//! Plaintext:
//! ```text
//! version u8 = 1 ‖ pack count u32 ‖ per pack: pack id [32] ‖ entry count u32 ‖ entries (46 each)
//! ```
//! Entries use the pack-header encoding; within a pack they are in offset order and do not
//! overlap.

use cairn_pack::{decode_entry, encode_entry, PackEntry, PackId, ENTRY_LEN};

use crate::error::{RepoError, Result};

const VERSION: u8 = 1;

/// One pack as an index file lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexPack {
    /// The pack.
    pub id: PackId,
    /// Every blob in it.
    pub entries: Vec<PackEntry>,
}

/// The content of one index file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexFile {
    /// Packs listed.
    pub packs: Vec<IndexPack>,
}

impl crate::object::SealedFile for IndexFile {
    const FILE_TYPE: crate::storage::FileType = crate::storage::FileType::Index;
    const KIND: crate::object::ObjectKind = crate::object::ObjectKind::Index;
    type Id = crate::object::IndexId;

    fn encode_file(&self) -> Vec<u8> {
        self.encode()
    }

    fn decode_file(plain: &[u8], object: &str) -> Result<Self> {
        Self::decode(plain, object)
    }
}

impl IndexFile {
    /// Serializes.
    pub fn encode(&self) -> Vec<u8> {
        let entries: usize = self.packs.iter().map(|p| p.entries.len()).sum();
        let mut out = Vec::with_capacity(5 + self.packs.len() * 36 + entries * ENTRY_LEN);
        out.push(VERSION);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for pack in &self.packs {
            out.extend_from_slice(pack.id.as_bytes());
            out.extend_from_slice(&(pack.entries.len() as u32).to_le_bytes());
            for entry in &pack.entries {
                encode_entry(entry, &mut out);
            }
        }
        out
    }

    /// Parses and validates. `object` names the file in errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<IndexFile> {
        let bad = |reason: String| RepoError::corrupt(object, reason);
        let mut rest = bytes;
        let mut take = |n: usize, what: &str| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad(format!("truncated in {what}")));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let version = take(1, "version")?[0];
        if version != VERSION {
            return Err(bad(format!("unsupported index version {version}")));
        }
        let pack_count = u32::from_le_bytes(take(4, "pack count")?.try_into().expect("4")) as usize;
        // Each pack needs at least 36 bytes: bound the allocation by the input.
        let mut packs = Vec::with_capacity(pack_count.min(bytes.len() / 36));
        for p in 0..pack_count {
            let id = PackId(take(32, "pack id")?.try_into().expect("32"));
            let count = u32::from_le_bytes(take(4, "entry count")?.try_into().expect("4")) as usize;
            let raw = take(
                count
                    .checked_mul(ENTRY_LEN)
                    .ok_or_else(|| bad("entry count overflows".into()))?,
                "entries",
            )?;
            let mut entries = Vec::with_capacity(count);
            let mut end = 0u64;
            for (i, chunk) in raw.chunks_exact(ENTRY_LEN).enumerate() {
                let entry = decode_entry(chunk.try_into().expect("ENTRY_LEN"), "index entry", i)
                    .map_err(|e| bad(format!("pack {p} ({id}): {e}")))?;
                if (entry.offset as u64) < end {
                    return Err(bad(format!(
                        "pack {id}: entry {i} overlaps the previous blob"
                    )));
                }
                end = entry.offset as u64 + entry.stored_len as u64;
                entries.push(entry);
            }
            packs.push(IndexPack { id, entries });
        }
        if !rest.is_empty() {
            return Err(bad(format!("{} trailing bytes", rest.len())));
        }
        Ok(IndexFile { packs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_pack::{BlobId, BlobType, Compression};
    use proptest::prelude::*;

    fn arb_pack() -> impl Strategy<Value = IndexPack> {
        (
            any::<[u8; 32]>(),
            prop::collection::vec(
                (any::<[u8; 32]>(), any::<bool>(), 0u32..1000, 40u32..5000),
                0..20,
            ),
        )
            .prop_map(|(id, blobs)| {
                let mut offset = 0;
                let entries = blobs
                    .into_iter()
                    .map(|(bid, tree, plain, stored)| {
                        let e = PackEntry {
                            blob_type: if tree { BlobType::Tree } else { BlobType::Data },
                            compression: Compression::Zstd,
                            offset,
                            stored_len: stored,
                            plain_len: plain,
                            id: BlobId(bid),
                        };
                        offset += stored;
                        e
                    })
                    .collect();
                IndexPack {
                    id: PackId(id),
                    entries,
                }
            })
    }

    proptest! {
        #[test]
        fn round_trip(packs in prop::collection::vec(arb_pack(), 0..5)) {
            let file = IndexFile { packs };
            let bytes = file.encode();
            prop_assert_eq!(IndexFile::decode(&bytes, "i").unwrap(), file);
            for cut in 0..bytes.len() {
                prop_assert!(IndexFile::decode(&bytes[..cut], "i").is_err());
            }
        }

        #[test]
        fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = IndexFile::decode(&bytes, "i");
        }
    }

    #[test]
    fn overlapping_entries_rejected() {
        let e = PackEntry {
            blob_type: BlobType::Data,
            compression: Compression::Zstd,
            offset: 0,
            stored_len: 100,
            plain_len: 200,
            id: BlobId([1; 32]),
        };
        let file = IndexFile {
            packs: vec![IndexPack {
                id: PackId([0; 32]),
                entries: vec![e, PackEntry { offset: 50, ..e }],
            }],
        };
        let err = IndexFile::decode(&file.encode(), "index/x").unwrap_err();
        assert!(err.to_string().contains("overlaps"), "{err}");
        assert!(err.to_string().contains("index/x"));
    }
}
