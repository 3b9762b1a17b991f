//! Importing snapshots from a restic repository (`cairn copy --from-repo` a restic
//! repository): each chosen snapshot keeps its time, host, user, paths, tags and excludes,
//! and its trees keep every node's metadata; file content is read from restic's blobs and
//! re-chunked with this repository's chunker, so it deduplicates with cairn's own backups of
//! the same data. A snapshot already imported (a snapshot here whose `original` is its restic
//! id) is skipped, so importing again copies only what is new.
//!
//! The walk runs on a blocking thread (the saver and the chunker are synchronous); restic's
//! blobs are fetched on the runtime, a few ahead of the chunker, through a bounded channel.

use std::collections::HashMap;
use std::sync::Arc;

use cairn_pack::BlobId;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use crate::error::{RepoError, Result};
use crate::object::SnapshotId;
use crate::ops::backup::{BackupOptions, Saver};
use crate::ops::content::BlobChain;
use crate::ops::copy::{CopyOptions, CopyReport};
use crate::restic::{ResticEntry, ResticId, ResticRepo};
use crate::snapshot::{Snapshot, SnapshotFilter};
use crate::tree::{NodeKind, Splitter, TreeWriter};
use crate::Repository;

/// restic blobs fetched ahead of the chunker (each at most a restic chunk, 8 MiB).
const BLOBS_AHEAD: usize = 4;

/// The import of one restic snapshot, as reported.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The restic snapshot's id.
    pub source: String,
    /// The new snapshot here.
    pub snapshot: SnapshotId,
}

/// What an import did.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// Snapshots imported.
    pub imported: Vec<Imported>,
    /// restic snapshot ids skipped: imported before.
    pub skipped: Vec<String>,
    /// As a copy reports them: blobs read from restic, blobs and bytes added here.
    pub totals: CopyReport,
}

/// The cairn snapshot for a restic one (its tree filled in by the import).
fn converted(entry: &ResticEntry, tree: BlobId) -> Snapshot {
    let restic = &entry.snapshot;
    Snapshot {
        time: restic.time,
        parent: None,
        tree,
        paths: restic.paths.clone(),
        hostname: restic.hostname.clone(),
        username: restic.username.clone(),
        uid: restic.uid,
        gid: restic.gid,
        excludes: restic.excludes.clone(),
        tags: restic.tags.clone(),
        program_version: format!("cairn {} (imported from restic)", env!("CARGO_PKG_VERSION")),
        summary: None,
        incomplete: false,
        original: Some(entry.id.clone()),
    }
}

/// The snapshots `options` chooses among `all`: by id prefix (or `latest`), else by filter.
fn chosen(all: Vec<ResticEntry>, options: &CopyOptions) -> Result<Vec<ResticEntry>> {
    let matches = |entry: &ResticEntry, filter: &SnapshotFilter| {
        filter.matches(&converted(entry, BlobId([0; 32])))
    };
    if options.ids.is_empty() {
        return Ok(all
            .into_iter()
            .filter(|e| matches(e, &options.filter))
            .collect());
    }
    let mut out: Vec<ResticEntry> = Vec::new();
    for spec in &options.ids {
        let found: Vec<&ResticEntry> = if spec == "latest" {
            all.last().into_iter().collect()
        } else {
            all.iter()
                .filter(|e| e.id.starts_with(spec.as_str()))
                .collect()
        };
        let entry = match found.as_slice() {
            [one] => *one,
            [] => {
                return Err(RepoError::InvalidInput(format!(
                    "no restic snapshot matches {spec:?}"
                )))
            }
            _ => {
                return Err(RepoError::InvalidInput(format!(
                    "{spec:?} matches several restic snapshots"
                )))
            }
        };
        if !out.iter().any(|e| e.id == entry.id) {
            out.push(entry.clone());
        }
    }
    Ok(out)
}

impl Repository {
    /// Imports snapshots of the restic repository `source` into this one; see the module
    /// documentation.
    ///
    /// # Errors
    /// Errors reading restic's data name the object (`Corrupt` for damaged or hostile data,
    /// `MissingObject` for blobs its index lacks); nothing is written for a snapshot whose
    /// import failed, and the snapshots imported before it stay.
    pub async fn import_restic(
        &self,
        source: Arc<ResticRepo>,
        options: &CopyOptions,
    ) -> Result<ImportReport> {
        let mut report = ImportReport::default();
        let present: Vec<String> = self
            .list_snapshots(&SnapshotFilter::default())
            .await?
            .into_iter()
            .filter_map(|s| s.snapshot.original)
            .collect();
        let (skip, todo): (Vec<_>, Vec<_>) = chosen(source.snapshots().await?, options)?
            .into_iter()
            .partition(|s| present.contains(&s.id));
        report.skipped = skip.into_iter().map(|s| s.id).collect();
        report.totals.rechunked = true;
        if todo.is_empty() {
            return Ok(report);
        }
        let prepared = self
            .prepare(&BackupOptions {
                cancel: options.cancel.clone(),
                ..Default::default()
            })
            .await?;
        let importer = Importer {
            source,
            runtime: Handle::current(),
            saver: Arc::clone(&prepared.saver),
            chunker: self.chunker.clone(),
            splitter: self.splitter(),
        };
        let roots = {
            let todo = todo.clone();
            tokio::task::spawn_blocking(move || {
                let mut memo = Memo::default();
                let result = todo
                    .iter()
                    .map(|s| importer.tree(&s.snapshot.tree, &mut memo))
                    .collect::<Result<Vec<BlobId>>>();
                importer.saver.wait_idle();
                let closed = importer.saver.close();
                result.and_then(|roots| closed.map(|_| (roots, memo.blobs_read)))
            })
            .await
            .map_err(RepoError::task("import task"))?
        };
        let (walk, done) = match roots {
            Ok(done) => (Ok(BlobId([0; 32])), Some(done)),
            Err(e) => (Err(e), None),
        };
        self.finish_upload(prepared.uploader, &prepared.saver, walk)
            .await?;
        let (roots, blobs_read) = done.expect("a failed import returned above");
        let stats = &prepared.saver.stats;
        report.totals.blobs_read = blobs_read;
        report.totals.blobs_added = stats.data_blobs.load(std::sync::atomic::Ordering::Relaxed)
            + stats.tree_blobs.load(std::sync::atomic::Ordering::Relaxed);
        report.totals.data_added = stats.data_added.load(std::sync::atomic::Ordering::Relaxed);
        for (entry, root) in todo.iter().zip(roots) {
            let snapshot = converted(entry, root);
            let id = self
                .write_protected_snapshot(&prepared.marker, &prepared.index, &snapshot)
                .await?;
            report.imported.push(Imported {
                source: entry.id.clone(),
                snapshot: id,
            });
        }
        prepared.marker.release().await?;
        Ok(report)
    }
}

