//! `repair`: rebuild the index from the packs themselves, and rewrite snapshots whose data
//! is partly lost so the rest stays restorable, saying exactly what was cut.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_pack::{BlobId, BlobType};
use futures::StreamExt;
use serde::Serialize;

use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::index::{Index, IndexFile, IndexPack};
use crate::object::SnapshotId;
use crate::ops::backup::{BackupOptions, Saver};
use crate::snapshot::{SnapshotEntry, SnapshotFilter};
use crate::tree::{NodeKind, TreeWriter};
use crate::Repository;

/// Index entries per rebuilt index file.
const ENTRIES_PER_INDEX_FILE: usize = 100_000;

/// What `repair index` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs whose header was read and indexed.
    pub packs_indexed: u64,
    /// Packs whose header could not be read (their blobs are not indexed), with why.
    pub packs_unreadable: Vec<(String, String)>,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files replaced.
    pub index_files_removed: u64,
}

/// What `repair snapshots` did for one damaged snapshot.
#[derive(Clone, Debug, Serialize)]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub original: SnapshotId,
    /// The repaired snapshot written in its place (none in a dry run).
    pub repaired: Option<SnapshotId>,
    /// Every cut, as "path: what was done".
    pub damage: Vec<String>,
}

/// How to repair snapshots.
#[derive(Clone, Debug, Default)]
pub struct RepairSnapshotsOptions {
    /// Only report.
    pub dry_run: bool,
    /// Remove the damaged originals once their repaired versions are written.
    pub forget: bool,
}

impl Repository {
    /// Rebuilds the index from every pack's own header, under the maintenance lock, and
    /// replaces the index files that existed before. Packs being written by running backups
    /// are indexed by those backups; nothing is deleted but old index files.
    pub async fn repair_index(&self) -> Result<RepairIndexReport> {
        let lock = self.lock_maintenance().await?;
        let result = self.repair_index_locked(&lock).await;
        lock.release().await?;
        result
    }

