//! `prune`: remove data no snapshot uses, safely while backups run
//! (docs/format.md#locks-and-concurrency).
//!
//! Under the maintenance lock: mark every blob reachable from every snapshot; set aside packs
//! with no used blob, and repack (copy the used blobs of) packs whose unused share exceeds
//! the threshold; write a compacted index and remove the old index files. Packs set aside are
//! recorded in a pending deletion and deleted only once no backup that was running during
//! the prune could still reference them: at once when none was, otherwise by a later prune.
//! Packs a running backup wrote are never touched (anything stored after the oldest live
//! backup marker). Data is read only for packs being repacked.

mod mark;
mod max_unused;
mod repack;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use cairn_pack::{BlobId, PackId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::{LockGuard, LockStatus};
use crate::object::IndexId;
use crate::pending::PendingDeletion;
use crate::snapshot::SnapshotFilter;
use crate::storage::FileType;
use crate::Repository;

pub(crate) use mark::Marks;
pub use max_unused::MaxUnused;

/// Index entries per compacted index file.
const ENTRIES_PER_INDEX_FILE: usize = 100_000;

/// How to prune. Deserializes from `{"max_unused", "max_repack_bytes", "dry_run"}` (each
/// optional, unknown names refused): the C ABI takes it as is.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneOptions {
    /// How much unused data may remain after prune, repository-wide (restic's
    /// `--max-unused`, default 5 %): partly used packs are repacked, most unused per used
    /// byte first, until what is left is within it.
    pub max_unused: MaxUnused,
    /// Read at most this many bytes of packs to repack (`--max-repack-size`).
    pub max_repack_bytes: Option<u64>,
    /// Plan only: change nothing and take no lock.
    pub dry_run: bool,
}

/// What prune did (or, in a dry run, would do).
#[derive(Clone, Debug, Default, Serialize)]
pub struct PruneReport {
    /// Nothing was changed.
    pub dry_run: bool,
    /// Snapshots whose blobs were marked.
    pub snapshots: u64,
    /// Indexed blobs some snapshot uses.
    pub blobs_used: u64,
    /// Indexed blobs no snapshot uses.
    pub blobs_unused: u64,
    /// Packs in storage before the prune.
    pub packs_total: u64,
    /// Bytes in storage before the prune.
    pub bytes_total: u64,
    /// Packs with no used blob, removed from the index.
    pub packs_unused: u64,
    /// Packs repacked (their used blobs copied into new packs).
    pub packs_repacked: u64,
    /// Packs in no index, left by interrupted runs.
    pub packs_unindexed: u64,
    /// Packs left alone because a running backup may have written them.
    pub packs_protected: u64,
    /// Bytes of packs read for repacking.
    pub bytes_repacked: u64,
    /// Bytes written in new packs.
    pub bytes_written: u64,
    /// Bytes the removed packs occupy (freed once they are deleted).
    pub bytes_removed: u64,
    /// New packs written.
    pub packs_written: u64,
    /// Index files replaced by the compacted index.
    pub index_files_removed: u64,
    /// Compacted index files written.
    pub index_files_written: u64,
    /// Packs deleted from storage in this run (this prune's and earlier ones').
    pub packs_deleted: u64,
    /// Bytes deleted from storage in this run.
    pub bytes_deleted: u64,
    /// Packs set aside that must wait for running backups; a later prune deletes them.
    pub packs_awaiting_backups: u64,
    /// Packs put back into the index because a backup that ran during a prune used them.
    pub packs_restored: u64,
    /// Drill records of removed snapshots and surplus check records deleted.
    pub records_removed: u64,
}

/// One indexed pack's use.
#[derive(Clone, Copy, Debug, Default)]
struct PackUse {
    used_blobs: u64,
    unused_blobs: u64,
    unused_bytes: u64,
}

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Keep,
    Remove,
    Repack,
}

