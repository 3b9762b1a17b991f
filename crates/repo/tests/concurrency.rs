//! The concurrency protocol under load: several backups of overlapping data run while
//! forget + prune loop; afterwards `check --read-data` is clean and every remaining snapshot
//! restores byte for byte. Against the local store and a real S3-compatible server.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::forget::{ForgetOptions, KeepPolicy};
use cairn_repo::ops::prune::{MaxUnused, PruneOptions};
use cairn_repo::{Repository, SnapshotFilter, SnapshotId, Storage};
use common::*;

/// Seeds (file contents) writer `w` backs up in round `i`: one cycling through a small shared
/// pool, so backups dedup against data a concurrent prune is removing, one shared by all
/// writers in a round, and one of its own.
fn seeds(w: u64, i: u64) -> Vec<u64> {
    vec![(i + w) % 4, 10 + i, 100 * (w + 1) + i]
}

/// Snapshots taken: id and the seeds of the files they hold.
type Taken = Vec<(SnapshotId, Vec<u64>)>;

async fn forget_all_but_last(repo: &Repository) {
    repo.forget(&ForgetOptions {
        policy: KeepPolicy {
            last: Some(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
}

async fn backups_race_prunes(storage: Storage, writers: u64, rounds: u64) {
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let repo = open_for_prune(storage).await;
    let dir = tempfile::tempdir().unwrap();
    let taken: Arc<Mutex<Taken>> = Arc::default();
    let done = Arc::new(AtomicBool::new(false));

    let pruner = {
        let repo = repo.clone();
        let done = Arc::clone(&done);
        tokio::spawn(async move {
            let (mut runs, mut deleted, mut restored) = (0u64, 0u64, 0u64);
            while !done.load(Ordering::SeqCst) || runs < 2 {
                forget_all_but_last(&repo).await;
                let report = repo
                    .prune(&PruneOptions {
                        max_unused: MaxUnused::Bytes(0),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
                runs += 1;
                deleted += report.packs_deleted;
                restored += report.packs_restored;
            }
            (runs, deleted, restored)
        })
    };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let repo = repo.clone();
        let taken = Arc::clone(&taken);
        let source: PathBuf = dir.path().join(format!("w{w}"));
        tasks.push(tokio::spawn(async move {
            for i in 0..rounds {
                let seeds = seeds(w, i);
                write_files(&source, &seeds);
                let report = repo
                    .backup(
                        std::slice::from_ref(&source),
                        BackupOptions {
                            hostname: Some(format!("writer{w}")),
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
                taken.lock().unwrap().push((report.snapshot_id, seeds));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let (runs, deleted, restored) = pruner.await.unwrap();

    // With no backup running, one more forget and prune complete every pending deletion.
    forget_all_but_last(&repo).await;
    let last = repo.prune(&PruneOptions::default()).await.unwrap();
    eprintln!(
        "{runs} concurrent prunes deleted {deleted} packs and restored {restored}; the last \
         deleted {}",
        last.packs_deleted
    );
    assert!(
        deleted + last.packs_deleted > 0,
        "the prunes removed nothing: the test proves nothing"
    );
    assert_eq!(last.packs_awaiting_backups, 0, "{last:?}");
    assert!(repo.read_pending().await.unwrap().is_empty());
    assert!(repo.list_locks().await.unwrap().is_empty());
    assert_healthy(&repo).await;
    let remaining: Vec<SnapshotId> = repo
        .list_snapshots(&SnapshotFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        remaining.len() as u64,
        writers,
        "forget keeps the last per writer"
    );
    let expected: Vec<(SnapshotId, Vec<u64>)> = taken
        .lock()
        .unwrap()
        .iter()
        .filter(|(id, _)| remaining.contains(id))
        .cloned()
        .collect();
    assert_eq!(expected.len(), remaining.len());
    assert_restores(&repo, &expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_race_prunes_on_the_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::open_or_create(dir.path().join("repo").to_str().unwrap()).unwrap();
    backups_race_prunes(storage, 3, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backups_race_prunes_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("cairn-race");
    let storage =
        Storage::open_with_options("s3://cairn-race/repo", false, &server.options()).unwrap();
    backups_race_prunes(storage, 3, 10).await;
}