    async fn repair_index_locked(
        &self,
        lock: &crate::lock::LockGuard,
    ) -> Result<RepairIndexReport> {
        let mut report = RepairIndexReport::default();
        let old_files = self.list_files::<IndexFile>().await?;
        let packs = self.list_packs().await?;
        let reads: Vec<_> = packs
            .into_iter()
            .map(|pack| {
                let repo = self.clone();
                async move {
                    let header = match repo.read_pack_header(&pack.id, pack.size).await {
                        Ok(entries) => Ok((pack.id, entries)),
                        Err(e) => Err(e.to_string()),
                    };
                    (pack.id.to_hex(), header)
                }
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(reads)
            .buffer_unordered(self.transfer_concurrency().max(4))
            .collect()
            .await;
        let mut file = IndexFile::default();
        let mut entries = 0;
        for (name, result) in results {
            match result {
                Ok((id, pack_entries)) => {
                    report.packs_indexed += 1;
                    entries += pack_entries.len();
                    file.packs.push(IndexPack {
                        id,
                        entries: pack_entries,
                    });
                    if entries >= ENTRIES_PER_INDEX_FILE {
                        self.write_index_file(&std::mem::take(&mut file)).await?;
                        report.index_files_written += 1;
                        entries = 0;
                    }
                }
                Err(reason) => report.packs_unreadable.push((name, reason)),
            }
        }
        if !file.packs.is_empty() {
            self.write_index_file(&file).await?;
            report.index_files_written += 1;
        }
        lock.refresh_now().await?;
        for old in old_files {
            self.delete_file::<IndexFile>(&old).await?;
            report.index_files_removed += 1;
        }
        Ok(report)
    }

    /// Rewrites every snapshot (passing `filter`) that references data the index lacks: a
    /// file whose content is partly missing is truncated before its first missing blob, a
    /// directory that cannot be read becomes empty. The new snapshot gets the tag `repaired`,
    /// its `original` names the damaged one, and the report lists every cut. Undamaged
    /// snapshots are left alone.
    pub async fn repair_snapshots(
        &self,
        filter: &SnapshotFilter,
        options: &RepairSnapshotsOptions,
    ) -> Result<Vec<RepairedSnapshot>> {
        let snapshots = self.list_snapshots(filter).await?;
        let prepared = self.prepare(&BackupOptions::default()).await?;
        let repairer = Repairer {
            repo: self.clone(),
            blobs: ReadAhead::start(
                self.clone(),
                Arc::clone(&prepared.index),
                self.reads_in_flight(),
            ),
            index: Arc::clone(&prepared.index),
            saver: Arc::clone(&prepared.saver),
            dry_run: options.dry_run,
        };
        let work = {
            let snapshots = snapshots.clone();
            tokio::task::spawn_blocking(move || {
                let mut memo = HashMap::new();
                let result = snapshots
                    .iter()
                    .map(|s| {
                        let mut damage = Vec::new();
                        repairer
                            .tree(&s.snapshot.tree, "/", &mut damage, &mut memo)
                            .map(|root| (root, damage))
                    })
                    .collect::<Result<Vec<_>>>();
                repairer.saver.wait_idle();
                let closed = repairer.saver.close();
                result.and_then(|r| closed.map(|_| r))
            })
            .await
            .map_err(RepoError::task("repair task"))?
        };
        let (walk, done) = match work {
            Ok(done) => (Ok(BlobId([0; 32])), Some(done)),
            Err(e) => (Err(e), None),
        };
        self.finish_upload(prepared.uploader, &prepared.saver, walk)
            .await?;
        let done = done.expect("a failed repair returned above");
        let mut out = Vec::new();
        for (entry, (root, damage)) in snapshots.iter().zip(done) {
            if damage.is_empty() {
                continue;
            }
            let mut repaired = RepairedSnapshot {
                original: entry.id.clone(),
                repaired: None,
                damage,
            };
            if !options.dry_run {
                repaired.repaired = Some(
                    self.write_repaired(&prepared.marker, &prepared.index, entry, root)
                        .await?,
                );
                if options.forget {
                    self.delete_snapshot(&entry.id).await?;
                }
            }
            out.push(repaired);
        }
        prepared.marker.release().await?;
        Ok(out)
    }

    async fn write_repaired(
        &self,
        marker: &crate::lock::LockGuard,
        start: &Index,
        entry: &SnapshotEntry,
        root: BlobId,
    ) -> Result<SnapshotId> {
        let mut snapshot = entry.snapshot.clone();
        snapshot.tree = root;
        snapshot.original = Some(entry.id.to_string());
        if !snapshot.tags.iter().any(|t| t == "repaired") {
            snapshot.tags.push("repaired".into());
        }
        self.write_protected_snapshot(marker, start, &snapshot)
            .await
    }
}

struct Repairer {
    repo: Repository,
    blobs: ReadAhead,
    index: Arc<Index>,
    saver: Arc<Saver>,
    dry_run: bool,
}

impl Repairer {
    fn has(&self, id: &BlobId, blob_type: BlobType) -> bool {
        self.index
            .get(id)
            .is_some_and(|l| l.entry.blob_type == blob_type)
    }

    /// The repaired id of tree `id` at `path`; appends what was cut to `damage`. Trees that
    /// need no change keep their id and are not rewritten.
    fn tree(
        &self,
        id: &BlobId,
        path: &str,
        damage: &mut Vec<String>,
        memo: &mut HashMap<BlobId, (BlobId, Vec<String>)>,
    ) -> Result<BlobId> {
        if let Some((done, cuts)) = memo.get(id) {
            // The same subtree elsewhere: same cuts, reported under this path too.
            damage.extend(cuts.iter().map(|c| format!("{path}{c}")));
            return Ok(*done);
        }
        let dir = if self.has(id, BlobType::Tree) {
            self.blobs.read_dir(id).map_err(|e| e.to_string())
        } else {
            Err("is not in the index".to_string())
        };
        let mut cuts = Vec::new();
        let splitter = self.repo.splitter();
        let mut writer = TreeWriter::new(&splitter);
        let mut store = |bytes: &[u8]| self.save(bytes);
        let repaired = match dir {
            Err(reason) => {
                cuts.push(format!(
                    ": directory {reason}; replaced by an empty directory"
                ));
                writer.finish(&mut store)?.0
            }
            Ok(mut dir) => {
                // Written as it is read (a part at a time); kept only if something changed.
                let mut changed = false;
                loop {
                    let mut node = match dir.next_blocking() {
                        Ok(Some(node)) => node,
                        Ok(None) => break,
                        Err(e) => {
                            // A damaged part: what was read before it is kept.
                            cuts.push(format!(
                                ": directory {e}; entries from there on are dropped"
                            ));
                            changed = true;
                            break;
                        }
                    };
                    let name = node.name.display().to_string();
                    if let Some(subtree) = node.subtree {
                        let mut below = Vec::new();
                        let new = self.tree(&subtree, &format!("{name}/"), &mut below, memo)?;
                        changed |= new != subtree;
                        node.subtree = Some(new);
                        cuts.extend(below);
                    }
                    if node.kind == NodeKind::File {
                        if let Some(first_missing) = node
                            .content
                            .iter()
                            .position(|b| !self.has(b, BlobType::Data))
                        {
                            let kept: u64 = node.content[..first_missing]
                                .iter()
                                .filter_map(|b| self.index.get(b))
                                .map(|l| u64::from(l.entry.plain_len))
                                .sum();
                            cuts.push(format!(
                                "{name}: blob {} is missing; truncated from {} to {kept} bytes",
                                node.content[first_missing], node.size
                            ));
                            node.content.truncate(first_missing);
                            node.size = kept;
                            changed = true;
                        }
                    }
                    writer.push(node, &mut store)?;
                }
                if changed {
                    writer.finish(&mut store)?.0
                } else {
                    // Unchanged parts re-encode to blobs the repository has (`save` skips
                    // those); the directory keeps its id.
                    *id
                }
            }
        };
        damage.extend(cuts.iter().map(|c| format!("{path}{c}")));
        memo.insert(*id, (repaired, cuts));
        Ok(repaired)
    }

    /// Stores an encoded tree blob (with `--dry-run`, only names it).
    fn save(&self, bytes: &[u8]) -> Result<BlobId> {
        if self.dry_run {
            return Ok(self.repo.keys.blob_id(bytes));
        }
        self.saver.save_now(BlobType::Tree, bytes)
    }
}
