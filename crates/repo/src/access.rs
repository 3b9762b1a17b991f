//! Reading and writing the repository's objects: index files, snapshots, blobs and trees.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use cairn_pack::{decode_blob, BlobId, BlobType, PackEntry, PackId, PackReader};

use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile};
use crate::object::{IndexId, SnapshotId};
use crate::snapshot::{Snapshot, SnapshotEntry, SnapshotFilter};
use crate::storage::FileType;
use crate::tree::Tree;
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
    pub async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<String> {
        self.write_file(snapshot).await.map(String::from)
    }

    /// Reads one snapshot by full id.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] if `id` is not a full id; as [`Repository::read_file`].
    pub async fn read_snapshot(&self, id: &str) -> Result<Snapshot> {
        self.read_file(&id.parse::<SnapshotId>()?).await
    }

    /// Every snapshot passing `filter`, oldest first. A snapshot removed between listing and
    /// reading (by a concurrent `forget`) is left out.
    pub async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotEntry>> {
        let mut all: Vec<SnapshotEntry> = self
            .read_files::<Snapshot>()
            .await?
            .into_iter()
            .filter(|(_, snapshot)| filter.matches(snapshot))
            .map(|(id, snapshot)| SnapshotEntry {
                id: id.into(),
                snapshot,
            })
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

    /// Reads, authenticates and id-checks one blob.
    pub async fn read_blob(
        &self,
        index: &Index,
        blob_type: BlobType,
        id: &BlobId,
    ) -> Result<Vec<u8>> {
        let location = index
            .get(id)
            .filter(|l| l.entry.blob_type == blob_type)
            .ok_or_else(|| RepoError::MissingObject {
                object: format!("{blob_type} blob {id}"),
            })?;
        let pack = location.pack.to_hex();
        let sealed: Bytes = self
            .storage
            .get_range(FileType::Pack, &pack, location.entry.range())
            .await?;
        let keys = Arc::clone(&self.keys);
        let entry = location.entry;
        tokio::task::spawn_blocking(move || decode_blob(&keys, &entry, &sealed))
            .await
            .map_err(RepoError::task("decode task"))?
            .map_err(|source| RepoError::Pack {
                object: format!("{blob_type} blob {id} in pack {pack}"),
                source,
            })
    }

    /// Reads and decodes one tree.
    pub async fn read_tree(&self, index: &Index, id: &BlobId) -> Result<Tree> {
        let plain = self.read_blob(index, BlobType::Tree, id).await?;
        Tree::decode(&plain, &format!("tree {id}"))
    }

    /// Reads and authenticates a pack's header (one or two ranged reads) given its size.
    pub async fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<PackEntry>> {
        let name = id.to_hex();
        let object = format!("pack {name}");
        let tail = self
            .storage
            .get_range(FileType::Pack, &name, PackReader::tail_range(size))
            .await?;
        let pack_error = |source| RepoError::Pack {
            object: object.clone(),
            source,
        };
        let range = PackReader::locate_header(size, &tail).map_err(pack_error)?;
        let tail_start = size - tail.len() as u64;
        let sealed = if range.start >= tail_start {
            tail.slice((range.start - tail_start) as usize..(range.end - tail_start) as usize)
        } else {
            self.storage
                .get_range(FileType::Pack, &name, range.clone())
                .await?
        };
        PackReader::parse_header(&self.keys, size, range, &sealed).map_err(pack_error)
    }
}
