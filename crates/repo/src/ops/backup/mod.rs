//! Backup of directory trees and byte streams.
//!
//! Data flows one way: walker (or stream) → chunker → id + dedup → encode (rayon) → packer →
//! uploader (async, bounded) → index files; the snapshot is written last, only after every
//! pack it needs is stored and indexed. An interrupted backup leaves packs and index files
//! that later backups reuse, and no snapshot.

pub mod budget;
mod built;
mod excludes;
mod metadata;
mod parent_dir;
mod protect;
mod saver;
mod seen;
mod sparse;
mod upload;
mod walker;

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use cairn_pack::{BlobId, BlobType};
use chrono::{DateTime, FixedOffset, Local, SecondsFormat};

use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::host::{hostname, username};
use crate::index::Index;
use crate::lock::LockGuard;
use crate::object::SnapshotId;
use crate::ops::progress::{CancelToken, Counters, ProgressFn, Reporter};
use crate::snapshot::{Snapshot, SnapshotFilter, SnapshotSummary};
use crate::tree::{Name, Node, NodeKind, Tree};
use crate::Repository;

pub use built::StoreBlob;
use excludes::Excludes;
pub(crate) use saver::Saver;
use walker::{arrange_targets, spawn_scanner, Walker};

/// Which snapshot to compare against, to skip reading unchanged files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ParentSelection {
    /// The latest snapshot with the same host name and paths.
    #[default]
    Latest,
    /// No parent: read everything.
    None,
    /// This snapshot (id, prefix or `latest`).
    Id(String),
}

/// How to back up. Deserializes from its JSON form ([`crate::ops::wire::BackupWire`]).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(try_from = "crate::ops::wire::BackupWire")]
pub struct BackupOptions {
    /// Host name to record (default: this machine's).
    pub hostname: Option<String>,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Time to record (default: now).
    pub time: Option<DateTime<FixedOffset>>,
    /// Parent snapshot choice.
    pub parent: ParentSelection,
    /// Read every file even if the parent says it is unchanged (and record no parent).
    pub force: bool,
    /// Exclude patterns (see docs: restic's semantics).
    pub excludes: Vec<String>,
    /// Files of exclude patterns.
    pub exclude_files: Vec<PathBuf>,
    /// Skip directories holding a valid `CACHEDIR.TAG`.
    pub exclude_caches: bool,
    /// Skip directories holding a file of one of these names.
    pub exclude_if_present: Vec<String>,
    /// Do not descend into other file systems.
    pub one_file_system: bool,
    /// Bytes the backup may hold in flight (chunks being read and encoded, packs being
    /// filled and uploaded); `None` is [`budget::DEFAULT_MEMORY_BUDGET`]. It sets how many
    /// files are read at once (see [`budget::threads_within`]); the process's total adds the
    /// key derivation at open and the allocator's slack.
    pub memory_budget: Option<u64>,
    /// Progress callback (about once a second).
    pub progress: Option<ProgressFn>,
    /// Cancellation: a cancelled backup stops, uploads and indexes what it packed, and writes
    /// no snapshot.
    pub cancel: CancelToken,
}

/// An item that could not be backed up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupIssue {
    /// The path.
    pub path: PathBuf,
    /// `"scan"` (listing, metadata) or `"archival"` (reading content), as restic says.
    pub during: &'static str,
    /// What went wrong.
    pub message: String,
}

/// What a backup produced.
#[derive(Clone, Debug)]
pub struct BackupReport {
    /// Id of the new snapshot.
    pub snapshot_id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Items skipped because they could not be read (the snapshot is then incomplete).
    pub issues: Vec<BackupIssue>,
    /// Informational notes (sockets skipped, file systems not crossed, ...).
    pub notes: Vec<String>,
}

impl BackupReport {
    /// [`crate::Outcome::Incomplete`] when some items could not be read (the snapshot is
    /// written and marked incomplete), else success.
    pub fn outcome(&self) -> crate::Outcome {
        if self.issues.is_empty() && !self.snapshot.incomplete {
            crate::Outcome::Success
        } else {
            crate::Outcome::Incomplete
        }
    }
}

pub(crate) struct Prepared {
    /// This backup's marker: held from before the index is loaded until the snapshot is
    /// safe from concurrent prunes.
    pub(crate) marker: LockGuard,
    /// The index the backup deduplicates against.
    pub(crate) index: Arc<Index>,
    pub(crate) saver: Arc<Saver>,
    pub(crate) uploader: tokio::task::JoinHandle<Result<upload::UploadReport>>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) start: DateTime<FixedOffset>,
}

