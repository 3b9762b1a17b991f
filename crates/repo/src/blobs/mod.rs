//! The one blob reader: every read of a blob's bytes from a pack goes through here.
//!
//! - [`Repository::read_blob`] / [`Repository::read_tree_blob`]: one blob by id, located through
//!   the index, fetched with one ranged read, authenticated and decoded.
//! - [`Repository::read_pack_blobs`]: many blobs of one pack (restore, repack), fetched in
//!   coalesced ranges (blobs closer than [`COALESCE_GAP`] share a read, no range longer
//!   than [`MAX_RANGE`] unless one blob is) and decoded on every core; each blob is handed
//!   to the caller's sink as soon as its range is decoded, so memory is bounded by one range
//!   per pack in flight, not by the pack or the restore.
//! - [`Repository::read_whole_pack`] and [`decode_entries`]: a whole pack for `check
//!   --read-data`, which must hash it.
//! - [`ReadAhead`]: the same reads for code running on blocking or rayon threads (the
//!   backup walker's parent trees, tar output, copy, repair), served by one task on the
//!   runtime that also reads ahead what the caller says it will want next. No blocking
//!   thread ever enters the runtime with `block_on`.
//!
//! Decoding runs on tokio's blocking pool (with rayon inside it for a range's blobs), never
//! queued on rayon's global pool from here: rayon threads may themselves be waiting for a
//! blob through [`ReadAhead`], and a decode queued behind them would never run.

mod read_ahead;

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use cairn_pack::{decode_blob, BlobId, BlobType, PackEntry, PackId, PackReader};

pub use read_ahead::{DirReader, ReadAhead};

use crate::cache::MetadataCache;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::storage::FileType;
use crate::tree::{Name, Node, TreeBlob};
use crate::Repository;

/// Blobs of one pack closer than this many bytes are fetched in one ranged read: reading a
/// small gap costs less than another request.
pub const COALESCE_GAP: u64 = 256 * 1024;

/// A coalesced read grows no longer than this (one blob larger than it is read alone), which
/// bounds the bytes one pack's reader holds.
pub const MAX_RANGE: u64 = 16 * 1024 * 1024;

/// One blob read from a pack: its entry, its sealed bytes (authenticated when `plain` is
/// `Ok`) and its plaintext or why it could not be decoded.
pub struct ReadBlob<T> {
    /// The caller's tag for this blob (what it is wanted for).
    pub tag: T,
    /// Where the blob sits in its pack.
    pub entry: PackEntry,
    /// The sealed bytes as stored.
    pub sealed: Bytes,
    /// The plaintext, authenticated and id-checked, or the typed error naming the blob.
    pub plain: Result<Vec<u8>>,
}

