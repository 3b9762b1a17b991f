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
mod plan;
mod repack;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use cairn_pack::{BlobId, PackId};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile, IndexPack};
use crate::lock::{LockGuard, LockStatus};
use crate::object::{IndexId, PendingId};
use crate::pending::PendingDeletion;
use crate::snapshot::{SnapshotEntry, SnapshotFilter};
use crate::walk::TreeWalker;
use crate::Repository;

pub(crate) use mark::Marks;
pub use max_unused::MaxUnused;
use plan::{PlanInput, PrunePlan, Stored};

/// What prune read before deciding anything.
struct Survey {
    /// Backup markers live when the prune started.
    live_at_start: Vec<LockStatus>,
    /// Packs stored at or after this moment may belong to a running backup.
    protect_from: DateTime<Utc>,
    /// Earlier prunes' pending deletions whose backups are all gone, and the others.
    ready: Vec<(PendingId, PendingDeletion)>,
    waiting: Vec<(PendingId, PendingDeletion)>,
    /// The index files the index was built from (id, stored size): the compacted index
    /// replaces exactly these. Their contents are not held (re-read in batches to compact).
    index_files: Vec<(IndexId, u64)>,
    /// Mapped from index tables (in the cache, or in `_scratch`), not on the heap.
    index: Arc<Index>,
    /// Where the index tables live when there is no cache; removed when the prune ends.
    _scratch: Option<tempfile::TempDir>,
    snapshots: Vec<SnapshotEntry>,
    roots: Vec<BlobId>,
    marks: Marks,
    stored: Stored,
    /// Packs of ready pending deletions that nothing turned out to need.
    ready_delete: Vec<PackId>,
}

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

    /// Prune's phases: survey (what runs, what is stored, what is used), settle earlier
    /// prunes' pending deletions, plan, then compact the index and set aside what it drops.
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
        let mut survey = self.survey(lock, &mut report).await?;
        self.settle_pending(&mut survey, lock, &mut report).await?;
        // Index files re-read while settling may list packs stored after the listing.
        self.stat_unlisted(&survey.index, &mut survey.stored)
            .await?;
        let awaiting: HashSet<PackId> = survey
            .waiting
            .iter()
            .flat_map(|(_, r)| r.packs.iter().copied())
            .collect();
        let deleted: HashSet<PackId> = survey.ready_delete.iter().copied().collect();
        let input = PlanInput {
            index: &survey.index,
            marks: &survey.marks,
            stored: &survey.stored,
            awaiting: &awaiting,
            deleted: &deleted,
            protect_from: survey.protect_from,
        };
        let plan = PrunePlan::decide(&input, options, &mut report)?;
        if dry_run {
            report.packs_awaiting_backups = awaiting.len() as u64;
            return Ok(report);
        }
        self.compact(&survey, &plan, lock, &mut report).await?;
        if plan.removed.is_empty() {
            report.packs_awaiting_backups = awaiting.len() as u64;
            return Ok(report);
        }
        self.set_aside(survey, plan.removed, awaiting.len(), lock, &mut report)
            .await?;
        Ok(report)
    }

    /// 1. Running backups, before anything else is read: whatever they store from now on
    ///    is newer than the oldest of them (or than this moment). 2. The index and every
    ///    snapshot (listed after the markers: a backup whose marker is gone has written its
    ///    snapshot), and what is reachable from them.
    async fn survey(&self, lock: Option<&LockGuard>, report: &mut PruneReport) -> Result<Survey> {
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
        let scratch = self.prune_scratch();
        let (index, index_files) = self.load_index_listed(scratch_path(&scratch)).await?;
        // Marking looks every used blob up: read slots rather than fault them in.
        let index = Arc::new(index.reading());
        let snapshots = self.list_snapshots(&SnapshotFilter::default()).await?;
        report.snapshots = snapshots.len() as u64;
        let roots: Vec<BlobId> = snapshots.iter().map(|s| s.snapshot.tree).collect();
        let marks = self.mark_reachable(&index, roots.iter().copied()).await?;
        let stored: Stored = self
            .list_packs()
            .await?
            .into_iter()
            .map(|p| (p.id, (p.size, p.stored_at)))
            .collect();
        Ok(Survey {
            live_at_start,
            protect_from,
            ready,
            waiting,
            index_files,
            index,
            _scratch: scratch,
            snapshots,
            roots,
            marks,
            stored,
            ready_delete: Vec::new(),
        })
    }

    /// 3. Earlier prunes' pending deletions whose backups are gone: keep what snapshots
    ///    turned out to need (re-indexing those packs), delete the rest. Fails, changing
    ///    nothing, if snapshots still reference blobs no index has.
    async fn settle_pending(
        &self,
        survey: &mut Survey,
        lock: Option<&LockGuard>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let dry_run = lock.is_none();
        let indexed: HashSet<PackId> = survey.index.packs().iter().copied().collect();
        let mut restored = false;
        // Records still waiting for backups are searched too: a backup that is still
        // running may already have written its snapshot and not yet re-indexed what it uses.
        let records = survey
            .ready
            .iter()
            .map(|r| (r, true))
            .chain(survey.waiting.iter().map(|r| (r, false)));
        for ((_, record), is_ready) in records {
            for pack in &record.packs {
                if indexed.contains(pack) {
                    continue; // re-indexed by a backup
                }
                let Some(&(size, _)) = survey.stored.get(pack) else {
                    continue; // already deleted
                };
                let missing = &mut survey.marks.missing;
                if !missing.is_empty() {
                    let header = self.read_pack_header(pack, size).await?;
                    if header.iter().any(|e| missing.contains(&e.id)) {
                        report.packs_restored += 1;
                        if !dry_run {
                            self.reindex_pack(pack).await?;
                            restored = true;
                        }
                        for entry in &header {
                            missing.remove(&entry.id);
                        }
                        continue;
                    }
                }
                if is_ready {
                    survey.ready_delete.push(*pack);
                }
            }
        }
        // An index file written meanwhile, or missed by a listing, may hold what is missing.
        if restored || !survey.marks.missing.is_empty() {
            let (index, index_files) = self
                .load_index_listed(scratch_path(&survey._scratch))
                .await?;
            (survey.index, survey.index_files) = (Arc::new(index.reading()), index_files);
            survey.marks = self
                .mark_reachable(&survey.index, survey.roots.iter().copied())
                .await?;
        }
        if let Some(blob) = survey.marks.missing.iter().next() {
            return Err(RepoError::corrupt(
                format!("blob {blob}"),
                format!(
                    "snapshots reference {} blobs the index lacks (this one among them); prune \
                     changed nothing: run `cairn check`, then `cairn repair index` or \
                     `cairn repair snapshots`",
                    survey.marks.missing.len()
                ),
            ));
        }
        if !dry_run {
            confirm_lock(lock).await?;
            self.delete_packs(&survey.ready_delete, &survey.stored, report)
                .await?;
            for (name, _) in &survey.ready {
                self.delete_file::<PendingDeletion>(name).await?;
            }
        }
        Ok(())
    }

    /// Adds the packs `index` lists that the pack listing missed (stored since) to `stored`.
    async fn stat_unlisted(&self, index: &Index, stored: &mut Stored) -> Result<()> {
        for pack in &index.packs() {
            if !stored.contains_key(pack) {
                match self.stat_pack(pack).await {
                    Ok(found) => {
                        stored.insert(*pack, (found.size, found.stored_at));
                    }
                    Err(RepoError::MissingObject { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// 5. Repack, then the compacted index, then retire the old index files.
    async fn compact(
        &self,
        survey: &Survey,
        plan: &PrunePlan,
        lock: Option<&LockGuard>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let new_packs = if plan.is_empty() {
            Vec::new()
        } else {
            self.repack(&survey.index, &survey.marks, &plan.repack, lock, report)
                .await?
        };
        let index_files = &survey.index_files;
        if !plan.removed.is_empty() || !new_packs.is_empty() || index_files.len() > 1 {
            confirm_lock(lock).await?;
            self.write_compacted_index(index_files.to_vec(), &plan.kept, new_packs, report)
                .await?;
            confirm_lock(lock).await?;
            for (name, _) in index_files {
                self.delete_file::<IndexFile>(name).await?;
                report.index_files_removed += 1;
            }
        }
        Ok(())
    }

    /// 6. Record the packs set aside with every backup that ran meanwhile, then delete them
    ///    unless one of those backups is still running.
    async fn set_aside(
        &self,
        survey: Survey,
        removed: Vec<PackId>,
        awaiting: usize,
        lock: Option<&LockGuard>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let live_now = self.live_backups(lock).await?;
        let mut backups: BTreeSet<String> =
            survey.live_at_start.into_iter().map(|l| l.name).collect();
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
        let known: HashSet<&str> = survey.snapshots.iter().map(|s| s.id.as_str()).collect();
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
            let lacking = self
                .mark_reachable_across(&current, &survey.index, fresh)
                .await?;
            let restore: HashSet<PackId> = lacking
                .iter()
                .filter_map(|blob| survey.index.get(blob).map(|l| l.pack))
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
            report.packs_awaiting_backups = (awaiting + delete_now.len()) as u64;
            return Ok(());
        }
        confirm_lock(lock).await?;
        self.delete_packs(&delete_now, &survey.stored, report)
            .await?;
        self.delete_file::<PendingDeletion>(&record_id).await?;
        report.packs_awaiting_backups = awaiting as u64;
        Ok(())
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
        TreeWalker::new(self, current)
            .with_fallback(previous)
            .walk(roots, |reached| {
                if reached.via_fallback {
                    lacking.insert(reached.id);
                }
                for node in &reached.tree?.nodes {
                    for blob in &node.content {
                        if !current.contains(blob) {
                            lacking.insert(*blob);
                        }
                    }
                }
                Ok(())
            })
            .await?;
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
                let repo = self.clone();
                let pack = *pack;
                async move { repo.delete_pack(&pack).await }
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
    ///
    /// The old index files are read again a batch at a time ([`INDEX_READ_BUDGET`] bytes)
    /// and each written out as soon as it holds [`ENTRIES_PER_INDEX_FILE`] entries, so memory
    /// holds one batch and one output file, whatever the size of the index. Under the
    /// maintenance lock nothing else removes index files, so one that vanished is an error
    /// (prune then deletes nothing: the files written so far only repeat entries).
    ///
    /// [`INDEX_READ_BUDGET`]: crate::access::INDEX_READ_BUDGET
    async fn write_compacted_index(
        &self,
        index_files: Vec<(IndexId, u64)>,
        kept: &BTreeSet<PackId>,
        new_packs: Vec<IndexPack>,
        report: &mut PruneReport,
    ) -> Result<()> {
        let mut out = CompactedIndex::default();
        let mut seen: HashSet<PackId> = HashSet::new();
        let budget = crate::access::INDEX_READ_BUDGET;
        for batch in self.read_batches(index_files, budget) {
            for (_, file) in self.read_these::<IndexFile>(batch).await {
                for pack in file?.packs {
                    if kept.contains(&pack.id) && seen.insert(pack.id) {
                        out.push(self, pack, report).await?;
                    }
                }
            }
        }
        for pack in new_packs {
            out.push(self, pack, report).await?;
        }
        out.flush(self, report).await
    }
}

/// The compacted index being written: one file's worth of packs at a time.
#[derive(Default)]
struct CompactedIndex {
    file: IndexFile,
    entries: usize,
}

impl CompactedIndex {
    async fn push(
        &mut self,
        repo: &Repository,
        pack: IndexPack,
        report: &mut PruneReport,
    ) -> Result<()> {
        self.entries += pack.entries.len();
        self.file.packs.push(pack);
        if self.entries >= ENTRIES_PER_INDEX_FILE {
            self.flush(repo, report).await?;
        }
        Ok(())
    }

    async fn flush(&mut self, repo: &Repository, report: &mut PruneReport) -> Result<()> {
        if !self.file.packs.is_empty() {
            repo.write_index_file(&std::mem::take(&mut self.file))
                .await?;
            report.index_files_written += 1;
        }
        self.entries = 0;
        Ok(())
    }
}

impl Repository {
    /// Without a cache, prune keeps its index tables in a temporary directory (under the
    /// system's temporary directory) for the run; with one, in the cache.
    fn prune_scratch(&self) -> Option<tempfile::TempDir> {
        if self.cache().is_some() {
            return None;
        }
        // No temporary directory: the index goes on the heap, as it did before tables.
        tempfile::Builder::new()
            .prefix("cairn-prune-")
            .tempdir()
            .ok()
    }
}

fn scratch_path(scratch: &Option<tempfile::TempDir>) -> Option<&std::path::Path> {
    scratch.as_ref().map(tempfile::TempDir::path)
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
