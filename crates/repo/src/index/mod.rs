//! The index: which pack holds each blob, where.
//!
//! On storage: index files ([`IndexFile`], docs/format.md#index-files), each listing whole
//! packs. Writers only add index files; nothing is rewritten in place.
//! In memory: [`Index`], one sorted table of 48-byte slots (id, pack number and type,
//! offset, stored length, plaintext length), searched by bisection.

mod file;

pub use file::{IndexFile, IndexPack};

use std::collections::HashMap;

use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId, SEAL_OVERHEAD};

/// One slot of the in-memory table. 48 bytes, no padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Slot {
    id: [u8; 32],
    /// Pack number in `Index::packs`; the top bit marks tree blobs.
    pack_and_type: u32,
    offset: u32,
    stored_len: u32,
    plain_len: u32,
}

const TREE_BIT: u32 = 1 << 31;

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLocation {
    /// The pack holding it.
    pub pack: PackId,
    /// Its entry in that pack's header.
    pub entry: PackEntry,
}

/// All index files merged: blob id → location. Immutable once built; 48 bytes per blob plus
/// 32 per pack.
#[derive(Clone, Debug, Default)]
pub struct Index {
    packs: Vec<PackId>,
    slots: Vec<Slot>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the table from index files. A blob listed in several packs keeps one location
    /// (the first seen); all packs stay listed.
    ///
    /// # Errors
    /// If more than 2^31 packs are listed.
    pub fn build<'a>(
        files: impl IntoIterator<Item = &'a IndexFile>,
    ) -> Result<Index, crate::RepoError> {
        let mut builder = IndexBuilder::default();
        for file in files {
            for pack in &file.packs {
                builder.add_pack(pack.id, &pack.entries)?;
            }
        }
        Ok(builder.finish())
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every pack any index file lists.
    pub fn packs(&self) -> &[PackId] {
        &self.packs
    }

    /// Bytes of memory the table occupies (slots and pack ids).
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.packs.capacity() * std::mem::size_of::<PackId>()
    }

    fn find(&self, id: &BlobId) -> Option<&Slot> {
        self.slots
            .binary_search_by(|slot| slot.id.cmp(id.as_bytes()))
            .ok()
            .map(|i| &self.slots[i])
    }

    /// True if the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        self.find(id).is_some()
    }

    /// Where the blob is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        self.find(id).map(|slot| self.location(slot))
    }

    fn location(&self, slot: &Slot) -> BlobLocation {
        let pack_number = slot.pack_and_type & !TREE_BIT;
        let blob_type = if slot.pack_and_type & TREE_BIT != 0 {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        // Compressed blobs are always shorter than their plaintext (writers store the
        // plaintext otherwise), so the compression flag need not take a byte per slot.
        let compression = if (slot.stored_len as usize - SEAL_OVERHEAD) < slot.plain_len as usize {
            Compression::Zstd
        } else {
            Compression::None
        };
        BlobLocation {
            pack: self.packs[pack_number as usize],
            entry: PackEntry {
                blob_type,
                compression,
                offset: slot.offset,
                stored_len: slot.stored_len,
                plain_len: slot.plain_len,
                id: BlobId(slot.id),
            },
        }
    }

    /// Every indexed blob, in id order.
    pub fn iter(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.slots.iter().map(|slot| self.location(slot))
    }
}

/// Accumulates packs into an [`Index`].
#[derive(Debug, Default)]
pub struct IndexBuilder {
    packs: Vec<PackId>,
    pack_numbers: HashMap<PackId, u32>,
    slots: Vec<Slot>,
}

impl IndexBuilder {
    /// Adds one pack's entries (a pack seen before is ignored).
    pub fn add_pack(
        &mut self,
        pack: PackId,
        entries: &[PackEntry],
    ) -> Result<(), crate::RepoError> {
        if self.pack_numbers.contains_key(&pack) {
            return Ok(());
        }
        let number = u32::try_from(self.packs.len())
            .ok()
            .filter(|n| n & TREE_BIT == 0)
            .ok_or_else(|| crate::RepoError::InvalidInput("more than 2^31 packs".into()))?;
        self.packs.push(pack);
        self.pack_numbers.insert(pack, number);
        self.slots.extend(entries.iter().map(|e| Slot {
            id: e.id.0,
            pack_and_type: number
                | if e.blob_type == BlobType::Tree {
                    TREE_BIT
                } else {
                    0
                },
            offset: e.offset,
            stored_len: e.stored_len,
            plain_len: e.plain_len,
        }));
        Ok(())
    }

    /// Sorts and deduplicates into the final table.
    pub fn finish(mut self) -> Index {
        self.slots
            .sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack_and_type.cmp(&b.pack_and_type)));
        self.slots.dedup_by(|later, earlier| later.id == earlier.id);
        self.slots.shrink_to_fit();
        self.packs.shrink_to_fit();
        Index {
            packs: self.packs,
            slots: self.slots,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: u8, offset: u32, blob_type: BlobType, compressed: bool) -> PackEntry {
        PackEntry {
            blob_type,
            compression: if compressed {
                Compression::Zstd
            } else {
                Compression::None
            },
            offset,
            stored_len: if compressed { 60 } else { 140 },
            plain_len: 100,
            id: BlobId([id; 32]),
        }
    }

    #[test]
    fn slot_is_48_bytes() {
        assert_eq!(std::mem::size_of::<Slot>(), 48);
    }

    #[test]
    fn lookup_types_compression_and_dedup() {
        let p1 = PackId([1; 32]);
        let p2 = PackId([2; 32]);
        let file = IndexFile {
            packs: vec![
                IndexPack {
                    id: p1,
                    entries: vec![
                        entry(5, 0, BlobType::Data, true),
                        entry(7, 60, BlobType::Tree, false),
                    ],
                },
                IndexPack {
                    id: p2,
                    entries: vec![entry(5, 0, BlobType::Data, true)],
                },
            ],
        };
        let index = Index::build([&file]).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.packs(), &[p1, p2]);
        let five = index.get(&BlobId([5; 32])).unwrap();
        assert_eq!(five.pack, p1);
        assert_eq!(five.entry, entry(5, 0, BlobType::Data, true));
        let seven = index.get(&BlobId([7; 32])).unwrap();
        assert_eq!(seven.entry, entry(7, 60, BlobType::Tree, false));
        assert!(!index.contains(&BlobId([6; 32])));
    }
}
