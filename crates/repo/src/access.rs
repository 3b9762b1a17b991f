//! Reading and writing the repository's objects: index files, snapshots, blobs and trees.

use std::sync::Arc;

use bytes::Bytes;
use cairn_pack::{decode_blob, BlobId, BlobType, PackEntry, PackId, PackReader};
use futures::{StreamExt, TryStreamExt};

use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile};
use crate::object::{check_content_id, content_id, open_object, seal_object, ObjectKind};
use crate::snapshot::{Snapshot, SnapshotEntry, SnapshotFilter};
use crate::storage::FileType;
use crate::tree::Tree;
use crate::Repository;

/// Parallel object reads (index files, snapshots) per call.
const READ_CONCURRENCY: usize = 8;

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
    pub async fn read_index_files(&self) -> Result<Vec<(String, IndexFile)>> {
        const MAX_ROUNDS: usize = 32;
        let mut read: std::collections::BTreeMap<String, IndexFile> = Default::default();
        let mut round = 0;
        loop {
            round += 1;
            let listed: std::collections::BTreeSet<String> = self
                .storage
                .list(FileType::Index)
                .await?
                .into_iter()
                .map(|listed| listed.name)
                .collect();
            read.retain(|name, _| listed.contains(name));
            let wanted: Vec<String> = listed
                .into_iter()
                .filter(|name| !read.contains_key(name))
                .collect();
            let fetched: Vec<(String, Result<IndexFile>)> = futures::stream::iter(wanted)
                .map(|name| async move {
                    let file = self.read_index_file(&name).await;
                    (name, file)
                })
                .buffer_unordered(READ_CONCURRENCY)
                .collect()
                .await;
            let mut vanished = None;
            for (name, file) in fetched {
                match file {
                    Ok(file) => {
                        read.insert(name, file);
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

    /// Reads, authenticates and decodes one index file.
    async fn read_index_file(&self, name: &str) -> Result<IndexFile> {
        let object = format!("index/{name}");
        let sealed = self.storage.get(FileType::Index, name).await?;
        check_content_id(&object, name, &sealed)?;
        let plain = open_object(&self.keys, ObjectKind::Index, &object, &sealed)?;
        IndexFile::decode(&plain, &object)
    }

    /// Seals and stores an index file; returns its id.
    pub async fn write_index_file(&self, file: &IndexFile) -> Result<String> {
        let sealed = seal_object(&self.keys, ObjectKind::Index, &file.encode())?;
        let id = content_id(&sealed);
        self.storage
            .put_content(FileType::Index, &id, sealed.into())
            .await?;
        Ok(id)
    }

    /// Seals and stores a snapshot; returns its id.
    pub async fn write_snapshot(&self, snapshot: &Snapshot) -> Result<String> {
        let sealed = seal_object(&self.keys, ObjectKind::Snapshot, &snapshot.encode())?;
        let id = content_id(&sealed);
        self.storage
            .put_content(FileType::Snapshot, &id, sealed.into())
            .await?;
        Ok(id)
    }

    /// Reads one snapshot by full id.
    pub async fn read_snapshot(&self, id: &str) -> Result<Snapshot> {
        let object = format!("snapshots/{id}");
        let sealed = self.storage.get(FileType::Snapshot, id).await?;
        check_content_id(&object, id, &sealed)?;
        let plain = open_object(&self.keys, ObjectKind::Snapshot, &object, &sealed)?;
        Snapshot::decode(&plain, &object)
    }

    /// Every snapshot passing `filter`, oldest first. A snapshot removed between listing and
    /// reading (by a concurrent `forget`) is left out.
    pub async fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotEntry>> {
        let listed = self.storage.list(FileType::Snapshot).await?;
        let mut all: Vec<SnapshotEntry> = futures::stream::iter(listed)
            .map(|listed| async move {
                match self.read_snapshot(&listed.name).await {
                    Ok(snapshot) => Ok(Some(SnapshotEntry {
                        id: listed.name,
                        snapshot,
                    })),
                    Err(RepoError::MissingObject { .. }) => Ok(None),
                    Err(e) => Err(e),
                }
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_filter_map(|entry| async move { Ok::<_, RepoError>(entry) })
            .try_collect()
            .await?;
        all.retain(|s| filter.matches(&s.snapshot));
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
            .map_err(|e| RepoError::InvalidInput(format!("decode task failed: {e}")))?
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
