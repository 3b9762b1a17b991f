//! The async side of a backup: uploads finished packs with bounded concurrency and writes
//! index files for them (every `INDEX_EVERY` packs, at least every `INDEX_INTERVAL`, and at
//! the end), so an interrupted backup still leaves its uploaded data indexed and reusable.
//!
//! An index file is a publication: it tells every other host that its packs exist. So each
//! one is written only between two confirmations of the backup's marker by the store's
//! clock. If the marker lapsed (a prune may have deleted this backup's unindexed packs
//! meanwhile), the backup stops, and an index file written during the lapse is withdrawn.

use cairn_pack::FinishedPack;
use object_store::PutPayload;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinSet;

use crate::error::{RepoError, Result};
use crate::index::{IndexFile, IndexPack};
use crate::lock::LockConfirmer;
use crate::object::IndexId;
use crate::Repository;

/// Packs per index file while a backup runs.
const INDEX_EVERY: usize = 16;
/// ...or once they list this many blobs (packs of small blobs hold over 100 000 each): an
/// index file is read whole, so its size bounds what a reader holds at once.
const INDEX_MAX_BLOBS: usize = 1 << 16;
/// Longest time uploaded packs stay unindexed while a backup runs.
const INDEX_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// What the uploader did.
#[derive(Debug, Default)]
pub(crate) struct UploadReport {
    pub packs: u64,
    pub index_files: Vec<IndexId>,
}

async fn upload(repo: Repository, pack: FinishedPack) -> Result<IndexPack> {
    // A tree pack is written through to the local cache: the next backup compares against
    // these trees, and need not fetch them.
    let trees = pack
        .entries
        .iter()
        .any(|e| e.blob_type == cairn_pack::BlobType::Tree);
    let cached = (trees && repo.cache.is_some()).then(|| pack.parts.concat());
    let payload: PutPayload = pack.parts.into_iter().collect();
    repo.put_pack(&pack.id, payload).await?;
    if let (Some(cache), Some(bytes)) = (repo.cache.as_deref(), cached) {
        cache.put_pack(&pack.id, &bytes);
    }
    Ok(IndexPack {
        id: pack.id,
        entries: pack.entries,
    })
}

/// Writes an index file while the marker is confirmed live before and after.
async fn publish_index(
    repo: &Repository,
    marker: &LockConfirmer,
    file: &IndexFile,
) -> Result<IndexId> {
    marker.confirm().await?;
    let name = repo.write_index_file(file).await?;
    if let Err(e) = marker.confirm().await {
        let _ = repo.delete_file::<IndexFile>(&name).await;
        return Err(e);
    }
    Ok(name)
}

pub(crate) async fn run_uploader(
    repo: Repository,
    marker: LockConfirmer,
    mut packs: Receiver<FinishedPack>,
) -> Result<UploadReport> {
    let mut report = UploadReport::default();
    let mut pending = IndexFile::default();
    let mut tasks: JoinSet<Result<IndexPack>> = JoinSet::new();
    let mut last_index = std::time::Instant::now();

    async fn reap(
        repo: &Repository,
        marker: &LockConfirmer,
        joined: Option<std::result::Result<Result<IndexPack>, tokio::task::JoinError>>,
        pending: &mut IndexFile,
        report: &mut UploadReport,
        last_index: &mut std::time::Instant,
    ) -> Result<()> {
        let Some(joined) = joined else { return Ok(()) };
        let indexed = joined.map_err(RepoError::task("upload task"))??;
        pending.packs.push(indexed);
        report.packs += 1;
        let blobs: usize = pending.packs.iter().map(|p| p.entries.len()).sum();
        if pending.packs.len() >= INDEX_EVERY
            || blobs >= INDEX_MAX_BLOBS
            || last_index.elapsed() >= INDEX_INTERVAL
        {
            report
                .index_files
                .push(publish_index(repo, marker, pending).await?);
            pending.packs.clear();
            *last_index = std::time::Instant::now();
        }
        Ok(())
    }

    while let Some(pack) = packs.recv().await {
        while tasks.len() >= repo.transfer_concurrency() {
            let joined = tasks.join_next().await;
            reap(
                &repo,
                &marker,
                joined,
                &mut pending,
                &mut report,
                &mut last_index,
            )
            .await?;
        }
        tasks.spawn(upload(repo.clone(), pack));
    }
    while let Some(joined) = tasks.join_next().await {
        reap(
            &repo,
            &marker,
            Some(joined),
            &mut pending,
            &mut report,
            &mut last_index,
        )
        .await?;
    }
    if !pending.packs.is_empty() {
        report
            .index_files
            .push(publish_index(&repo, &marker, &pending).await?);
    }
    Ok(report)
}
