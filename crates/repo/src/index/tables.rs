//! The set of index tables in one repository's cache: which tables a run uses, the tables it
//! builds for index files none covers, and the merges that keep their number small.
//!
//! Correctness rests on two rules (docs/format.md#index-tables):
//! - A table is used only if every index file it covers is in the store's listing taken for
//!   this run. A prune deletes index files after writing their replacements, so a table
//!   built before a prune covers a deleted file and is dropped: its entries for removed
//!   packs can never make a backup skip a blob that is gone.
//! - Every table is checked whole against its MAC before it is mapped; one that fails is
//!   deleted and its index files are read again (authenticated, as always).
//!
//! Several processes may share a cache: tables are written under a temporary name and
//! renamed into place under a name derived from the set of files they cover, so two
//! builders of the same table write the same thing, and a table another process still has
//! mapped stays readable after it is deleted here.

use std::collections::{BTreeSet, BinaryHeap, HashSet};
use std::path::{Path, PathBuf};

use super::table::{peek_covered, SlotReader, Table, TableWriter};
use super::{IndexBuilder, Slot, TREE_BIT};
use crate::error::{RepoError, Result};
use crate::object::IndexId;

/// Tables beyond this many are merged (a lookup probes every table's filter).
pub(crate) const MAX_TABLES: usize = 4;

/// Slots gathered on the heap before a run of index files is written as one table
/// (48 MiB at 48 bytes each): building never holds more than this, whatever the size of the
/// repository.
pub(crate) const RUN_SLOTS: usize = 1 << 20;

const EXTENSION: &str = "table";

/// The file name of the table covering `covered`: a keyed hash of the sorted set.
pub(crate) fn table_name(key: &[u8; 32], covered: &[IndexId]) -> String {
    let mut sorted: Vec<&str> = covered.iter().map(IndexId::as_str).collect();
    sorted.sort_unstable();
    let mut hasher = blake3::Hasher::new_keyed(key);
    for id in sorted {
        hasher.update(id.as_bytes());
    }
    format!("{}.{EXTENSION}", &hasher.finalize().to_hex()[..32])
}

/// The tables chosen for a listing, and the listed index files none of them covers.
pub(crate) struct Chosen {
    pub(crate) tables: Vec<Table>,
    pub(crate) uncovered: Vec<IndexId>,
}

/// Chooses tables of `dir` for the index files `listed`: largest first, never two covering
/// the same file, each checked before use. Deletes tables that cover an unlisted file
/// (stale), that a chosen table subsumes, or that fail their check.
pub(crate) fn choose(dir: &Path, key: &[u8; 32], listed: &BTreeSet<IndexId>) -> Result<Chosen> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| RepoError::io(dir, e))?;
    let mut candidates: Vec<(PathBuf, Vec<IndexId>)> = Vec::new();
    for path in table_files(dir) {
        match peek_covered(&path) {
            Ok(covered) if covered.iter().all(|id| listed.contains(id)) => {
                candidates.push((path, covered))
            }
            // Stale (a prune removed one of its files) or unreadable: never used again.
            _ => remove(&path),
        }
    }
    candidates.sort_by_key(|(_, covered)| std::cmp::Reverse(covered.len()));
    let mut covered_so_far: HashSet<IndexId> = HashSet::new();
    let mut tables = Vec::new();
    for (path, covered) in candidates {
        if covered.iter().any(|id| covered_so_far.contains(id)) {
            if covered.iter().all(|id| covered_so_far.contains(id)) {
                remove(&path);
            }
            continue;
        }
        match Table::open(&path, key) {
            Ok(table) => {
                covered_so_far.extend(covered);
                tables.push(table);
            }
            // Damaged or foreign: its index files are read again instead.
            Err(_) => remove(&path),
        }
    }
    let uncovered = listed
        .iter()
        .filter(|id| !covered_so_far.contains(*id))
        .cloned()
        .collect();
    Ok(Chosen { tables, uncovered })
}

fn table_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
        .collect()
}

fn remove(path: &Path) {
    // Best effort: a table left behind is found stale or subsumed again next time.
    let _ = std::fs::remove_file(path);
}

/// Writes what `builder` gathered from the index files `covered` as a table in `dir`.
pub(crate) fn write_run(
    dir: &Path,
    key: &[u8; 32],
    builder: IndexBuilder,
    covered: &[IndexId],
) -> Result<Table> {
    let memory = builder.finish_memory();
    let mut writer = TableWriter::create(dir, key, memory.slots.len() as u64)?;
    for slot in &memory.slots {
        writer.push(slot)?;
    }
    let path = dir.join(table_name(key, covered));
    writer.finish(memory.packs.iter().copied().map(Ok), covered, &path)?;
    Table::open(&path, key)
}