impl Repository {
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
        let pack = location.pack;
        let entry = location.entry;
        if blob_type == BlobType::Tree {
            if let Some(cache) = self.cache.clone() {
                if let Some(plain) = self.read_cached_tree(&cache, pack, entry).await? {
                    return Ok(plain);
                }
            }
        }
        let sealed: Bytes = self
            .storage
            .get_range(FileType::Pack, &pack.to_hex(), entry.range())
            .await?;
        let keys = Arc::clone(&self.keys);
        tokio::task::spawn_blocking(move || decode_one(&keys, &pack, &entry, &sealed))
            .await
            .map_err(RepoError::task("decode task"))?
    }

    /// A tree blob through the local cache: its pack is fetched whole on first use (one
    /// request for every tree in it), checked against its name and kept; later reads take
    /// the blob's range from the cached file. `None` when the cache cannot serve it (the
    /// caller reads from the store): a pack that does not hash to its name is not kept,
    /// and a cached blob that fails authentication drops the cached pack.
    async fn read_cached_tree(
        &self,
        cache: &Arc<MetadataCache>,
        pack: PackId,
        entry: PackEntry,
    ) -> Result<Option<Vec<u8>>> {
        let name = pack.to_hex();
        if cache.not_kept(&pack) {
            return Ok(None);
        }
        let sealed = match cache.read_pack_range(&pack, entry.range()) {
            Some(sealed) => sealed,
            None => {
                let fetch = cache.fetch_lock(&pack);
                let _one_fetch = fetch.lock().await;
                match cache.read_pack_range(&pack, entry.range()) {
                    Some(sealed) => sealed,
                    None => {
                        let whole = self.storage.get(FileType::Pack, &name).await?;
                        let (cache, whole_for_cache) = (Arc::clone(cache), whole.clone());
                        let kept = tokio::task::spawn_blocking(move || {
                            cache.put_pack(&pack, &whole_for_cache)
                        })
                        .await
                        .map_err(RepoError::task("cache task"))?;
                        let range = entry.range();
                        match whole.get(range.start as usize..range.end as usize) {
                            Some(_) if kept => {
                                whole.slice(range.start as usize..range.end as usize)
                            }
                            _ => return Ok(None),
                        }
                    }
                }
            }
        };
        let keys = Arc::clone(&self.keys);
        let decoded =
            tokio::task::spawn_blocking(move || decode_one(&keys, &pack, &entry, &sealed))
                .await
                .map_err(RepoError::task("decode task"))?;
        match decoded {
            Ok(plain) => Ok(Some(plain)),
            Err(_) => {
                cache.remove(FileType::Pack, &name);
                Ok(None)
            }
        }
    }

    /// Reads and decodes one tree blob (a listing or a split directory's part list).
    pub async fn read_tree_blob(&self, index: &Index, id: &BlobId) -> Result<TreeBlob> {
        let plain = self.read_blob(index, BlobType::Tree, id).await?;
        TreeBlob::decode(&plain, &format!("tree {id}"))
    }

    /// The node named `name` in directory `tree`, if it has one: for a split directory only
    /// the part that would hold it is read.
    pub async fn find_in_dir(
        &self,
        index: &Index,
        tree: &BlobId,
        name: &Name,
    ) -> Result<Option<Node>> {
        let nodes = match self.read_tree_blob(index, tree).await? {
            TreeBlob::Nodes(listing) => listing.nodes,
            TreeBlob::Parts(list) => {
                let Some(i) = list.locate(name) else {
                    return Ok(None);
                };
                let part = self.read_tree_blob(index, &list.parts[i].tree).await?;
                list.check_part(i, part, &format!("tree {tree}"))?.nodes
            }
        };
        Ok(nodes
            .binary_search_by(|n| n.name.cmp(name))
            .ok()
            .map(|i| nodes[i].clone()))
    }

    /// Reads the blobs `wanted` of `pack` in coalesced ranges (see the module documentation)
    /// and hands each to `sink` on a blocking thread, blobs of one range in parallel.
    /// A blob that fails to decode reaches the sink as an error; a failed request, or an
    /// error returned by the sink, ends the read with that error.
    pub async fn read_pack_blobs<T, S>(
        &self,
        pack: PackId,
        mut wanted: Vec<(PackEntry, T)>,
        sink: S,
    ) -> Result<()>
    where
        T: Send + 'static,
        S: Fn(ReadBlob<T>) -> Result<()> + Send + Sync + 'static,
    {
        wanted.sort_by_key(|(entry, _)| entry.offset);
        let sink = Arc::new(sink);
        let name = pack.to_hex();
        for group in coalesce(wanted) {
            let range = group_range(&group);
            let bytes = self
                .storage
                .get_range(FileType::Pack, &name, range.clone())
                .await?;
            let keys = Arc::clone(&self.keys);
            let sink = Arc::clone(&sink);
            tokio::task::spawn_blocking(move || -> Result<()> {
                use rayon::prelude::*;
                group.into_par_iter().try_for_each(|(entry, tag)| {
                    let local = (entry.range().start - range.start) as usize
                        ..(entry.range().end - range.start) as usize;
                    let sealed = bytes.slice(local);
                    let plain = decode_one(&keys, &pack, &entry, &sealed);
                    sink(ReadBlob {
                        tag,
                        entry,
                        sealed,
                        plain,
                    })
                })
            })
            .await
            .map_err(RepoError::task("pack read task"))??;
        }
        Ok(())
    }

    /// Reads a whole pack (for checks that hash it).
    pub async fn read_whole_pack(&self, pack: &PackId) -> Result<Bytes> {
        self.storage.get(FileType::Pack, &pack.to_hex()).await
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

    /// Decodes `entries` out of a whole pack's bytes, in parallel, each with its verdict.
    pub fn decode_entries(
        &self,
        pack: &PackId,
        bytes: &Bytes,
        entries: Vec<PackEntry>,
    ) -> Vec<ReadBlob<()>> {
        decode_entries(&self.keys, pack, bytes, entries)
    }
}