impl Repository {
    /// Prunes; see the module documentation.
    ///
    /// # Errors
    /// [`RepoError::Locked`] if another maintenance run holds the lock; `Corrupt` if a
    /// snapshot references blobs the index lacks or an indexed pack is missing (prune then
    /// changes nothing: run `check` and `repair`); [`RepoError::LockLost`] if the lock could
    /// not be kept (the run stops before its next destructive step; what it did is safe).
    pub async fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        options.max_unused.validate()?;
        let lock = if options.dry_run {
            None
        } else {
            Some(self.lock_maintenance().await?)
        };
        let mut result = self.prune_locked(lock.as_ref(), options).await;
        if let (Ok(report), Some(lock)) = (&mut result, &lock) {
            confirm_lock(Some(lock)).await?;
            report.records_removed = self.drop_stale_records().await?;
        }
        if let Some(lock) = lock {
            lock.release().await?;
        }
        result
    }

    async fn store_now(&self, lock: Option<&LockGuard>) -> Result<DateTime<Utc>> {
        match lock {
            Some(lock) => lock.refresh_now().await,
            None => Ok(Utc::now()),
        }
    }

    /// Backup markers that are not stale.
    async fn live_backups(&self, lock: Option<&LockGuard>) -> Result<Vec<LockStatus>> {
        let now = self.store_now(lock).await?;
        let mut locks = self.list_locks_at(now).await?;
        // A marker that does not authenticate under its name (a copy, or planted) or whose
        // holder is known to be gone protects nothing.
        locks.retain(|l| !l.is_maintenance() && l.is_live());
        Ok(locks)
    }

    async fn prune_locked(
        &self,
        lock: Option<&LockGuard>,
        options: &PruneOptions,
    ) -> Result<PruneReport> {
        let dry_run = lock.is_none();
        let mut report = PruneReport {
            dry_run,
            ..Default::default()
        };

        // 1. Running backups, before anything else is read: whatever they store from now on
        //    is newer than the oldest of them (or than this moment).
        let start = self.store_now(lock).await?;
        let live_at_start = self.live_backups(lock).await?;
        let margin = chrono::Duration::from_std(self.lock_timings.clock_margin)
            .unwrap_or(chrono::Duration::MAX);
        let oldest = live_at_start
            .iter()
            .map(LockStatus::created)
            .chain([start])
            .min()
            .unwrap_or(start);
        let protect_from = oldest
            .checked_sub_signed(margin)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let live_names: HashSet<&str> = live_at_start.iter().map(|l| l.name.as_str()).collect();
        let pending = self.read_pending().await?;
        let (ready, waiting): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(_, record)| {
            record
                .backups
                .iter()
                .all(|b| !live_names.contains(b.as_str()))
        });

        // 2. The index and every snapshot (listed after the markers: a backup whose marker
        //    is gone has written its snapshot).
        let mut index_files = self.read_index_files().await?;
        let mut index = Index::build(index_files.iter().map(|(_, f)| f))?;
        let snapshots = self.list_snapshots(&SnapshotFilter::default()).await?;
        report.snapshots = snapshots.len() as u64;
        let roots: Vec<BlobId> = snapshots.iter().map(|s| s.snapshot.tree).collect();
        let mut marks = self.mark_reachable(&index, roots.iter().copied()).await?;

        // 3. Earlier prunes' pending deletions whose backups are gone: keep what snapshots
        //    turned out to need, delete the rest.
        let mut stored: HashMap<PackId, (u64, DateTime<Utc>)> = self
            .storage
            .list(FileType::Pack)
            .await?
            .into_iter()
            .filter_map(|l| Some((l.name.parse().ok()?, (l.size, l.last_modified))))
            .collect();
        let indexed: HashSet<PackId> = index.packs().iter().copied().collect();
        let mut ready_delete: Vec<PackId> = Vec::new();
        let mut restored = false;
        // Records still waiting for backups are searched too: a backup that is still
        // running may already have written its snapshot and not yet re-indexed what it uses.
        let records = ready
            .iter()
            .map(|r| (r, true))
            .chain(waiting.iter().map(|r| (r, false)));
        for ((_, record), is_ready) in records {
            for pack in &record.packs {
                if indexed.contains(pack) {
                    continue; // re-indexed by a backup
                }
                let Some(&(size, _)) = stored.get(pack) else {
                    continue; // already deleted
                };
                if !marks.missing.is_empty() {
                    let header = self.read_pack_header(pack, size).await?;
                    if header.iter().any(|e| marks.missing.contains(&e.id)) {
                        report.packs_restored += 1;
                        if !dry_run {
                            self.reindex_pack(pack).await?;
                            restored = true;
                        }
                        for entry in &header {
                            marks.missing.remove(&entry.id);
                        }
                        continue;
                    }
                }
                if is_ready {
                    ready_delete.push(*pack);
                }
            }
        }
        // An index file written meanwhile, or missed by a listing, may hold what is missing.
        if restored || !marks.missing.is_empty() {
            index_files = self.read_index_files().await?;
            index = Index::build(index_files.iter().map(|(_, f)| f))?;
            marks = self.mark_reachable(&index, roots.iter().copied()).await?;
        }
        if let Some(blob) = marks.missing.iter().next() {
            return Err(RepoError::corrupt(
                format!("blob {blob}"),
                format!(
                    "snapshots reference {} blobs the index lacks (this one among them); prune \
                     changed nothing: run `cairn check`, then `cairn repair index` or \
                     `cairn repair snapshots`",
                    marks.missing.len()
                ),
            ));
        }
        if !dry_run {
            confirm_lock(lock).await?;
            self.delete_packs(&ready_delete, &stored, &mut report)
                .await?;
            for (name, _) in &ready {
                self.delete_file::<PendingDeletion>(name).await?;
            }
        }

        // 4. Plan. Index files re-read above may list packs stored after the listing.
        for pack in index.packs() {
            if !stored.contains_key(pack) {
                match self.storage.head(FileType::Pack, &pack.to_hex()).await {
                    Ok(found) => {
                        stored.insert(*pack, (found.size, found.last_modified));
                    }
                    Err(RepoError::MissingObject { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let mut usage: HashMap<PackId, PackUse> = HashMap::new();
        for (position, location) in index.iter().enumerate() {
            let pack_use = usage.entry(location.pack).or_default();
            if marks.is_used(position) {
                report.blobs_used += 1;
                pack_use.used_blobs += 1;
            } else {
                report.blobs_unused += 1;
                pack_use.unused_blobs += 1;
                pack_use.unused_bytes += u64::from(location.entry.stored_len);
            }
        }
        let awaiting: HashSet<PackId> = waiting
            .iter()
            .flat_map(|(_, r)| r.packs.iter().copied())
            .collect();
        let deleted: HashSet<PackId> = ready_delete.iter().copied().collect();
        report.packs_total = stored.len() as u64;
        report.bytes_total = stored.values().map(|(size, _)| size).sum();
        let mut fates: HashMap<PackId, Fate> = HashMap::new();
        // Partly used packs prune may repack: (unused bytes, used bytes, pack, size).
        let mut partly_used: Vec<(u64, u64, PackId, u64)> = Vec::new();
        let (mut used_bytes, mut unused_bytes) = (0u64, 0u64);
        for pack in index.packs() {
            let Some(&(size, stored_at)) = stored.get(pack) else {
                return Err(RepoError::corrupt(
                    format!("pack {pack}"),
                    "the index lists it but it is missing from storage; prune changed nothing: \
                     run `cairn check`, then `cairn repair index`",
                ));
            };
            let pack_use = usage.get(pack).copied().unwrap_or_default();
            let unused = pack_use.unused_bytes.min(size);
            let fate = if pack_use.used_blobs == 0 && stored_at < protect_from {
                report.packs_unused += 1;
                Fate::Remove
            } else {
                if stored_at >= protect_from {
                    report.packs_protected += 1;
                } else if unused > 0 {
                    partly_used.push((unused, size - unused, *pack, size));
                }
                used_bytes += size - unused;
                unused_bytes += unused;
                Fate::Keep
            };
            fates.insert(*pack, fate);
        }
        // restic's order: the most unused data per used byte first, since repacking those
        // frees the most for the bytes copied; then repack until the unused data left is
        // within `max_unused`, skipping packs the repack budget no longer covers.
        partly_used.sort_by(|a, b| {
            (u128::from(b.0) * u128::from(a.1))
                .cmp(&(u128::from(a.0) * u128::from(b.1)))
                .then(a.2.cmp(&b.2))
        });
        let allowed = options.max_unused.allowed_bytes(used_bytes);
        let mut budget = options.max_repack_bytes.unwrap_or(u64::MAX);
        for (unused, _, pack, size) in partly_used {
            if unused_bytes <= allowed {
                break;
            }
            if size <= budget {
                budget -= size;
                unused_bytes -= unused;
                fates.insert(pack, Fate::Repack);
                report.packs_repacked += 1;
                report.bytes_repacked += size;
            }
        }
        let mut unindexed: Vec<PackId> = Vec::new();
        for (pack, &(_, stored_at)) in &stored {
            if !fates.contains_key(pack)
                && !awaiting.contains(pack)
                && !deleted.contains(pack)
                && stored_at < protect_from
            {
                unindexed.push(*pack);
            }
        }
        unindexed.sort();
        report.packs_unindexed = unindexed.len() as u64;
        let mut removed: Vec<PackId> = fates
            .iter()
            .filter(|(_, fate)| **fate != Fate::Keep)
            .map(|(pack, _)| *pack)
            .chain(unindexed.iter().copied())
            .collect();
        removed.sort();
        report.bytes_removed = removed.iter().map(|p| stored[p].0).sum();
        if dry_run {
            report.packs_awaiting_backups = awaiting.len() as u64;
            return Ok(report);
        }

        // 5. Repack, then the compacted index, then retire the old index files.
        let repack: Vec<PackId> = {
            let mut v: Vec<PackId> = fates
                .iter()
                .filter(|(_, f)| **f == Fate::Repack)
                .map(|(p, _)| *p)
                .collect();
            v.sort();
            v
        };
        let new_packs = if repack.is_empty() && removed.is_empty() {
            Vec::new()
        } else {
            self.repack(&index, &marks, &repack, lock, &mut report)
                .await?
        };
        if !removed.is_empty() || !new_packs.is_empty() || index_files.len() > 1 {
            let kept: BTreeSet<PackId> = fates
                .iter()
                .filter(|(_, f)| **f == Fate::Keep)
                .map(|(p, _)| *p)
                .collect();
            confirm_lock(lock).await?;
            self.write_compacted_index(&index_files, &kept, new_packs, &mut report)
                .await?;
            confirm_lock(lock).await?;
            for (name, _) in &index_files {
                self.delete_file::<IndexFile>(name).await?;
                report.index_files_removed += 1;
            }
        }
        if removed.is_empty() {
            report.packs_awaiting_backups = awaiting.len() as u64;
            return Ok(report);
        }

        // 6. Record the packs set aside with every backup that ran meanwhile, then delete
        //    them unless one of those backups is still running.
        let live_now = self.live_backups(lock).await?;
        let mut backups: BTreeSet<String> = live_at_start.into_iter().map(|l| l.name).collect();
        backups.extend(live_now.iter().map(|l| l.name.clone()));
        let record = PendingDeletion {
            time: chrono::Local::now().to_rfc3339(),
            packs: removed.clone(),
            backups: backups.iter().cloned().collect(),
        };
        confirm_lock(lock).await?;
        let record_id = self.write_pending(&record).await?;
        // Backups that ended while this prune ran, or that are still running but have written
        // their snapshot, may use what was set aside: re-index any such pack. (A snapshot
        // written after this listing is covered by its backup: it sees the record.)
        let known: HashSet<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
        let fresh: Vec<BlobId> = self
            .list_snapshots(&SnapshotFilter::default())
            .await?
            .into_iter()
            .filter(|s| !known.contains(s.id.as_str()))
            .map(|s| s.snapshot.tree)
            .collect();
        let mut delete_now = removed;
        if !fresh.is_empty() {
            let current = self.load_index().await?;
            let lacking = self.mark_reachable_across(&current, &index, fresh).await?;
            let restore: HashSet<PackId> = lacking
                .iter()
                .filter_map(|blob| index.get(blob).map(|l| l.pack))
                .collect();
            for pack in &restore {
                if delete_now.contains(pack) {
                    self.reindex_pack(pack).await?;
                    report.packs_restored += 1;
                }
            }
            delete_now.retain(|p| !restore.contains(p));
        }
        if !live_now.is_empty() {
            report.packs_awaiting_backups = (awaiting.len() + delete_now.len()) as u64;
            return Ok(report);
        }
        confirm_lock(lock).await?;
        self.delete_packs(&delete_now, &stored, &mut report).await?;
        self.delete_file::<PendingDeletion>(&record_id).await?;
        report.packs_awaiting_backups = awaiting.len() as u64;
        Ok(report)
    }

    /// Blobs reachable from `roots` that `current` lacks; trees missing from `current` are
    /// read through `previous` (the index before this prune, whose packs still exist).
    async fn mark_reachable_across(
        &self,
        current: &Index,
        previous: &Index,
        roots: Vec<BlobId>,
    ) -> Result<HashSet<BlobId>> {
        let mut lacking = HashSet::new();
        let mut seen = HashSet::new();
        let mut stack = roots;
        while let Some(tree_id) = stack.pop() {
            if !seen.insert(tree_id) {
                continue;
            }
            let via = if current.contains(&tree_id) {
                current
            } else {
                lacking.insert(tree_id);
                previous
            };
            let tree = self.read_tree(via, &tree_id).await?;
            for node in &tree.nodes {
                stack.extend(node.subtree);
                for blob in &node.content {
                    if !current.contains(blob) {
                        lacking.insert(*blob);
                    }
                }
            }
        }
        Ok(lacking)
    }

    /// Deletes packs, except any that a freshly read index lists (a backup re-indexed it
    /// since the plan): the last look before data goes.
    async fn delete_packs(
        &self,
        packs: &[PackId],
        stored: &HashMap<PackId, (u64, DateTime<Utc>)>,
        report: &mut PruneReport,
    ) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        let current = self.load_index().await?;
        let listed: HashSet<PackId> = current.packs().iter().copied().collect();
        let packs: Vec<PackId> = packs
            .iter()
            .filter(|p| !listed.contains(p))
            .copied()
            .collect();
        let packs = &packs[..];
        use futures::StreamExt;
        let deletes: Vec<_> = packs
            .iter()
            .map(|pack| {
                let storage = self.storage.clone();
                let name = pack.to_hex();
                async move { storage.delete(FileType::Pack, &name).await }
            })
            .collect();
        let results: Vec<Result<()>> = futures::stream::iter(deletes)
            .buffer_unordered(8)
            .collect()
            .await;
        for result in results {
            result?;
        }
        report.packs_deleted += packs.len() as u64;
        report.bytes_deleted += packs
            .iter()
            .filter_map(|p| stored.get(p).map(|(size, _)| size))
            .sum::<u64>();
        Ok(())
    }

    /// Writes index files covering `kept` packs (every entry their index files list, so a
    /// blob stored twice stays findable in whichever copy survives) and `new_packs`.
    async fn write_compacted_index(
        &self,
        index_files: &[(IndexId, IndexFile)],
        kept: &BTreeSet<PackId>,
        new_packs: Vec<IndexPack>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let mut seen: HashSet<PackId> = HashSet::new();
        let mut packs: Vec<IndexPack> = index_files
            .iter()
            .flat_map(|(_, file)| &file.packs)
            .filter(|pack| kept.contains(&pack.id) && seen.insert(pack.id))
            .cloned()
            .collect();
        packs.extend(new_packs);
        let mut file = IndexFile::default();
        let mut entries = 0;
        for pack in packs {
            entries += pack.entries.len();
            file.packs.push(pack);
            if entries >= ENTRIES_PER_INDEX_FILE {
                self.write_index_file(&std::mem::take(&mut file)).await?;
                report.index_files_written += 1;
                entries = 0;
            }
        }
        if !file.packs.is_empty() {
            self.write_index_file(&file).await?;
            report.index_files_written += 1;
        }
        Ok(())
    }
}

/// Ok unless the maintenance lock (if any) lapsed or was lost, confirmed by the store's
/// clock: called before every step that deletes or publishes.
async fn confirm_lock(lock: Option<&LockGuard>) -> Result<()> {
    match lock {
        Some(lock) => lock.refresh_now().await.map(drop),
        None => Ok(()),
    }
}

/// Ok unless the maintenance lock (if any) is known to be lost, by this host's clock alone:
/// checked before each pack a repack uploads (uploads delete nothing).
fn check_lock(lock: Option<&LockGuard>) -> Result<()> {
    match lock {
        Some(lock) => lock.check(),
        None => Ok(()),
    }
}

#[allow(dead_code)]
fn _assert_send(repo: Arc<Repository>) {
    fn send<T: Send>(_: T) {}
    send(async move { repo.prune(&PruneOptions::default()).await });
}
