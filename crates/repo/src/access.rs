//! Reading and writing the repository's index files and snapshots (blobs: `blobs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile};
use crate::object::{IndexId, SnapshotId};
use crate::snapshot::{Snapshot, SnapshotEntry, SnapshotFilter};
use crate::Repository;

impl Repository {
    /// Reads, authenticates and merges every index file.
    pub async fn load_index(&self) -> Result<Arc<Index>> {
        let files = self.read_index_files().await?;
        let index = Index::build(files.iter().map(|(_, f)| f))?;
        Ok(Arc::new(index))
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
