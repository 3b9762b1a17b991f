//! Reading and writing the repository's index files and snapshots (blobs: `blobs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{RepoError, Result};
use crate::index::{tables, Index, IndexFile};
use crate::object::{IndexId, SnapshotId};
use crate::snapshot::{Snapshot, SnapshotEntry, SnapshotFilter};
use crate::Repository;

/// Stored bytes of index files read at once while building index tables (or checking): a
/// bound on memory that does not depend on the number of index files. Decoded, an index
/// file takes about what it takes stored (48 bytes per blob, ids do not compress).
pub(crate) const INDEX_READ_BUDGET: u64 = 32 << 20;

impl Repository {
    /// The repository's index: every index file, authenticated and merged.
    ///
    /// With a local cache the index is mapped from the cache's index tables, built or
    /// extended here for index files no table covers yet (docs/format.md#index-tables), so
    /// its memory does not grow with the repository. Without one, it is built on the heap.
    pub async fn load_index(&self) -> Result<Arc<Index>> {
        if let Some(cache) = self.cache() {
            match self.load_mapped_index(cache.index_table_dir()).await {
                Ok((index, _)) => return Ok(Arc::new(index)),
                // The cache's disk failed (full, read-only): the run goes on with the index
                // on the heap, as without a cache.
                Err(RepoError::Io { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let files = self.read_index_files().await?;
        let index = Index::build(files.iter().map(|(_, f)| f))?;
        Ok(Arc::new(index))
    }

    /// The index and the index files it was built from (id and stored size), for a pass
    /// that replaces exactly those files (prune). The index is mapped from tables in the
    /// cache, or without one in `scratch` (a directory the caller removes after the pass),
    /// so memory does not grow with the repository; on the heap if there is neither or the
    /// disk fails.
    pub(crate) async fn load_index_listed(
        &self,
        scratch: Option<&std::path::Path>,
    ) -> Result<(Arc<Index>, Vec<(IndexId, u64)>)> {
        let dir = match self.cache() {
            Some(cache) => Some(cache.index_table_dir()),
            None => scratch.map(std::path::Path::to_path_buf),
        };
        if let Some(dir) = dir {
            match self.load_mapped_index(dir).await {
                Ok((index, listed)) => return Ok((Arc::new(index), listed)),
                Err(RepoError::Io { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        let files = self.read_index_files().await?;
        let index = Index::build(files.iter().map(|(_, f)| f))?;
        // Sizes are only a batching hint for later reads.
        let listed = files.into_iter().map(|(id, _)| (id, 0)).collect();
        Ok((Arc::new(index), listed))
    }

    /// Maps the tables in `dir`, building those missing; returns the index and the index
    /// files (id, stored size) it covers.
    async fn load_mapped_index(
        &self,
        dir: std::path::PathBuf,
    ) -> Result<(Index, Vec<(IndexId, u64)>)> {
        const MAX_ROUNDS: usize = 32;
        let key = Arc::new(crate::index::table::table_key(self.keys.data_key()));
        let mut round = 0;
        loop {
            round += 1;
            let sized: BTreeMap<IndexId, u64> = self
                .list_files_sized::<IndexFile>()
                .await?
                .into_iter()
                .collect();
            let listed: BTreeSet<IndexId> = sized.keys().cloned().collect();
            let (chosen_dir, chosen_key) = (dir.clone(), Arc::clone(&key));
            let chosen = tokio::task::spawn_blocking(move || {
                tables::choose(&chosen_dir, &chosen_key, &listed)
            })
            .await
            .map_err(RepoError::task("choosing index tables"))??;
            let mut tables = chosen.tables;
            let uncovered = (chosen.uncovered.into_iter())
                .map(|id| {
                    let size = sized.get(&id).copied().unwrap_or(0);
                    (id, size)
                })
                .collect();
            match self.build_tables(&dir, &key, uncovered).await {
                Ok(built) => tables.extend(built),
                // A prune replaced index files since the listing: list again.
                Err(RepoError::MissingObject { .. }) if round < MAX_ROUNDS => continue,
                Err(err) => return Err(err),
            }
            let (compact_dir, compact_key) = (dir.clone(), Arc::clone(&key));
            let tables = tokio::task::spawn_blocking(move || {
                tables::compact(&compact_dir, &compact_key, tables)
            })
            .await
            .map_err(RepoError::task("merging index tables"))??;
            return Ok((Index::from_tables(tables), sized.into_iter().collect()));
        }
    }

    /// Reads the index files `files` (id and stored size), at most
    /// [`INDEX_READ_BUDGET`] bytes of them at a time, and writes them as tables of at most
    /// [`tables::RUN_SLOTS`] slots each.
    async fn build_tables(
        &self,
        dir: &std::path::Path,
        key: &Arc<zeroize::Zeroizing<[u8; 32]>>,
        files: Vec<(IndexId, u64)>,
    ) -> Result<Vec<crate::index::table::Table>> {
        let mut runs = tables::RunWriter::new(dir, Arc::clone(key));
        for batch in self.read_batches(files, INDEX_READ_BUDGET) {
            for (id, file) in self.read_these::<IndexFile>(batch).await {
                runs.add(id, &file?).await?;
            }
        }
        runs.finish().await
    }

    /// Reads every index file with its id.
    ///
    /// A prune replaces index files by writing the new ones before deleting the old, so an
    /// index file that vanishes between listing and reading means the listing is outdated.
    /// Then the directory is listed again and only files not yet read are fetched: files read
    /// before stay valid (an earlier listing is what a longer-running reader would hold
    /// anyway), those no longer listed are dropped (their live entries are in the files that
    /// replaced them). Each round reads only what appeared since the last, so even prunes run
    /// back to back cannot starve the reader; the number of rounds is still bounded.
    pub async fn read_index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        const MAX_ROUNDS: usize = 32;
        let mut read: BTreeMap<IndexId, IndexFile> = BTreeMap::new();
        let mut round = 0;
        loop {
            round += 1;
            let listed: BTreeSet<IndexId> =
                self.list_files::<IndexFile>().await?.into_iter().collect();
            read.retain(|id, _| listed.contains(id));
            let wanted: Vec<IndexId> = listed
                .into_iter()
                .filter(|id| !read.contains_key(id))
                .collect();
            let mut vanished = None;
            for (id, file) in self.read_these::<IndexFile>(wanted).await {
                match file {
                    Ok(file) => {
                        read.insert(id, file);
                    }
                    Err(missing @ RepoError::MissingObject { .. }) => vanished = Some(missing),
                    Err(other) => return Err(other),
                }
            }
            match vanished {
                None => return Ok(read.into_iter().collect()),
                Some(missing) if round >= MAX_ROUNDS => return Err(missing),
                Some(_) => {}
            }
        }
    }

    /// Seals and stores an index file; returns its id.
    pub async fn write_index_file(&self, file: &IndexFile) -> Result<IndexId> {
        self.write_file(file).await
    }

    /// Seals and stores a snapshot; returns its id.
    pub async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        self.write_file(snapshot).await
    }

    /// Deletes one snapshot (a snapshot already gone is not an error).
    ///
    /// # Errors
    /// Storage errors.
    pub async fn delete_snapshot(&self, id: &SnapshotId) -> Result<()> {
        self.delete_file::<Snapshot>(id).await
    }

    /// Reads one snapshot.
    ///
    /// # Errors
    /// [`RepoError::MissingObject`] if it does not exist; [`RepoError::Corrupt`] or
    /// [`RepoError::Pack`] if the stored file is not the snapshot its name says.
    pub async fn read_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.read_file(id).await
    }

    /// Every snapshot passing `filter`, oldest first. A snapshot removed between listing and
    /// reading (by a concurrent `forget`) is left out.
    pub async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotEntry>> {
        let mut all: Vec<SnapshotEntry> = self
            .read_files::<Snapshot>()
            .await?
            .into_iter()
            .filter(|(_, snapshot)| filter.matches(snapshot))
            .map(|(id, snapshot)| SnapshotEntry { id, snapshot })
            .collect();
        all.sort_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Finds a snapshot by `latest`, id or unique prefix among those passing `filter`.
    pub async fn find_snapshot(
        &self,
        spec: &str,
        filter: &SnapshotFilter,
    ) -> Result<SnapshotEntry> {
        let all = self.list_snapshots(filter).await?;
        crate::snapshot::resolve(&all, spec).cloned()
    }
}
