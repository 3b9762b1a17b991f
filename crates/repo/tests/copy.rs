//! `copy` into a repository with other keys: every snapshot restores from the copy, blobs the
//! destination has are not stored again, and chunking-compatible repositories copy chunk for
//! chunk while others re-chunk. Also onto a real S3-compatible server.

mod common;

use cairn_chunker::ChunkerParams;
use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::{InitOptions, Repository, SnapshotId, Storage};
use common::*;

async fn source_with_history(dir: &std::path::Path) -> (Repository, Vec<(SnapshotId, Vec<u64>)>) {
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let mut snaps = Vec::new();
    for seeds in [vec![1, 2, 3], vec![2, 3, 4]] {
        write_files(dir, &seeds);
        let report = repo
            .backup(&[dir.to_path_buf()], BackupOptions::default())
            .await
            .unwrap();
        snaps.push((report.snapshot_id, seeds));
    }
    (repo, snaps)
}

/// The source's expectations, renamed to the destination's snapshot ids.
fn as_copied(
    snaps: &[(SnapshotId, Vec<u64>)],
    copied: &[(SnapshotId, SnapshotId)],
) -> Vec<(SnapshotId, Vec<u64>)> {
    snaps
        .iter()
        .map(|(id, seeds)| {
            let dest = copied
                .iter()
                .find(|(from, _)| from == id)
                .map(|(_, to)| to.clone())
                .expect("copied");
            (dest, seeds.clone())
        })
        .collect()
}

async fn copy_and_verify(dest_storage: Storage) {
    let dir = tempfile::tempdir().unwrap();
    let (source, snaps) = source_with_history(dir.path()).await;
    let dest =
        Repository::init_chunking_like(dest_storage, b"other password", fast_init(), &source)
            .await
            .unwrap();
    let report = source
        .copy_snapshots(&dest, &CopyOptions::default())
        .await
        .unwrap();
    assert!(!report.rechunked, "chunking-compatible: {report:?}");
    assert_eq!(report.copied.len(), 2);
    assert_restores(&dest, &as_copied(&snaps, &report.copied)).await;
    assert_healthy(&dest).await;
    let copies = dest.list_snapshots(&Default::default()).await.unwrap();
    assert!(copies.iter().all(|s| s.snapshot.original.is_some()));

    // Again: nothing to do. After a new backup: only it, and only its new data.
    let again = source
        .copy_snapshots(&dest, &CopyOptions::default())
        .await
        .unwrap();
    assert!(
        again.copied.is_empty() && again.skipped.len() == 2,
        "{again:?}"
    );
    write_files(dir.path(), &[3, 4, 5]);
    let third = source
        .backup(&[dir.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let more = source
        .copy_snapshots(&dest, &CopyOptions::default())
        .await
        .unwrap();
    assert_eq!(more.copied.len(), 1);
    assert!(
        more.data_added < 400_000,
        "only f5 is new: {} bytes added",
        more.data_added
    );
    assert_restores(
        &dest,
        &as_copied(&[(third.snapshot_id, vec![3, 4, 5])], &more.copied),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_between_chunking_compatible_repositories() {
    copy_and_verify(Storage::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_to_a_bucket_in_another_region() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("cairn-dr");
    let storage =
        Storage::open_with_options("s3://cairn-dr/copy", false, &server.options()).unwrap();
    copy_and_verify(storage).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_rechunks_when_chunking_differs() {
    let dir = tempfile::tempdir().unwrap();
    let (source, snaps) = source_with_history(dir.path()).await;
    let other = InitOptions {
        chunker: ChunkerParams::new(8 * 1024, 32 * 1024, 128 * 1024).unwrap(),
        ..fast_init()
    };
    let dest = Repository::init(Storage::in_memory(), b"pw2", other)
        .await
        .unwrap();
    // The destination's own backup of the same files...
    write_files(dir.path(), &[1, 2, 3]);
    let own = dest
        .backup(&[dir.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let own_added = own.snapshot.summary.unwrap().data_added;
    // ...deduplicates with the copy of the first snapshot: it is re-chunked alike.
    let report = source
        .copy_snapshots(
            &dest,
            &CopyOptions {
                ids: vec![snaps[0].0.to_string()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(report.rechunked);
    assert_eq!(report.copied.len(), 1);
    // Only the trees (a few kB) are new; the 900 kB of file data were all there.
    assert!(
        report.data_added < 10_000,
        "all chunks were there: {report:?} ({own_added} own)"
    );
    assert_restores(&dest, &as_copied(&snaps[..1], &report.copied)).await;
    assert_healthy(&dest).await;
    // Asking for an unknown snapshot fails cleanly.
    assert!(source
        .copy_snapshots(
            &dest,
            &CopyOptions {
                ids: vec!["ffffffff".into()],
                ..Default::default()
            },
        )
        .await
        .is_err());
}
