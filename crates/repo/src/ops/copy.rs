//! `copy`: snapshots from one repository into another with its own keys, possibly on
//! another backend (a DR bucket in another region).
//!
//! Blob ids are keyed per repository, so every blob's id is recomputed with the destination's
//! key and every tree is rewritten with the new ids; blobs the destination already holds are
//! not stored again. When both repositories chunk alike (same sizes and chunker secret, see
//! `init --copy-chunker-params-from`), chunks are copied one to one; otherwise each file is
//! re-chunked with the destination's chunker so it deduplicates with the destination's own
//! backups. The destination side runs as a backup does: it announces itself with a marker,
//! writes packs and index files first and each snapshot last.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cairn_pack::{BlobId, BlobType};
use serde::Serialize;

use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::object::SnapshotId;
use crate::ops::backup::{BackupOptions, Saver};
use crate::ops::content::content_reader;
use crate::ops::progress::CancelToken;
use crate::snapshot::{resolve, SnapshotEntry, SnapshotFilter};
use crate::tree::{NodeKind, Splitter, TreeWriter};
use crate::Repository;

/// Which snapshots to copy. Deserializes from its JSON form ([`crate::ops::wire::CopyWire`]).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(from = "crate::ops::wire::CopyWire")]
pub struct CopyOptions {
    /// Only snapshots passing this filter (when `ids` is empty).
    pub filter: SnapshotFilter,
    /// These snapshots (ids, prefixes or `latest`).
    pub ids: Vec<String>,
    /// Cancellation.
    pub cancel: CancelToken,
}

/// What copy did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// (source id, destination id) of each snapshot copied.
    pub copied: Vec<(SnapshotId, SnapshotId)>,
    /// Source snapshots skipped because the destination already has a copy.
    pub skipped: Vec<SnapshotId>,
    /// True when files were re-chunked (the repositories chunk differently).
    pub rechunked: bool,
    /// Blobs read from the source.
    pub blobs_read: u64,
    /// Blobs stored in the destination.
    pub blobs_added: u64,
    /// Plaintext bytes stored in the destination.
    pub data_added: u64,
}

impl Repository {
    /// Copies snapshots of this repository into `dest`; see the module documentation.
    /// A snapshot is skipped when `dest` has one whose `original` (or id) is its id.
    pub async fn copy_snapshots(
        &self,
        dest: &Repository,
        options: &CopyOptions,
    ) -> Result<CopyReport> {
        let mut report = CopyReport::default();
        let sources = self.copy_sources(options).await?;
        let present: Vec<String> = dest
            .list_snapshots(&SnapshotFilter::default())
            .await?
            .into_iter()
            .map(|s| s.snapshot.original.unwrap_or_else(|| s.id.to_string()))
            .collect();
        let (skip, todo): (Vec<_>, Vec<_>) = sources
            .into_iter()
            .partition(|s| present.iter().any(|p| p == s.id.as_str()));
        report.skipped = skip.into_iter().map(|s| s.id).collect();
        if todo.is_empty() {
            return Ok(report);
        }
        report.rechunked = self.config.chunker != dest.config.chunker
            || self.keys.chunker_secret() != dest.keys.chunker_secret();
        let source_index = self.load_index().await?;
        let prepared = dest
            .prepare(&BackupOptions {
                cancel: options.cancel.clone(),
                ..Default::default()
            })
            .await?;
        let copier = Copier {
            blobs: ReadAhead::start(
                self.clone(),
                source_index,
                self.transfer_concurrency().max(2),
            ),
            saver: Arc::clone(&prepared.saver),
            dest_chunker: dest.chunker.clone(),
            splitter: dest.splitter(),
            rechunk: report.rechunked,
        };
        let roots = {
            let todo = todo.clone();
            tokio::task::spawn_blocking(move || {
                let mut memo = Memo::default();
                let result = todo
                    .iter()
                    .map(|s| copier.tree(&s.snapshot.tree, &mut memo))
                    .collect::<Result<Vec<BlobId>>>();
                copier.saver.wait_idle();
                let closed = copier.saver.close();
                result.and_then(|roots| closed.map(|_| (roots, memo.blobs_read)))
            })
            .await
            .map_err(RepoError::task("copy task"))?
        };
        // The uploader's outcome and the copy's own are reported together, the most telling
        // first (as for a backup).
        let (walk, done) = match roots {
            Ok(done) => (Ok(BlobId([0; 32])), Some(done)),
            Err(e) => (Err(e), None),
        };
        dest.finish_upload(prepared.uploader, &prepared.saver, walk)
            .await?;
        let (roots, blobs_read) = done.expect("a failed copy returned above");
        report.blobs_read = blobs_read;
        let stats = &prepared.saver.stats;
        report.blobs_added = stats.data_blobs.load(std::sync::atomic::Ordering::Relaxed)
            + stats.tree_blobs.load(std::sync::atomic::Ordering::Relaxed);
        report.data_added = stats.data_added.load(std::sync::atomic::Ordering::Relaxed);
        for (source, root) in todo.iter().zip(roots) {
            let id = dest
                .write_copied(source, root, &prepared.marker, &prepared.index)
                .await?;
            report.copied.push((source.id.clone(), id));
        }
        prepared.marker.release().await?;
        Ok(report)
    }