/// Index files gathered for one table, until it holds [`RUN_SLOTS`] slots.
#[derive(Default)]
pub(crate) struct Run {
    builder: IndexBuilder,
    slots: usize,
    covered: Vec<IndexId>,
}

impl Run {
    /// Adds one index file; true once the run is full and should be written.
    pub(crate) fn add(&mut self, id: IndexId, file: &super::IndexFile) -> Result<bool> {
        self.slots += self.builder.add_file(file)?;
        self.covered.push(id);
        Ok(self.slots >= RUN_SLOTS)
    }

    /// True if no index file was added.
    pub(crate) fn is_empty(&self) -> bool {
        self.covered.is_empty()
    }

    /// Writes the run as a table in `dir`.
    pub(crate) fn write(self, dir: &Path, key: &[u8; 32]) -> Result<Table> {
        write_run(dir, key, self.builder, &self.covered)
    }
}

/// Writes index files as tables as they are read, a [`Run`] at a time, so memory does not
/// grow with the number of index files. Tables are written on a blocking thread.
pub(crate) struct RunWriter {
    dir: PathBuf,
    key: std::sync::Arc<zeroize::Zeroizing<[u8; 32]>>,
    run: Run,
    built: Vec<Table>,
}

impl RunWriter {
    /// Writes into `dir` under `key` ([`super::table::table_key`]).
    pub(crate) fn new(dir: &Path, key: std::sync::Arc<zeroize::Zeroizing<[u8; 32]>>) -> Self {
        RunWriter {
            dir: dir.to_path_buf(),
            key,
            run: Run::default(),
            built: Vec::new(),
        }
    }

    /// Adds one index file.
    pub(crate) async fn add(&mut self, id: IndexId, file: &super::IndexFile) -> Result<()> {
        if self.run.add(id, file)? {
            self.write().await?;
        }
        Ok(())
    }

    async fn write(&mut self) -> Result<()> {
        let run = std::mem::take(&mut self.run);
        let (dir, key) = (self.dir.clone(), std::sync::Arc::clone(&self.key));
        let table = tokio::task::spawn_blocking(move || run.write(&dir, &key))
            .await
            .map_err(RepoError::task("writing an index table"))??;
        self.built.push(table);
        Ok(())
    }

    /// Writes what is left and returns every table written.
    pub(crate) async fn finish(mut self) -> Result<Vec<Table>> {
        if !self.run.is_empty() {
            self.write().await?;
        }
        Ok(self.built)
    }
}

/// Keeps the number of tables at most [`MAX_TABLES`]: merges every table but the largest
/// into one, and that one with the largest too once it has grown to half its size (so the
/// largest table is rewritten only after as much again has been added: amortized, each slot
/// is rewritten a logarithmic number of times).
pub(crate) fn compact(dir: &Path, key: &[u8; 32], mut tables: Vec<Table>) -> Result<Vec<Table>> {
    if tables.len() <= MAX_TABLES {
        return Ok(tables);
    }
    tables.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let rest: usize = tables[1..].iter().map(Table::len).sum();
    let merge_all = rest * 2 >= tables[0].len();
    let inputs: Vec<Table> = if merge_all {
        std::mem::take(&mut tables)
    } else {
        tables.split_off(1)
    };
    let merged = merge(dir, key, &inputs)?;
    for input in &inputs {
        if input.path() != merged.path() {
            remove(input.path());
        }
    }
    tables.push(merged);
    Ok(tables)
}

type Heads = BinaryHeap<std::cmp::Reverse<([u8; 32], usize)>>;

/// Moves input `k` of a merge to its next slot.
fn advance(
    readers: &mut [SlotReader],
    current: &mut [Option<Slot>],
    bases: &[u32],
    k: usize,
    heads: &mut Heads,
) -> Result<()> {
    current[k] = match readers[k].next() {
        Some(slot) => {
            let mut slot: Slot = slot?;
            slot.pack_and_type =
                (slot.pack_number() as u32 + bases[k]) | (slot.pack_and_type & TREE_BIT);
            heads.push(std::cmp::Reverse((slot.id, k)));
            Some(slot)
        }
        None => None,
    };
    Ok(())
}

