//! The index: which pack holds each blob, where.
//!
//! On storage: index files ([`IndexFile`], docs/format.md#index-files), each listing whole
//! packs. Writers only add index files; nothing is rewritten in place.
//! In a run, [`Index`] is one of two things behind one interface:
//! - with the local cache, the index tables of the cache (table.rs, tables.rs): sorted
//!   48-byte slots in files that are mapped, not read, each with a binary fuse filter, so
//!   memory does not grow with the repository (docs/format.md#index-tables);
//! - without it, one sorted table of the same slots on the heap, searched by bisection.

mod file;
mod mapped;
pub(crate) mod table;
pub(crate) mod tables;

pub use file::{IndexFile, IndexPack};

use std::collections::HashMap;
use std::sync::Arc;

use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId, SEAL_OVERHEAD};

use table::Table;

/// One slot of the table. 48 bytes, no padding; the same fields, little-endian, are a slot
/// of an index table file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct Slot {
    pub(crate) id: [u8; 32],
    /// Pack number in the table's pack list; the top bit marks tree blobs.
    pack_and_type: u32,
    offset: u32,
    stored_len: u32,
    plain_len: u32,
}

impl Slot {
    fn to_bytes(self) -> [u8; table::SLOT_LEN] {
        let mut out = [0u8; table::SLOT_LEN];
        out[..32].copy_from_slice(&self.id);
        out[32..36].copy_from_slice(&self.pack_and_type.to_le_bytes());
        out[36..40].copy_from_slice(&self.offset.to_le_bytes());
        out[40..44].copy_from_slice(&self.stored_len.to_le_bytes());
        out[44..48].copy_from_slice(&self.plain_len.to_le_bytes());
        out
    }

    /// Parses 48 bytes (a slice of exactly [`table::SLOT_LEN`]).
    fn from_bytes(bytes: &[u8]) -> Slot {
        let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        Slot {
            id: bytes[..32].try_into().expect("32"),
            pack_and_type: word(32),
            offset: word(36),
            stored_len: word(40),
            plain_len: word(44),
        }
    }

    pub(crate) fn pack_number(&self) -> usize {
        (self.pack_and_type & !TREE_BIT) as usize
    }

    /// The location this slot gives, with its pack resolved.
    fn location(&self, pack: PackId) -> BlobLocation {
        let blob_type = if self.pack_and_type & TREE_BIT != 0 {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        // Compressed blobs are always shorter than their plaintext (writers store the
        // plaintext otherwise), so the compression flag need not take a byte per slot.
        let compression =
            if (self.stored_len as usize).saturating_sub(SEAL_OVERHEAD) < self.plain_len as usize {
                Compression::Zstd
            } else {
                Compression::None
            };
        BlobLocation {
            pack,
            entry: PackEntry {
                blob_type,
                compression,
                offset: self.offset,
                stored_len: self.stored_len,
                plain_len: self.plain_len,
                id: BlobId(self.id),
            },
        }
    }
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

/// All index files merged: blob id → location. Immutable once built.
///
/// On the heap: 48 bytes per blob plus 32 per pack. Mapped from the cache's index tables:
/// a fixed ~260 KiB per table on the heap, whatever the repository's size; the tables'
/// pages are read on demand (a lookup for a blob that is not stored usually touches only
/// its filter).
#[derive(Clone, Debug, Default)]
pub struct Index {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    Memory(MemoryTable),
    Mapped(Arc<Vec<Table>>),
    /// The same tables, with slots read by `pread` rather than through the mapping.
    Read(Arc<Vec<Table>>),
}

impl Default for Inner {
    fn default() -> Self {
        Inner::Memory(MemoryTable::default())
    }
}

#[derive(Clone, Debug, Default)]
struct MemoryTable {
    packs: Vec<PackId>,
    slots: Vec<Slot>,
    /// `fanout[p]` is the first slot whose id starts with a 16-bit prefix ≥ `p` (65 537
    /// entries, 256 KiB): a lookup bisects one bucket of ~n/65536 slots instead of all n,
    /// which saves ~16 cache misses at 10 M blobs.
    fanout: Vec<u32>,
}

impl MemoryTable {
    fn find(&self, id: &BlobId) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let p = prefix16(id.as_bytes());
        let start = self.fanout[p] as usize;
        let bucket = &self.slots[start..self.fanout[p + 1] as usize];
        bucket
            .binary_search_by(|slot| slot.id.cmp(id.as_bytes()))
            .ok()
            .map(|i| start + i)
    }

    fn location(&self, slot: &Slot) -> BlobLocation {
        slot.location(self.packs[slot.pack_number()])
    }
}

fn stand_in_id(number: u64) -> crate::object::IndexId {
    use crate::object::FileId;
    let name = hex::encode(blake3::hash(&number.to_le_bytes()).as_bytes());
    crate::object::IndexId::from_name(&name).expect("64 hex digits")
}

fn prefix16(id: &[u8; 32]) -> usize {
    u16::from_be_bytes([id[0], id[1]]) as usize
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the table on the heap from index files. A blob listed in several packs keeps
    /// one location (the first seen); all packs stay listed.
    ///
    /// # Errors
    /// If more than 2^31 packs are listed.
    pub fn build<'a>(
        files: impl IntoIterator<Item = &'a IndexFile>,
    ) -> Result<Index, crate::RepoError> {
        let mut builder = IndexBuilder::default();
        for file in files {
            builder.add_file(file)?;
        }
        Ok(builder.finish())
    }