    /// The snapshots `options` chooses: by id or prefix (each once), else by filter.
    async fn copy_sources(&self, options: &CopyOptions) -> Result<Vec<SnapshotEntry>> {
        if options.ids.is_empty() {
            return self.list_snapshots(&options.filter).await;
        }
        let all = self.list_snapshots(&SnapshotFilter::default()).await?;
        let mut chosen: Vec<SnapshotEntry> = Vec::new();
        for spec in &options.ids {
            let entry = resolve(&all, spec)?;
            if !chosen.iter().any(|c| c.id == entry.id) {
                chosen.push(entry.clone());
            }
        }
        Ok(chosen)
    }

    /// Writes the copy of `source` (whose tree is now `root` here) and protects it as a
    /// backup protects its snapshot; withdraws it if that fails. Returns its id.
    async fn write_copied(
        &self,
        source: &SnapshotEntry,
        root: BlobId,
        marker: &crate::lock::LockGuard,
        start_index: &crate::index::Index,
    ) -> Result<SnapshotId> {
        let mut snapshot = source.snapshot.clone();
        snapshot.tree = root;
        snapshot.parent = None;
        snapshot.original = Some(
            source
                .snapshot
                .original
                .clone()
                .unwrap_or_else(|| source.id.to_string()),
        );
        self.write_protected_snapshot(marker, start_index, &snapshot)
            .await
    }
}

/// Source id → destination id of what was copied in this run, so shared subtrees and
/// repeated chunks are read once.
#[derive(Default)]
struct Memo {
    trees: HashMap<BlobId, BlobId>,
    data: HashMap<BlobId, BlobId>,
    blobs_read: u64,
}

struct Copier {
    blobs: ReadAhead,
    saver: Arc<Saver>,
    dest_chunker: cairn_chunker::Chunker,
    /// Cuts large directories with the destination's key (parts are re-cut as they copy).
    splitter: Splitter,
    rechunk: bool,
}

impl Copier {
    /// Copies a tree and everything below it; returns its id in the destination.
    fn tree(&self, id: &BlobId, memo: &mut Memo) -> Result<BlobId> {
        if let Some(done) = memo.trees.get(id) {
            return Ok(*done);
        }
        self.saver.check()?;
        memo.blobs_read += 1;
        // A directory streams through, a part at a time, into the destination's writer.
        let mut dir = self.blobs.read_dir(id)?;
        let mut writer = TreeWriter::new(&self.splitter);
        let mut store = |bytes: &[u8]| self.saver.save_now(BlobType::Tree, bytes);
        while let Some(mut node) = dir.next_blocking()? {
            if let Some(subtree) = node.subtree {
                node.subtree = Some(self.tree(&subtree, memo)?);
            }
            if node.kind == NodeKind::File && !node.content.is_empty() {
                node.content = if self.rechunk {
                    self.rechunk_file(&node.content, memo)?
                } else {
                    self.blobs.prefetch(
                        node.content
                            .iter()
                            .filter(|blob| !memo.data.contains_key(blob))
                            .map(|blob| (BlobType::Data, *blob)),
                    );
                    node.content
                        .iter()
                        .map(|blob| self.data(blob, memo))
                        .collect::<Result<_>>()?
                };
            }
            writer.push(node, &mut store)?;
        }
        let (copied, _) = writer.finish(&mut store)?;
        memo.trees.insert(*id, copied);
        Ok(copied)
    }

    fn data(&self, id: &BlobId, memo: &mut Memo) -> Result<BlobId> {
        if let Some(done) = memo.data.get(id) {
            return Ok(*done);
        }
        memo.blobs_read += 1;
        let plain = self.blobs.read(BlobType::Data, id)?;
        let copied = self.saver.save_chunk(Bytes::from(plain))?;
        memo.data.insert(*id, copied);
        Ok(copied)
    }

    fn rechunk_file(&self, content: &[BlobId], memo: &mut Memo) -> Result<Vec<BlobId>> {
        let failure = std::cell::RefCell::new(None);
        let reader = content_reader(&self.blobs, content, &failure);
        let mut ids = Vec::new();
        for chunk in self.dest_chunker.stream(reader) {
            let chunk = chunk.map_err(|e| {
                failure.borrow_mut().take().unwrap_or_else(|| {
                    RepoError::io("copy source", std::io::Error::other(e.to_string()))
                })
            })?;
            ids.push(self.saver.save_chunk(chunk.data)?);
        }
        memo.blobs_read += content.len() as u64;
        Ok(ids)
    }
}