impl Repository {
    pub(crate) async fn prepare(&self, options: &BackupOptions) -> Result<Prepared> {
        // The marker goes first: a prune that does not see it has already rewritten the
        // index this backup loads next (docs/format.md#locks-and-concurrency).
        let marker = self.lock_backup().await?;
        let index = self.load_index().await?;
        // One finished pack may wait while others upload: memory for packs stays at the two
        // being filled, one queued and the uploads in flight.
        let (sender, receiver) = tokio::sync::mpsc::channel(1);
        let uploader = tokio::spawn(upload::run_uploader(
            self.clone(),
            marker.confirmer(),
            receiver,
        ));
        let threads = budget::threads_within(
            options
                .memory_budget
                .unwrap_or(budget::DEFAULT_MEMORY_BUDGET),
            rayon::current_num_threads(),
            self.chunker.params().max(),
            self.config.pack_size as usize,
            self.transfer_concurrency(),
        );
        let saver = Saver::new(
            Arc::clone(&self.keys),
            self.encoder,
            Arc::clone(&index),
            self.config.pack_size as usize,
            sender,
            options.cancel.clone(),
            threads,
        )?;
        Ok(Prepared {
            marker,
            index,
            saver,
            uploader,
            counters: Arc::new(Counters::default()),
            start: Local::now().fixed_offset(),
        })
    }

    async fn resolve_parent(
        &self,
        options: &BackupOptions,
        hostname: &str,
        paths: &[String],
    ) -> Result<Option<(SnapshotId, BlobId)>> {
        if options.force {
            return Ok(None);
        }
        match &options.parent {
            ParentSelection::None => Ok(None),
            ParentSelection::Id(spec) => {
                let found = self.find_snapshot(spec, &SnapshotFilter::default()).await?;
                Ok(Some((found.id, found.snapshot.tree)))
            }
            ParentSelection::Latest => {
                let filter = SnapshotFilter {
                    hosts: vec![hostname.to_string()],
                    ..Default::default()
                };
                let all = self.list_snapshots(&filter).await?;
                Ok(all
                    .into_iter()
                    .rfind(|s| s.snapshot.has_paths(paths))
                    .map(|s| (s.id, s.snapshot.tree)))
            }
        }
    }

    /// Backs up files and directories into a new snapshot.
    ///
    /// Unreadable or vanished items are skipped and listed in [`BackupReport::issues`]; the
    /// snapshot is still written, marked `incomplete`.
    ///
    /// # Errors
    /// Storage failures, repository damage, cancellation, invalid paths or patterns.
    pub async fn backup(&self, paths: &[PathBuf], options: BackupOptions) -> Result<BackupReport> {
        let (target, snapshot_paths) = arrange_targets(paths)?;
        // The progress scanner walks the same tree with its own copy of the rules.
        let (scan_excludes, excludes) = (Excludes::of(&options)?, Excludes::of(&options)?);
        let host = options.hostname.clone().unwrap_or_else(hostname);
        let parent = self
            .resolve_parent(&options, &host, &snapshot_paths)
            .await?;
        let prepared = self.prepare(&options).await?;
        let parent_tree = parent.as_ref().map(|(_, tree)| *tree);
        let parents = self.parent_trees(&prepared.index, parent_tree);
        let walker = Arc::new(Walker::new(
            Arc::clone(&prepared.saver),
            self.clone(),
            Arc::clone(&prepared.index),
            parents,
            Arc::clone(&prepared.counters),
            excludes,
            options.one_file_system,
            !options.force,
        ));
        let scan_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let scanner = options.progress.is_some().then(|| {
            spawn_scanner(
                paths.to_vec(),
                scan_excludes,
                Arc::clone(&prepared.counters),
                Arc::clone(&scan_stop),
            )
        });
        let reporter = Reporter::start(
            options.progress.clone(),
            Arc::clone(&prepared.counters),
            Duration::from_secs(1),
        );
        let walk = {
            let walker = Arc::clone(&walker);
            tokio::task::spawn_blocking(move || {
                // The walk runs on a pool of the budget's size (files are read by its
                // threads), not on the global one.
                let result = walker.saver.walk_pool().and_then(|pool| {
                    pool.install(|| walker.save_root(&target, parent_tree.as_ref()))
                });
                walker.saver.wait_idle();
                let closed = walker.saver.close();
                result.and_then(|root| closed.map(|_| root))
            })
        };
        let root = walk.await.map_err(RepoError::task("backup task"));
        scan_stop.store(true, Ordering::Relaxed);
        if let Some(scanner) = scanner {
            let _ = scanner.join();
        }
        drop(reporter);
        let counts = walker.stats.counts();
        let issues = std::mem::take(&mut *walker.issues.lock().expect("issues lock"));
        let notes = std::mem::take(&mut *walker.notes.lock().expect("notes lock"));
        let root = root.and_then(|r| r);
        let parent = parent.map(|(id, _)| id);
        self.finish_backup(
            prepared,
            &options,
            host,
            snapshot_paths,
            root,
            parent,
            counts,
            issues,
            notes,
        )
        .await
    }