/// What this run imported already: restic trees, and files by their restic content (the
/// same file in every snapshot of a history is read and re-chunked once).
#[derive(Default)]
struct Memo {
    trees: HashMap<ResticId, BlobId>,
    files: HashMap<[u8; 32], Vec<BlobId>>,
    blobs_read: u64,
}

struct Importer {
    source: Arc<ResticRepo>,
    runtime: Handle,
    saver: Arc<Saver>,
    chunker: cairn_chunker::Chunker,
    splitter: Splitter,
}

impl Importer {
    /// Imports restic tree `id` and everything below it; returns its id here.
    fn tree(&self, id: &ResticId, memo: &mut Memo) -> Result<BlobId> {
        if let Some(done) = memo.trees.get(id) {
            return Ok(*done);
        }
        self.saver.check()?;
        let object = format!("restic tree {}", hex::encode(id));
        let mut tree = self.runtime.block_on(self.source.read_tree(id))?;
        memo.blobs_read += 1;
        // restic sorts by name as Go strings (bytes), as cairn does; a hostile tree may not.
        tree.nodes
            .sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        let mut writer = TreeWriter::new(&self.splitter);
        let mut store = |bytes: &[u8]| self.saver.save_now(cairn_pack::BlobType::Tree, bytes);
        for restic_node in &tree.nodes {
            let Some(mut node) = restic_node.to_node(&object)? else {
                continue;
            };
            match node.kind {
                NodeKind::Dir => {
                    let subtree = restic_node.subtree.ok_or_else(|| {
                        RepoError::corrupt(
                            &object,
                            format!("directory {:?} has no subtree", restic_node.name),
                        )
                    })?;
                    node.subtree = Some(self.tree(&subtree, memo)?);
                }
                NodeKind::File => node.content = self.file(&restic_node.content, memo)?,
                _ => {}
            }
            writer.push(node, &mut store).map_err(|e| match e {
                RepoError::InvalidInput(reason) => RepoError::corrupt(&object, reason),
                other => other,
            })?;
        }
        let (copied, _) = writer.finish(&mut store)?;
        memo.trees.insert(*id, copied);
        Ok(copied)
    }

    /// Re-chunks a file from its restic blobs; returns its chunks here.
    fn file(&self, content: &[ResticId], memo: &mut Memo) -> Result<Vec<BlobId>> {
        if content.is_empty() {
            return Ok(Vec::new());
        }
        let key: [u8; 32] = {
            let mut hasher = Sha256::new();
            for id in content {
                hasher.update(id);
            }
            hasher.finalize().into()
        };
        if let Some(done) = memo.files.get(&key) {
            return Ok(done.clone());
        }
        let (sender, receiver) = mpsc::channel(BLOBS_AHEAD);
        let (source, ids) = (Arc::clone(&self.source), content.to_vec());
        self.runtime.spawn(async move {
            let mut blobs = futures::stream::iter(ids)
                .map(|id| {
                    let source = Arc::clone(&source);
                    async move { source.read_blob(&id, false).await }
                })
                .buffered(BLOBS_AHEAD);
            while let Some(blob) = blobs.next().await {
                let failed = blob.is_err();
                if sender.send(blob).await.is_err() || failed {
                    break;
                }
            }
        });
        let failure = std::cell::RefCell::new(None);
        let mut receiver = receiver;
        let reader = BlobChain::new(move || receiver.blocking_recv(), &failure);
        let mut ids = Vec::new();
        for chunk in self.chunker.stream(reader) {
            let chunk = chunk.map_err(|e| {
                failure.borrow_mut().take().unwrap_or_else(|| {
                    RepoError::io("restic source", std::io::Error::other(e.to_string()))
                })
            })?;
            ids.push(self.saver.save_chunk(chunk.data)?);
        }
        memo.blobs_read += content.len() as u64;
        memo.files.insert(key, ids.clone());
        Ok(ids)
    }
}
