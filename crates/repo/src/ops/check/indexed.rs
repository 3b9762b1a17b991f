//! What check keeps of the index files while it checks the packs: each indexed pack's
//! entries, spilled to a temporary file as the index files are read, so check's memory
//! grows with the number of packs (one map entry each), not with the number of blobs.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use cairn_pack::{decode_entry, encode_entry, PackEntry, PackId, ENTRY_LEN};

use crate::error::{RepoError, Result};

/// Every indexed pack, the first index file listing it winning, with its entries on disk.
pub(crate) struct IndexedPacks {
    spill: File,
    written: u64,
    /// Offset of the pack's entries in the spill file, and their number.
    packs: BTreeMap<PackId, (u64, u32)>,
}

impl IndexedPacks {
    /// An empty set spilling into a temporary file in `dir` (the system's temporary
    /// directory without one).
    pub(crate) fn new(dir: Option<&Path>) -> Result<IndexedPacks> {
        let spill = match dir {
            Some(dir) => tempfile::tempfile_in(dir).map_err(|e| RepoError::io(dir, e))?,
            None => tempfile::tempfile().map_err(|e| RepoError::io(std::env::temp_dir(), e))?,
        };
        Ok(IndexedPacks {
            spill,
            written: 0,
            packs: BTreeMap::new(),
        })
    }

    /// Records a pack's entries, unless an earlier index file listed the pack.
    pub(crate) fn add(&mut self, pack: PackId, entries: &[PackEntry]) -> Result<()> {
        if self.packs.contains_key(&pack) {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(entries.len() * ENTRY_LEN);
        for entry in entries {
            encode_entry(entry, &mut bytes);
        }
        self.spill
            .write_all_at(&bytes, self.written)
            .map_err(|e| RepoError::io("check's spill file", e))?;
        let count = u32::try_from(entries.len())
            .map_err(|_| RepoError::InvalidInput(format!("pack {pack} lists too many blobs")))?;
        self.packs.insert(pack, (self.written, count));
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Number of packs.
    pub(crate) fn len(&self) -> usize {
        self.packs.len()
    }

    /// True if an index file lists the pack.
    pub(crate) fn contains(&self, pack: &PackId) -> bool {
        self.packs.contains_key(pack)
    }

    /// The packs, in id order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = &PackId> {
        self.packs.keys()
    }

    /// The pack's entries as the index lists them (none for a pack no index file lists).
    pub(crate) fn entries(&self, pack: &PackId) -> Result<Vec<PackEntry>> {
        let Some(&(at, count)) = self.packs.get(pack) else {
            return Ok(Vec::new());
        };
        let mut bytes = vec![0u8; count as usize * ENTRY_LEN];
        self.spill
            .read_exact_at(&mut bytes, at)
            .map_err(|e| RepoError::io("check's spill file", e))?;
        bytes
            .chunks_exact(ENTRY_LEN)
            .enumerate()
            .map(|(i, raw)| {
                decode_entry(raw.try_into().expect("ENTRY_LEN"), "check's spill file", i).map_err(
                    |source| RepoError::Pack {
                        object: format!("index entries of pack {pack}"),
                        source,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_pack::{BlobId, BlobType, Compression};

    fn entry(n: u8) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            compression: Compression::None,
            offset: u32::from(n) * 100,
            stored_len: 140,
            plain_len: 100,
            id: BlobId([n; 32]),
        }
    }

    #[test]
    fn entries_come_back_and_the_first_listing_wins() {
        let mut packs = IndexedPacks::new(None).unwrap();
        packs.add(PackId([1; 32]), &[entry(1), entry(2)]).unwrap();
        packs.add(PackId([2; 32]), &[]).unwrap();
        packs.add(PackId([1; 32]), &[entry(9)]).unwrap();
        packs.add(PackId([3; 32]), &[entry(3)]).unwrap();
        assert_eq!(packs.len(), 3);
        assert_eq!(
            packs.entries(&PackId([1; 32])).unwrap(),
            vec![entry(1), entry(2)]
        );
        assert!(packs.entries(&PackId([2; 32])).unwrap().is_empty());
        assert_eq!(packs.entries(&PackId([3; 32])).unwrap(), vec![entry(3)]);
        assert!(packs.entries(&PackId([4; 32])).unwrap().is_empty());
        assert!(packs.contains(&PackId([2; 32])) && !packs.contains(&PackId([4; 32])));
        assert_eq!(packs.ids().count(), 3);
    }
}
