//! `prune`: frees what no snapshot uses, keeps everything snapshots need, changes nothing in a
//! dry run, and leaves a consistent repository however far it got before failing.

mod common;

use std::path::Path;

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::prune::{MaxUnused, PruneOptions};
use cairn_repo::{FileType, Repository, Storage};
use common::*;

/// Three snapshots over changing files; returns the repository, and (id, seeds) for each.
async fn history(
    storage: Storage,
    source: &Path,
) -> (Repository, Vec<(cairn_repo::SnapshotId, Vec<u64>)>) {
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let repo = open_for_prune(storage).await;
    let mut out = Vec::new();
    for seeds in [vec![1, 2, 3], vec![2, 3, 4], vec![4, 5]] {
        write_files(source, &seeds);
        let report = repo
            .backup(&[source.to_path_buf()], BackupOptions::default())
            .await
            .unwrap();
        out.push((report.snapshot_id, seeds));
    }
    (repo, out)
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_frees_unused_data_and_keeps_every_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    let storage = Storage::open_or_create(dir.path().join("repo").to_str().unwrap()).unwrap();
    let (repo, mut snaps) = history(storage, &source).await;
    // Forget the first snapshot: f1 becomes garbage.
    let (first, _) = snaps.remove(0);
    repo.storage()
        .delete(FileType::Snapshot, first.as_str())
        .await
        .unwrap();
    let before = total_pack_bytes(&repo).await;

    let dry = repo
        .prune(&PruneOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert!(dry.blobs_unused > 0, "{dry:?}");
    assert!(dry.bytes_removed > 250_000, "{dry:?}");
    assert_eq!(
        total_pack_bytes(&repo).await,
        before,
        "dry run changed nothing"
    );
    assert_eq!(dry.packs_deleted, 0);

    let report = repo.prune(&PruneOptions::default()).await.unwrap();
    assert_eq!(report.snapshots, 2);
    assert_eq!(
        (report.packs_unused + report.packs_repacked),
        (dry.packs_unused + dry.packs_repacked),
        "the dry run predicted the plan: {dry:?} vs {report:?}"
    );
    assert!(report.packs_deleted > 0, "{report:?}");
    assert_eq!(report.packs_awaiting_backups, 0);
    // The forgotten file's 300 kB of noise went, whatever share of it sat in packs that
    // were repacked (chunk boundaries, keyed per repository, differ from run to run): what
    // was freed is what was removed less what repacking wrote again.
    assert!(report.bytes_removed > 250_000, "{report:?}");
    let after = total_pack_bytes(&repo).await;
    assert_eq!(
        before - after,
        report.bytes_removed - report.bytes_written,
        "{report:?}"
    );
    let again = repo
        .prune(&PruneOptions {
            dry_run: true,
            ..Default::default()
        })
        .await
        .unwrap();
    // Under the default --max-unused a few unused blobs may stay in used packs, but no
    // pack that holds nothing used.
    assert_eq!(again.packs_unused, 0, "{again:?}");
    assert_eq!(again.packs_deleted, 0, "{again:?}");
    assert!(repo.list_locks().await.unwrap().is_empty(), "lock released");
    assert!(repo.read_pending().await.unwrap().is_empty());
    assert_healthy(&repo).await;
    assert_restores(&repo, &snaps).await;

    // A second prune finds nothing more to do. Blobs may stay unused: chunk boundaries
    // depend on the repository's random chunker key, so a garbage chunk can share a pack
    // whose unused share is under `max_unused` and is rightly left in place.
    let again = repo.prune(&PruneOptions::default()).await.unwrap();
    assert_eq!(again.packs_deleted, 0, "{again:?}");
    assert_eq!(again.packs_repacked, 0, "{again:?}");
    // With no tolerance for unused bytes, prune removes every last unused blob.
    let strict = PruneOptions {
        max_unused: MaxUnused::Bytes(0),
        ..Default::default()
    };
    repo.prune(&strict).await.unwrap();
    let last = repo.prune(&strict).await.unwrap();
    assert_eq!(last.blobs_unused, 0, "{last:?}");
    assert_healthy(&repo).await;
    assert_restores(&repo, &snaps).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_refuses_while_another_holds_the_lock_and_when_data_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, _) = history(Storage::in_memory(), &dir.path().join("src")).await;
    let held = repo.lock_maintenance().await.unwrap();
    let err = repo.prune(&PruneOptions::default()).await.unwrap_err();
    assert_eq!(err.kind(), cairn_repo::ErrorKind::Locked, "{err}");
    held.release().await.unwrap();

    // Damage: an indexed pack disappears. Prune must not make it worse.
    let pack = repo.storage().list(FileType::Pack).await.unwrap()[0]
        .name
        .clone();
    repo.storage().delete(FileType::Pack, &pack).await.unwrap();
    let before = repo.storage().list(FileType::Pack).await.unwrap().len();
    let err = repo.prune(&PruneOptions::default()).await.unwrap_err();
    assert!(err.to_string().contains("missing"), "{err}");
    assert_eq!(
        repo.storage().list(FileType::Pack).await.unwrap().len(),
        before
    );
    assert!(
        repo.list_locks().await.unwrap().is_empty(),
        "lock released on error"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn repack_respects_threshold_and_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, mut snaps) = history(Storage::in_memory(), &dir.path().join("src")).await;
    let (first, _) = snaps.remove(0);
    repo.storage()
        .delete(FileType::Snapshot, first.as_str())
        .await
        .unwrap();
    // Nothing may be repacked with a zero budget; whole-unused packs still go.
    let report = repo
        .prune(&PruneOptions {
            max_repack_bytes: Some(0),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.packs_repacked, 0, "{report:?}");
    assert_healthy(&repo).await;
    assert_restores(&repo, &snaps).await;
    // Threshold 100 %: never repack.
    let report = repo
        .prune(&PruneOptions {
            max_unused: MaxUnused::Unlimited,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(report.packs_repacked, 0);
    // Threshold 0: every pack with any unused blob is repacked, leaving none unused.
    let report = repo
        .prune(&PruneOptions {
            max_unused: MaxUnused::Bytes(0),
            ..Default::default()
        })
        .await
        .unwrap();
    let final_report = repo.prune(&PruneOptions::default()).await.unwrap();
    assert_eq!(
        final_report.blobs_unused, 0,
        "{report:?} then {final_report:?}"
    );
    assert_healthy(&repo).await;
    assert_restores(&repo, &snaps).await;
    assert!(repo
        .prune(&PruneOptions {
            max_unused: MaxUnused::Percent(150.0),
            ..Default::default()
        })
        .await
        .is_err());
}