fn current_slot(current: &[Option<Slot>], k: usize) -> Result<Slot> {
    current[k].ok_or_else(|| RepoError::InvalidInput("index table merge lost its place".into()))
}

/// Merges tables into one, streaming: each input is read in order through a small buffer,
/// so memory does not depend on their size. A blob in several inputs keeps the first
/// input's location.
pub(crate) fn merge(dir: &Path, key: &[u8; 32], inputs: &[Table]) -> Result<Table> {
    let expected: usize = inputs.iter().map(Table::len).sum();
    let mut bases = Vec::with_capacity(inputs.len());
    let mut packs = 0usize;
    for input in inputs {
        bases.push(packs as u32);
        packs += input.pack_count();
    }
    if packs >= TREE_BIT as usize {
        return Err(RepoError::InvalidInput("more than 2^31 packs".into()));
    }
    let mut readers = inputs
        .iter()
        .map(Table::read_slots)
        .collect::<Result<Vec<_>>>()?;
    // The smallest unwritten id of each input, with the input's number; `current[k]` is
    // that input's slot, its pack number already moved into the merged pack list.
    let mut heads = Heads::new();
    let mut current: Vec<Option<Slot>> = vec![None; inputs.len()];
    for k in 0..inputs.len() {
        advance(&mut readers, &mut current, &bases, k, &mut heads)?;
    }
    let mut writer = TableWriter::create(dir, key, expected as u64)?;
    let mut last: Option<[u8; 32]> = None;
    while let Some(std::cmp::Reverse((id, k))) = heads.pop() {
        if last != Some(id) {
            let slot = current_slot(&current, k)?;
            writer.push(&slot)?;
            last = Some(id);
        }
        advance(&mut readers, &mut current, &bases, k, &mut heads)?;
    }
    let covered: Vec<IndexId> = inputs
        .iter()
        .flat_map(|t| t.covered().iter().cloned())
        .collect();
    let mut pack_readers = inputs
        .iter()
        .map(Table::read_packs)
        .collect::<Result<Vec<_>>>()?;
    let pack_ids = pack_readers.iter_mut().flatten();
    let path = dir.join(table_name(key, &covered));
    writer.finish(pack_ids, &covered, &path)?;
    Table::open(&path, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{Index, IndexFile, IndexPack};
    use crate::object::FileId;
    use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId};
    use proptest::prelude::*;

    const KEY: [u8; 32] = [7; 32];

    fn id_of(n: u64) -> [u8; 32] {
        *blake3::hash(&n.to_le_bytes()).as_bytes()
    }

    fn index_id(n: u64) -> IndexId {
        IndexId::from_name(&hex::encode(
            blake3::hash(&(n + (1 << 40)).to_le_bytes()).as_bytes(),
        ))
        .unwrap()
    }

    /// An index file of `packs` packs of `per_pack` blobs, blob numbers from `first`.
    fn index_file(first: u64, packs: u64, per_pack: u64) -> IndexFile {
        IndexFile {
            packs: (0..packs)
                .map(|p| IndexPack {
                    id: PackId(id_of(first + p + (1 << 50))),
                    entries: (0..per_pack)
                        .map(|b| {
                            let n = first + p * per_pack + b;
                            PackEntry {
                                blob_type: if n % 3 == 0 {
                                    BlobType::Tree
                                } else {
                                    BlobType::Data
                                },
                                compression: if n % 2 == 0 {
                                    Compression::Zstd
                                } else {
                                    Compression::None
                                },
                                offset: (b * 1000) as u32,
                                stored_len: if n % 2 == 0 { 100 } else { 540 },
                                plain_len: 500,
                                id: BlobId(id_of(n)),
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn builder_of(files: &[&IndexFile]) -> IndexBuilder {
        let mut builder = IndexBuilder::default();
        for file in files {
            builder.add_file(file).unwrap();
        }
        builder
    }

    /// Every blob of `expected` is found in `index` at the same location, and nothing else.
    fn assert_same(index: &Index, expected: &Index, misses: impl Iterator<Item = u64>) {
        for location in expected.iter() {
            assert_eq!(index.get(&location.entry.id), Some(location));
        }
        for n in misses {
            assert!(!index.contains(&BlobId(id_of(n))));
        }
    }

    #[test]
    fn a_table_answers_as_the_heap_index_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = index_file(0, 40, 500);
        let table = write_run(dir.path(), &KEY, builder_of(&[&file]), &[index_id(0)]).unwrap();
        assert_eq!(table.len(), 20_000);
        assert_eq!(table.covered(), &[index_id(0)]);
        let mapped = Index::from_tables(vec![table]);
        assert!(mapped.is_mapped());
        let heap = Index::build([&file]).unwrap();
        assert_same(&mapped, &heap, 20_000..30_000);
        let mut packs = mapped.packs();
        let mut expected = heap.packs();
        packs.sort();
        expected.sort();
        assert_eq!(packs, expected);
        assert_eq!(mapped.iter().count(), 20_000);
        assert!(
            mapped.memory_bytes() < 400 << 10,
            "{}",
            mapped.memory_bytes()
        );
    }

    #[test]
    fn filters_are_partitioned_and_still_exact_with_many_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let file = index_file(0, 100, 3000);
        let table = write_run(dir.path(), &KEY, builder_of(&[&file]), &[index_id(0)]).unwrap();
        let again = Table::open(table.path(), &KEY).unwrap();
        let heap = Index::build([&file]).unwrap();
        assert_same(&Index::from_tables(vec![table]), &heap, 300_000..310_000);
        // Lookups that read slots rather than map them answer the same.
        let read = Index::from_tables_read(vec![again]);
        assert!(read.is_mapped());
        assert_same(&read, &heap, 300_000..310_000);
    }

    #[test]
    fn a_changed_byte_anywhere_fails_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let file = index_file(0, 3, 10);
        let table = write_run(dir.path(), &KEY, builder_of(&[&file]), &[index_id(0)]).unwrap();
        let path = table.path().to_path_buf();
        drop(table);
        let bytes = std::fs::read(&path).unwrap();
        for at in [
            0,
            47,
            48 * 30 + 5,
            bytes.len() / 2,
            bytes.len() - 40,
            bytes.len() - 1,
        ] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            std::fs::write(&path, &bad).unwrap();
            let err = Table::open(&path, &KEY).unwrap_err();
            assert!(
                matches!(err, RepoError::Corrupt { ref object, .. } if object.contains(".table")),
                "byte {at}: {err}"
            );
        }
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        assert!(Table::open(&path, &KEY).is_err());
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            Table::open(&path, &[8; 32]).is_err(),
            "another repository's key"
        );
        assert!(Table::open(&path, &KEY).is_ok());
    }

    #[test]
    fn choosing_drops_stale_subsumed_and_damaged_tables() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            index_file(0, 2, 10),
            index_file(100, 2, 10),
            index_file(200, 2, 10),
        );
        let ta = write_run(dir.path(), &KEY, builder_of(&[&a]), &[index_id(0)]).unwrap();
        let tb = write_run(dir.path(), &KEY, builder_of(&[&b]), &[index_id(1)]).unwrap();
        let tc = write_run(dir.path(), &KEY, builder_of(&[&c]), &[index_id(2)]).unwrap();
        let merged = merge(dir.path(), &KEY, &[ta, tb]).unwrap();
        let mut covered = merged.covered().to_vec();
        covered.sort();
        let mut expected = vec![index_id(0), index_id(1)];
        expected.sort();
        assert_eq!(covered, expected);
        let damaged = tc.path().to_path_buf();
        drop(tc);
        let mut bytes = std::fs::read(&damaged).unwrap();
        bytes[3] ^= 0x40;
        std::fs::write(&damaged, bytes).unwrap();
        assert_eq!(table_files(dir.path()).len(), 4);

        // All three listed: the merged table is chosen, the two it subsumes and the damaged
        // one are deleted, and file 2 is left to be read again.
        let listed: BTreeSet<IndexId> = [0, 1, 2].into_iter().map(index_id).collect();
        let chosen = choose(dir.path(), &KEY, &listed).unwrap();
        assert_eq!(chosen.tables.len(), 1);
        assert_eq!(chosen.uncovered, vec![index_id(2)]);
        assert_eq!(table_files(dir.path()), vec![merged.path().to_path_buf()]);
        let mapped = Index::from_tables(chosen.tables);
        assert_same(&mapped, &Index::build([&a, &b]).unwrap(), 200..220);

        // A prune removed file 1: the table covering it is stale and goes.
        let listed: BTreeSet<IndexId> = [0, 2].into_iter().map(index_id).collect();
        let chosen = choose(dir.path(), &KEY, &listed).unwrap();
        assert!(chosen.tables.is_empty());
        assert_eq!(chosen.uncovered.len(), 2);
        assert!(table_files(dir.path()).is_empty());
        // Its mapping, still held, stays readable after the file is gone.
        assert_same(&mapped, &Index::build([&a, &b]).unwrap(), 200..220);
    }

    #[test]
    fn compaction_keeps_few_tables_and_every_blob() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<IndexFile> = (0..7).map(|i| index_file(i * 1000, 3, 50 + i)).collect();
        let mut tables = Vec::new();
        for (i, file) in files.iter().enumerate() {
            tables.push(
                write_run(dir.path(), &KEY, builder_of(&[file]), &[index_id(i as u64)]).unwrap(),
            );
            tables = compact(dir.path(), &KEY, tables).unwrap();
            assert!(tables.len() <= MAX_TABLES);
        }
        assert_eq!(table_files(dir.path()).len(), tables.len());
        let mapped = Index::from_tables(tables);
        let refs: Vec<&IndexFile> = files.iter().collect();
        assert_same(&mapped, &Index::build(refs).unwrap(), 8000..8100);
    }

    #[test]
    fn a_blob_in_two_tables_merges_to_one_slot() {
        let dir = tempfile::tempdir().unwrap();
        let a = index_file(0, 2, 10);
        let mut b = index_file(0, 2, 10);
        for pack in &mut b.packs {
            pack.id = PackId([9; 32]);
        }
        b.packs.truncate(1);
        let ta = write_run(dir.path(), &KEY, builder_of(&[&a]), &[index_id(0)]).unwrap();
        let tb = write_run(dir.path(), &KEY, builder_of(&[&b]), &[index_id(1)]).unwrap();
        let merged = merge(dir.path(), &KEY, &[ta, tb]).unwrap();
        assert_eq!(merged.len(), 20);
        let mapped = Index::from_tables(vec![merged]);
        assert_same(&mapped, &Index::build([&a]).unwrap(), 20..30);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// A table whose MAC holds but whose bytes were changed (as only a key holder could)
        /// opens or is refused, and never makes a lookup panic.
        #[test]
        fn changed_tables_with_a_valid_mac_never_panic(
            flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            tail_flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
            cut in 0usize..64,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let file = index_file(0, 3, 30);
            let table = write_run(dir.path(), &KEY, builder_of(&[&file]), &[index_id(0)]).unwrap();
            let mut bytes = std::fs::read(table.path()).unwrap();
            bytes.truncate(bytes.len() - 32);
            for (at, value) in flips {
                let at = at.index(bytes.len());
                bytes[at] ^= value;
            }
            // The footer, filter directory and packs sit at the end: flip there too.
            for (back, value) in tail_flips {
                let at = bytes.len() - 1 - back;
                bytes[at] ^= value;
            }
            bytes.truncate(bytes.len() - cut.min(bytes.len()));
            crate::fuzzing::index_table(&bytes);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn tables_and_merges_agree_with_the_heap_index(
            sizes in proptest::collection::vec((1u64..5, 1u64..40), 1..6),
            overlap in 0u64..30,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut files = Vec::new();
            let mut first = 0;
            for (i, (packs, per_pack)) in sizes.iter().enumerate() {
                let mut file = index_file(first, *packs, *per_pack);
                // Pack ids name their content: two files never list one pack differently.
                for pack in &mut file.packs {
                    pack.id.0[0] = i as u8;
                }
                files.push(file);
                first += packs * per_pack - overlap.min(packs * per_pack);
            }
            let tables: Vec<Table> = files
                .iter()
                .enumerate()
                .map(|(i, f)| write_run(dir.path(), &KEY, builder_of(&[f]), &[index_id(i as u64)]).unwrap())
                .collect();
            let merged = merge(dir.path(), &KEY, &tables).unwrap();
            let refs: Vec<&IndexFile> = files.iter().collect();
            let heap = Index::build(refs).unwrap();
            let mapped = Index::from_tables(vec![merged]);
            prop_assert_eq!(mapped.len(), heap.len());
            for location in heap.iter() {
                let found = mapped.get(&location.entry.id).unwrap();
                // A blob in several files keeps the first file's location on both sides.
                prop_assert_eq!(found, location);
            }
            let several = Index::from_tables(tables);
            for location in heap.iter() {
                prop_assert!(several.contains(&location.entry.id));
            }
            prop_assert!(!mapped.contains(&BlobId(id_of(first + 10_000))));
        }
    }
}