    /// The index given by mapped tables (their blob sets may overlap: the first table
    /// holding a blob answers for it).
    pub(crate) fn from_tables(tables: Vec<Table>) -> Index {
        Index {
            inner: Inner::Mapped(Arc::new(tables)),
        }
    }

    /// Writes `files` as index tables in `dir` (as the cache would, for the repository whose
    /// data key is `data_key`) and maps them: for benchmarks and tools that need a mapped
    /// index without a repository. Memory stays bounded by 2^20 slots (48 MiB)
    /// whatever the number of blobs.
    ///
    /// # Errors
    /// Local I/O errors writing or reading `dir`, or more than 2^31 packs.
    pub fn build_tables(
        dir: &std::path::Path,
        data_key: &[u8; 32],
        files: impl IntoIterator<Item = IndexFile>,
    ) -> Result<Index, crate::RepoError> {
        let key = table::table_key(data_key);
        let mut built = Vec::new();
        let mut run = tables::Run::default();
        for (number, file) in (1u64..).zip(files) {
            // Stand-in ids: these files are not stored anywhere.
            if run.add(stand_in_id(number), &file)? {
                built.push(std::mem::take(&mut run).write(dir, &key)?);
                built = tables::compact(dir, &key, built)?;
            }
        }
        if !run.is_empty() {
            built.push(run.write(dir, &key)?);
        }
        Ok(Index::from_tables(tables::compact(dir, &key, built)?))
    }

    /// The index given by tables whose slots are read with `pread` on each lookup rather
    /// than through the mapping: for a pass that looks up every blob (check's walk), which
    /// through the mapping would end with the whole table resident. A lookup that fails to
    /// read its table finds nothing (the pass then reports the blob as not indexed).
    pub(crate) fn from_tables_read(tables: Vec<Table>) -> Index {
        Index {
            inner: Inner::Read(Arc::new(tables)),
        }
    }

    /// The same index, with mapped tables' slots read by `pread` on each lookup rather than
    /// through the mapping (see [`Index::from_tables_read`]): for a pass that looks up every
    /// blob (prune's marking), during which lookups through the mapping would leave up to
    /// 64 KiB resident per lookup (the kernel maps the pages around each fault) until the
    /// next release. A heap index is returned as it is.
    pub(crate) fn reading(&self) -> Index {
        match &self.inner {
            Inner::Mapped(tables) => Index {
                inner: Inner::Read(Arc::clone(tables)),
            },
            _ => self.clone(),
        }
    }