    /// Reads the parent snapshot's trees for the walk, starting at its root at once (while
    /// the walk opens its first directories).
    fn parent_trees(&self, index: &Arc<Index>, root: Option<BlobId>) -> ReadAhead {
        let parents = ReadAhead::start(self.clone(), Arc::clone(index), self.reads_in_flight());
        if let Some(root) = root {
            parents.prefetch([(BlobType::Tree, root)]);
        }
        parents
    }

    /// Backs up a byte stream as one file named `filename` at the snapshot's root, in
    /// constant memory (`pg_dump db | cairn backup --stdin --stdin-filename db.sql`).
    /// Leading slashes of `filename` are ignored.
    pub async fn backup_stream<R: Read + Send + 'static>(
        &self,
        reader: R,
        filename: &str,
        options: BackupOptions,
    ) -> Result<BackupReport> {
        // restic (and K8up, which passes `/<host>-<container>.sql`) accept a leading slash:
        // the file still sits at the root.
        let name = stream_name(filename)?;
        let filename = filename.trim_start_matches('/');
        let host = options.hostname.clone().unwrap_or_else(hostname);
        let snapshot_paths = vec![format!("/{filename}")];
        let parent = self
            .resolve_parent(&options, &host, &snapshot_paths)
            .await?;
        let prepared = self.prepare(&options).await?;
        let reporter = Reporter::start(
            options.progress.clone(),
            Arc::clone(&prepared.counters),
            Duration::from_secs(1),
        );
        let saver = Arc::clone(&prepared.saver);
        let counters = Arc::clone(&prepared.counters);
        let chunker = self.chunker.clone();
        let start = prepared.start;
        let work = tokio::task::spawn_blocking(move || -> Result<(BlobId, u64)> {
            let mut content = Vec::new();
            let mut size = 0u64;
            let result = (|| {
                for chunk in chunker.stream(reader) {
                    let chunk = chunk.map_err(|e| {
                        RepoError::io("<stdin>", std::io::Error::other(e.to_string()))
                    })?;
                    size += chunk.data.len() as u64;
                    counters
                        .bytes_done
                        .fetch_add(chunk.data.len() as u64, Ordering::Relaxed);
                    content.push(saver.save_chunk(chunk.data)?);
                }
                counters.files_done.fetch_add(1, Ordering::Relaxed);
                let node = stream_node(name, start, size, content);
                saver.save_now(BlobType::Tree, &Tree { nodes: vec![node] }.encode()?)
            })();
            saver.wait_idle();
            let closed = saver.close();
            result.and_then(|root| closed.map(|_| (root, size)))
        });
        let outcome = work.await.map_err(RepoError::task("backup task"));
        drop(reporter);
        let (root, size) = match outcome {
            Ok(Ok((root, size))) => (Ok(root), size),
            Ok(Err(e)) => (Err(e), 0),
            Err(e) => (Err(e), 0),
        };
        let counts = FileCounts {
            files_new: u64::from(parent.is_none()),
            files_changed: u64::from(parent.is_some()),
            total_files: 1,
            total_bytes: size,
            ..FileCounts::default()
        };
        let parent = parent.map(|(id, _)| id);
        self.finish_backup(
            prepared,
            &options,
            host,
            snapshot_paths,
            root,
            parent,
            counts,
            Vec::new(),
            Vec::new(),
        )
        .await
    }

    /// Waits for the uploads, then writes the snapshot (last, so it only ever refers to
    /// stored and indexed data).
    #[allow(clippy::too_many_arguments)]
    async fn finish_backup(
        &self,
        prepared: Prepared,
        options: &BackupOptions,
        hostname: String,
        paths: Vec<String>,
        root: Result<BlobId>,
        parent: Option<SnapshotId>,
        counts: FileCounts,
        issues: Vec<BackupIssue>,
        notes: Vec<String>,
    ) -> Result<BackupReport> {
        let root = self
            .finish_upload(prepared.uploader, &prepared.saver, root)
            .await?;
        let mut snapshot = self.new_snapshot(
            options,
            hostname,
            paths,
            root,
            prepared.start,
            parent.map(String::from),
        );
        snapshot.incomplete = !issues.is_empty();
        snapshot.summary = Some(summary(&prepared.saver, prepared.start, counts));
        let snapshot_id = self
            .write_protected_snapshot(&prepared.marker, &prepared.index, &snapshot)
            .await?;
        prepared.marker.release().await?;
        Ok(BackupReport {
            snapshot_id,
            snapshot,
            issues,
            notes,
        })
    }

    /// Waits for the uploader and picks the most telling error.
    pub(crate) async fn finish_upload(
        &self,
        uploader: tokio::task::JoinHandle<Result<upload::UploadReport>>,
        saver: &Saver,
        walk: Result<BlobId>,
    ) -> Result<BlobId> {
        let uploaded = uploader
            .await
            .map_err(RepoError::task("upload task"))
            .and_then(|r| r);
        // A storage failure is the root cause of whatever the pipeline reported after it
        // ("the uploader stopped"), so it wins; then the first failure inside the pipeline;
        // then the walk's own error (including cancellation).
        match (walk, uploaded, saver.take_failure()) {
            (_, Err(upload_error), _) => Err(upload_error),
            (_, Ok(_), Some(first)) => Err(first),
            (Err(walk_error), Ok(_), None) => Err(walk_error),
            (Ok(root), Ok(_), None) => Ok(root),
        }
    }

    fn new_snapshot(
        &self,
        options: &BackupOptions,
        hostname: String,
        paths: Vec<String>,
        tree: BlobId,
        start: DateTime<FixedOffset>,
        parent: Option<String>,
    ) -> Snapshot {
        let mut tags = options.tags.clone();
        tags.sort();
        tags.dedup();
        Snapshot {
            time: options.time.unwrap_or(start),
            parent,
            tree,
            paths,
            hostname,
            username: username(),
            uid: nix::unistd::getuid().as_raw(),
            gid: nix::unistd::getgid().as_raw(),
            excludes: options.excludes.clone(),
            tags,
            program_version: format!("cairn {}", env!("CARGO_PKG_VERSION")),
            summary: None,
            incomplete: false,
            original: None,
        }
    }
}