/// Decodes `entries` out of a whole pack's bytes on the calling thread's rayon pool; an entry
/// reaching outside the pack is an error for that entry.
pub fn decode_entries(
    keys: &cairn_pack::MasterKeys,
    pack: &PackId,
    bytes: &Bytes,
    entries: Vec<PackEntry>,
) -> Vec<ReadBlob<()>> {
    use rayon::prelude::*;
    entries
        .into_par_iter()
        .map(|entry| match PackReader::blob_bytes(bytes, &entry) {
            Ok(_) => {
                let range = entry.range();
                let sealed = bytes.slice(range.start as usize..range.end as usize);
                let plain = decode_one(keys, pack, &entry, &sealed);
                ReadBlob {
                    tag: (),
                    entry,
                    sealed,
                    plain,
                }
            }
            Err(source) => ReadBlob {
                tag: (),
                plain: Err(RepoError::Pack {
                    object: blob_object(pack, &entry),
                    source,
                }),
                entry,
                sealed: Bytes::new(),
            },
        })
        .collect()
}

/// "data blob ID in pack ID": how errors name a blob.
fn blob_object(pack: &PackId, entry: &PackEntry) -> String {
    format!("{} blob {} in pack {pack}", entry.blob_type, entry.id)
}

fn decode_one(
    keys: &cairn_pack::MasterKeys,
    pack: &PackId,
    entry: &PackEntry,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    decode_blob(keys, entry, sealed).map_err(|source| RepoError::Pack {
        object: blob_object(pack, entry),
        source,
    })
}

/// Groups blobs sorted by offset into ranges to read at once. Each group's range is kept as
/// it grows (not recomputed per blob: a range of small blobs holds tens of thousands).
fn coalesce<T>(sorted: Vec<(PackEntry, T)>) -> Vec<Vec<(PackEntry, T)>> {
    let mut groups: Vec<Vec<(PackEntry, T)>> = Vec::new();
    let mut range: Range<u64> = 0..0;
    for blob in sorted {
        let (start, end) = (blob.0.range().start, blob.0.range().end);
        let joins = !groups.is_empty()
            && start >= range.start
            && start <= range.end + COALESCE_GAP
            && end - range.start <= MAX_RANGE;
        match groups.last_mut() {
            Some(group) if joins => {
                range.end = range.end.max(end);
                group.push(blob);
            }
            _ => {
                range = start..end;
                groups.push(vec![blob]);
            }
        }
    }
    groups
}

/// The byte range covering a non-empty group (sorted by offset).
fn group_range<T>(group: &[(PackEntry, T)]) -> Range<u64> {
    let start = group.first().map_or(0, |(e, _)| e.range().start);
    let end = group
        .iter()
        .map(|(e, _)| e.range().end)
        .max()
        .unwrap_or(start);
    start..end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(offset: u32, stored_len: u32) -> PackEntry {
        PackEntry {
            blob_type: BlobType::Data,
            compression: cairn_pack::Compression::None,
            offset,
            stored_len,
            plain_len: stored_len.saturating_sub(40),
            id: BlobId([offset as u8; 32]),
        }
    }

    #[test]
    fn near_blobs_share_a_read_and_far_ones_do_not() {
        let far = (COALESCE_GAP as u32) * 4;
        let groups = coalesce(vec![
            (entry(0, 100), 0),
            (entry(100, 100), 1),
            (entry(300, 100), 2),
            (entry(far, 100), 3),
        ]);
        let tags: Vec<Vec<i32>> = groups
            .iter()
            .map(|g| g.iter().map(|(_, t)| *t).collect())
            .collect();
        assert_eq!(tags, vec![vec![0, 1, 2], vec![3]]);
    }

    proptest! {
        /// Every blob lands in exactly one group, in order; each group's range covers its
        /// blobs and stays within MAX_RANGE unless it holds a single blob.
        #[test]
        fn groups_cover_every_blob_within_bounds(
            lens in proptest::collection::vec((0u32..2_000_000, 41u32..6_000_000), 1..60)
        ) {
            let mut offset = 0u32;
            let mut blobs = Vec::new();
            for (i, (gap, len)) in lens.iter().enumerate() {
                offset = offset.saturating_add(*gap);
                blobs.push((entry(offset, *len), i));
                offset = offset.saturating_add(*len);
            }
            let groups = coalesce(blobs.clone());
            let flat: Vec<usize> = groups.iter().flatten().map(|(_, t)| *t).collect();
            prop_assert_eq!(flat, (0..blobs.len()).collect::<Vec<_>>());
            for group in &groups {
                let range = group_range(group);
                for (e, _) in group {
                    prop_assert!(range.start <= e.range().start && e.range().end <= range.end);
                }
                prop_assert!(group.len() == 1 || range.end - range.start <= MAX_RANGE);
            }
        }
    }
}