    /// True if this index is mapped from the cache's tables rather than held on the heap.
    pub fn is_mapped(&self) -> bool {
        matches!(self.inner, Inner::Mapped(_) | Inner::Read(_))
    }

    /// Number of blobs (for mapped tables, a blob two tables list counts twice).
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Memory(table) => table.slots.len(),
            Inner::Mapped(tables) | Inner::Read(tables) => tables.iter().map(Table::len).sum(),
        }
    }

    /// True if no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every pack any index file lists (for mapped tables, a pack two tables list appears
    /// twice).
    pub fn packs(&self) -> Vec<PackId> {
        match &self.inner {
            Inner::Memory(table) => table.packs.clone(),
            Inner::Mapped(tables) | Inner::Read(tables) => tables
                .iter()
                .flat_map(|t| (0..t.pack_count()).filter_map(|n| t.pack(n)))
                .collect(),
        }
    }

    /// Bytes of the heap the index occupies (mapped tables count only what they keep on the
    /// heap: fanouts and filter directories).
    pub fn memory_bytes(&self) -> usize {
        match &self.inner {
            Inner::Memory(table) => {
                table.slots.capacity() * std::mem::size_of::<Slot>()
                    + table.packs.capacity() * std::mem::size_of::<PackId>()
                    + table.fanout.capacity() * std::mem::size_of::<u32>()
            }
            Inner::Mapped(tables) | Inner::Read(tables) => {
                tables.iter().map(Table::memory_bytes).sum()
            }
        }
    }

    /// The blob's position in [`Index::iter`] order (dense, `0..len()`), for bitmaps over
    /// the index.
    pub fn position(&self, id: &BlobId) -> Option<usize> {
        match &self.inner {
            Inner::Memory(table) => table.find(id),
            Inner::Mapped(tables) | Inner::Read(tables) => {
                let by_reading = matches!(self.inner, Inner::Read(_));
                let mut base = 0;
                for table in tables.iter() {
                    let found = if by_reading {
                        table
                            .find_by_reading(id.as_bytes())
                            .ok()
                            .flatten()
                            .map(|(i, _)| i)
                    } else {
                        table.find(id.as_bytes())
                    };
                    if let Some(i) = found {
                        return Some(base + i);
                    }
                    base += table.len();
                }
                None
            }
        }
    }

    /// True if the blob is stored.
    pub fn contains(&self, id: &BlobId) -> bool {
        match &self.inner {
            Inner::Memory(table) => table.find(id).is_some(),
            Inner::Mapped(tables) => tables.iter().any(|t| t.find(id.as_bytes()).is_some()),
            Inner::Read(_) => self.get(id).is_some(),
        }
    }

    /// Where the blob is stored.
    pub fn get(&self, id: &BlobId) -> Option<BlobLocation> {
        match &self.inner {
            Inner::Memory(table) => table.find(id).map(|i| table.location(&table.slots[i])),
            Inner::Mapped(tables) => tables.iter().find_map(|t| {
                let slot = t.slot(t.find(id.as_bytes())?);
                Some(slot.location(t.pack(slot.pack_number())?))
            }),
            Inner::Read(tables) => tables.iter().find_map(|t| {
                let (_, slot) = t.find_by_reading(id.as_bytes()).ok()??;
                Some(slot.location(t.pack(slot.pack_number())?))
            }),
        }
    }

    /// Visits every indexed blob with its position, in [`Index::iter`] order. Tables are read
    /// through their files rather than the mapping, so a pass over a large index leaves
    /// nothing resident (prune's accounting of each pack's use).
    ///
    /// # Errors
    /// A table that cannot be read (local I/O); a slot naming a pack its table lacks.
    pub(crate) fn scan(
        &self,
        mut visit: impl FnMut(usize, BlobLocation),
    ) -> Result<(), crate::RepoError> {
        match &self.inner {
            Inner::Memory(table) => {
                for (position, slot) in table.slots.iter().enumerate() {
                    visit(position, table.location(slot));
                }
            }
            Inner::Mapped(tables) | Inner::Read(tables) => {
                let mut base = 0;
                for t in tables.iter() {
                    for (i, slot) in t.read_slots()?.enumerate() {
                        let slot = slot?;
                        let pack = t.pack(slot.pack_number()).ok_or_else(|| {
                            crate::RepoError::corrupt(
                                format!("index table {}", t.path().display()),
                                format!(
                                    "slot {i} names pack {} of {}",
                                    slot.pack_number(),
                                    t.pack_count()
                                ),
                            )
                        })?;
                        visit(base + i, slot.location(pack));
                    }
                    base += t.len();
                }
            }
        }
        Ok(())
    }

    /// Every indexed blob: in id order on the heap; table by table, each in id order, when
    /// mapped.
    pub fn iter(&self) -> Box<dyn Iterator<Item = BlobLocation> + '_> {
        match &self.inner {
            Inner::Memory(table) => Box::new(table.slots.iter().map(|s| table.location(s))),
            Inner::Mapped(tables) | Inner::Read(tables) => Box::new(tables.iter().flat_map(|t| {
                (0..t.len()).filter_map(move |i| {
                    let slot = t.slot(i);
                    Some(slot.location(t.pack(slot.pack_number())?))
                })
            })),
        }
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

    /// Adds every pack of an index file; returns how many entries it listed.
    pub fn add_file(&mut self, file: &IndexFile) -> Result<usize, crate::RepoError> {
        let mut entries = 0;
        for pack in &file.packs {
            self.add_pack(pack.id, &pack.entries)?;
            entries += pack.entries.len();
        }
        Ok(entries)
    }

    /// Sorts and deduplicates into the final table.
    pub fn finish(self) -> Index {
        Index {
            inner: Inner::Memory(self.finish_memory()),
        }
    }

    fn finish_memory(mut self) -> MemoryTable {
        self.slots
            .sort_unstable_by(|a, b| a.id.cmp(&b.id).then(a.pack_and_type.cmp(&b.pack_and_type)));
        self.slots.dedup_by(|later, earlier| later.id == earlier.id);
        self.slots.shrink_to_fit();
        self.packs.shrink_to_fit();
        let mut fanout = vec![0u32; 65_537];
        for slot in &self.slots {
            fanout[prefix16(&slot.id) + 1] += 1;
        }
        for p in 1..fanout.len() {
            fanout[p] += fanout[p - 1];
        }
        MemoryTable {
            packs: self.packs,
            slots: self.slots,
            fanout,
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
    fn every_blob_found_through_the_fanout() {
        let mut builder = IndexBuilder::default();
        let ids: Vec<[u8; 32]> = (0..20_000u32)
            .map(|n| *blake3::hash(&n.to_le_bytes()).as_bytes())
            .collect();
        for (p, chunk) in ids.chunks(100).enumerate() {
            let entries: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| PackEntry {
                    id: BlobId(*id),
                    ..entry(0, i as u32 * 140, BlobType::Data, false)
                })
                .collect();
            builder.add_pack(PackId([p as u8; 32]), &entries).unwrap();
        }
        let index = builder.finish();
        assert_eq!(index.len(), ids.len());
        for (n, id) in ids.iter().enumerate() {
            let found = index.get(&BlobId(*id)).unwrap();
            assert_eq!(found.pack, PackId([(n / 100) as u8; 32]));
        }
        for n in 20_000u32..21_000 {
            assert!(!index.contains(&BlobId(*blake3::hash(&n.to_le_bytes()).as_bytes())));
        }
        assert!(!Index::new().contains(&BlobId([0; 32])));
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