/// File and directory counts for a summary.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FileCounts {
    pub(crate) files_new: u64,
    pub(crate) files_changed: u64,
    pub(crate) files_unmodified: u64,
    pub(crate) dirs_new: u64,
    pub(crate) dirs_changed: u64,
    pub(crate) dirs_unmodified: u64,
    pub(crate) total_files: u64,
    pub(crate) total_bytes: u64,
}

fn summary(saver: &Saver, start: DateTime<FixedOffset>, counts: FileCounts) -> SnapshotSummary {
    let end = Local::now().fixed_offset();
    let stats = &saver.stats;
    SnapshotSummary {
        backup_start: start.to_rfc3339_opts(SecondsFormat::Nanos, true),
        backup_end: end.to_rfc3339_opts(SecondsFormat::Nanos, true),
        files_new: counts.files_new,
        files_changed: counts.files_changed,
        files_unmodified: counts.files_unmodified,
        dirs_new: counts.dirs_new,
        dirs_changed: counts.dirs_changed,
        dirs_unmodified: counts.dirs_unmodified,
        data_blobs: stats.data_blobs.load(Ordering::Relaxed),
        tree_blobs: stats.tree_blobs.load(Ordering::Relaxed),
        data_added: stats.data_added.load(Ordering::Relaxed),
        data_added_packed: stats.data_added_packed.load(Ordering::Relaxed),
        total_files_processed: counts.total_files,
        total_bytes_processed: counts.total_bytes,
    }
}
/// The file name a stream is stored under: one name, leading slashes ignored.
fn stream_name(given: &str) -> Result<Name> {
    let filename = given.trim_start_matches('/');
    if filename.is_empty()
        || filename.contains('/')
        || filename == "."
        || filename == ".."
        || filename.contains('\0')
    {
        return Err(RepoError::InvalidInput(format!(
            "invalid stream file name {given:?}: expected one file name, like db.sql"
        )));
    }
    Ok(Name(filename.as_bytes().to_vec()))
}

/// The node of a stream backed up as a file: owned by this process's user, stamped with
/// the backup's start.
fn stream_node(name: Name, start: DateTime<FixedOffset>, size: u64, content: Vec<BlobId>) -> Node {
    let now = start.timestamp_nanos_opt().unwrap_or(0);
    Node {
        name,
        kind: NodeKind::File,
        mode: 0o100644,
        uid: nix::unistd::getuid().as_raw(),
        gid: nix::unistd::getgid().as_raw(),
        user: username(),
        group: String::new(),
        mtime_ns: now,
        ctime_ns: now,
        size,
        inode: 0,
        device: 0,
        links: 1,
        rdev: None,
        link_target: None,
        content,
        subtree: None,
        xattrs: Vec::new(),
    }
}
