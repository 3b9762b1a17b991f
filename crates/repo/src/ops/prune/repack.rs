//! Repacking: copy the used blobs of mostly-unused packs into new packs. Blobs are copied
//! sealed (a blob's encryption does not depend on its pack), after authenticating each one,
//! so damage is never propagated and nothing is re-compressed.

use std::sync::Arc;

use cairn_pack::{EncodedBlob, PackId, PackWriter};
use futures::StreamExt;
use object_store::PutPayload;

use super::{Marks, PruneReport};
use crate::error::{RepoError, Result};
use crate::index::{Index, IndexPack};
use crate::Repository;

impl Repository {
    /// Copies the used blobs of `packs` into new packs and stores them; returns their index
    /// entries. Calls `check_lock` before each upload.
    pub(super) async fn repack(
        &self,
        index: &Index,
        marks: &Marks,
        packs: &[PackId],
        lock: Option<&crate::lock::LockGuard>,
        report: &mut PruneReport,
    ) -> Result<Vec<IndexPack>> {
        if packs.is_empty() {
            return Ok(Vec::new());
        }
        // The used entries of each pack, in pack order.
        let wanted: std::collections::HashSet<PackId> = packs.iter().copied().collect();
        let mut entries: std::collections::HashMap<PackId, Vec<cairn_pack::PackEntry>> =
            std::collections::HashMap::new();
        index.scan(|position, location| {
            if wanted.contains(&location.pack) && marks.is_used(position) {
                entries
                    .entry(location.pack)
                    .or_default()
                    .push(location.entry);
            }
        })?;
        let mut writer =
            PackWriter::new(self.config.pack_size as usize).map_err(|source| RepoError::Pack {
                object: "new pack".into(),
                source,
            })?;
        let mut written = Vec::new();
        let concurrency = self.transfer_concurrency().max(2);
        let jobs: Vec<(PackId, Vec<cairn_pack::PackEntry>)> = packs
            .iter()
            .map(|pack| {
                let mut pack_entries = entries.remove(pack).unwrap_or_default();
                pack_entries.sort_by_key(|e| e.offset);
                (*pack, pack_entries)
            })
            .collect();
        // Futures built up front: a closure inside the stream makes the whole prune future
        // fail rustc's `Send` proof (higher-ranked lifetimes).
        let reads: Vec<_> = jobs
            .into_iter()
            .map(|(pack, pack_entries)| read_used_blobs(self.clone(), pack, pack_entries))
            .collect();
        let mut reads = futures::stream::iter(reads).buffered(concurrency);
        while let Some(blobs) = reads.next().await {
            for blob in blobs? {
                writer.add(blob).map_err(|source| RepoError::Pack {
                    object: "new pack".into(),
                    source,
                })?;
                if writer.is_full() {
                    let full = std::mem::replace(
                        &mut writer,
                        PackWriter::new(self.config.pack_size as usize).map_err(|source| {
                            RepoError::Pack {
                                object: "new pack".into(),
                                source,
                            }
                        })?,
                    );
                    super::check_lock(lock)?;
                    written.push(self.store_pack(full, report).await?);
                }
            }
        }
        if !writer.is_empty() {
            super::check_lock(lock)?;
            written.push(self.store_pack(writer, report).await?);
        }
        Ok(written)
    }

    async fn store_pack(&self, writer: PackWriter, report: &mut PruneReport) -> Result<IndexPack> {
        let finished = writer
            .finish(&self.keys)
            .map_err(|source| RepoError::Pack {
                object: "new pack".into(),
                source,
            })?;
        let payload: PutPayload = finished.parts.into_iter().collect();
        self.put_pack(&finished.id, payload).await?;
        report.packs_written += 1;
        report.bytes_written += finished.len;
        Ok(IndexPack {
            id: finished.id,
            entries: finished.entries,
        })
    }
}

/// Reads the `entries` of `pack` through the blob reader and returns them as sealed blobs,
/// each authenticated (decoded) first, in pack order. Owns its repository handle so the
/// future is `'static` (see the note in `repack`).
async fn read_used_blobs(
    repo: Repository,
    pack: PackId,
    entries: Vec<cairn_pack::PackEntry>,
) -> Result<Vec<EncodedBlob>> {
    let read = Arc::new(std::sync::Mutex::new(Vec::with_capacity(entries.len())));
    let sink = Arc::clone(&read);
    let wanted = entries.into_iter().map(|entry| (entry, ())).collect();
    repo.read_pack_blobs(pack, wanted, move |blob| {
        blob.plain?;
        let entry = blob.entry;
        let encoded = EncodedBlob {
            blob_type: entry.blob_type,
            id: entry.id,
            compression: entry.compression,
            plain_len: entry.plain_len,
            sealed: blob.sealed,
        };
        sink.lock()
            .expect("repack blobs lock")
            .push((entry.offset, encoded));
        Ok(())
    })
    .await?;
    let mut blobs = std::mem::take(&mut *read.lock().expect("repack blobs lock"));
    // Decoded in parallel: put them back in pack order, so the new packs are deterministic.
    blobs.sort_by_key(|(offset, _)| *offset);
    Ok(blobs.into_iter().map(|(_, blob)| blob).collect())
}
