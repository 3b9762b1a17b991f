//! A backup whose marker lapsed (a frozen process, a paused VM, a stalled network) while a
//! prune ran must never report success for a snapshot it cannot restore: it either fails
//! with "lock lapsed" and writes no snapshot, or writes one that restores byte for byte.
//! And a lock refresh never overwrites a lock someone else took meanwhile.
//!
//! Two ways to freeze a backup: age its marker in the store (its host's clocks never saw
//! the time pass, as after a VM pause; local store, whose modification times a test can
//! set), and hold every request it makes for longer than the expiry (any store, moto's S3
//! included).

mod common;

use std::io::Read;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::prune::{MaxUnused, PruneOptions};
use cairn_repo::{
    ErrorKind, FileType, LockGuard, LockTimings, Repository, SnapshotFilter, Storage,
};
use common::gated::gated;
use common::*;

/// Yields `before` bytes of noise, tells the test, waits to be released, then yields
/// `after` more: a stream whose producer stalls mid-way.
struct StallingReader {
    data: Vec<u8>,
    pos: usize,
    stall_at: usize,
    stalled: Option<mpsc::Sender<()>>,
    release: mpsc::Receiver<()>,
}

impl Read for StallingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.stall_at {
            if let Some(stalled) = self.stalled.take() {
                let _ = stalled.send(());
                let _ = self.release.recv();
            }
        }
        let end = if self.pos < self.stall_at {
            self.stall_at
        } else {
            self.data.len()
        };
        let n = buf.len().min(end - self.pos).min(64 * 1024);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

struct Stall {
    stalled: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

fn stalling_reader(data: Vec<u8>, stall_at: usize) -> (StallingReader, Stall) {
    let (stalled_tx, stalled_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    (
        StallingReader {
            data,
            pos: 0,
            stall_at,
            stalled: Some(stalled_tx),
            release: release_rx,
        },
        Stall {
            stalled: stalled_rx,
            release: release_tx,
        },
    )
}

const DATA_LEN: usize = 4 << 20;
const STALL_AT: usize = 3 << 20;

/// Waits until the backup's reader has stalled and the packs it filled are stored.
async fn wait_for_stall(stall: &Stall, repo: &Repository) {
    let stalled = &stall.stalled;
    tokio::task::block_in_place(|| stalled.recv_timeout(Duration::from_secs(60)))
        .expect("the backup reached its stall point");
    // Packs are uploaded in the background: wait until some are stored and the count
    // settles.
    let mut last = usize::MAX;
    for _ in 0..100 {
        let now = repo.storage().list(FileType::Pack).await.unwrap().len();
        if now > 0 && now == last {
            return;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("the stalled backup stored no packs");
}

/// The outcome every frozen backup must have: a clear lapse error and no new snapshot, or
/// a snapshot that restores byte for byte; `check --read-data` passes either way.
async fn assert_lapse_outcome(
    result: cairn_repo::Result<cairn_repo::ops::backup::BackupReport>,
    repo: &Repository,
    data: &[u8],
) {
    match result {
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
            assert!(e.to_string().contains("lapsed"), "{e}");
            assert!(
                repo.storage()
                    .list(FileType::Snapshot)
                    .await
                    .unwrap()
                    .is_empty(),
                "a lapsed backup left a snapshot"
            );
        }
        Ok(report) => {
            let entry = repo
                .find_snapshot(report.snapshot_id.as_str(), &SnapshotFilter::default())
                .await
                .unwrap();
            let index = repo.load_index().await.unwrap();
            let node = repo
                .find_node(&index, &entry.snapshot, "db.sql")
                .await
                .unwrap();
            let mut restored = Vec::new();
            repo.dump(&index, &node, &mut restored).await.unwrap();
            assert!(restored == data, "the snapshot does not restore its data");
        }
    }
    assert_healthy(repo).await;
}

/// Prune with nothing kept unused, so every pack no index lists is a candidate.
async fn prune_everything(repo: &Repository) -> u64 {
    let report = repo
        .prune(&PruneOptions {
            max_unused: MaxUnused::Bytes(0),
            ..Default::default()
        })
        .await
        .unwrap();
    report.packs_unindexed + report.packs_deleted
}

/// The marker aged in the store while the backup's host saw no time pass (local store).
#[tokio::test(flavor = "multi_thread")]
async fn a_backup_whose_marker_aged_in_the_store_never_saves_a_broken_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("repo");
    let storage = Storage::open_or_create(location.to_str().unwrap()).unwrap();
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let mut backup_repo = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    backup_repo.set_lock_timings(test_timings());
    let data = noise(DATA_LEN, 7);
    let (reader, stall) = stalling_reader(data.clone(), STALL_AT);
    let backup = tokio::spawn(async move {
        backup_repo
            .backup_stream(reader, "db.sql", BackupOptions::default())
            .await
    });
    let pruner = open_for_prune(storage.clone()).await;
    wait_for_stall(&stall, &pruner).await;

    // Two hours pass for the store, none for the backup's host.
    let markers: Vec<_> = std::fs::read_dir(location.join("locks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(markers.len(), 1, "{markers:?}");
    std::fs::File::options()
        .write(true)
        .open(&markers[0])
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let removed = prune_everything(&pruner).await;
    assert!(
        removed > 0,
        "the prune removed none of the stalled backup's packs"
    );

    stall.release.send(()).unwrap();
    let result = backup.await.unwrap();
    assert!(
        result.is_err(),
        "the backup deduplicated against deleted packs"
    );
    assert_lapse_outcome(result, &pruner, &data).await;
}

/// Every request of the backup held past the expiry while a prune runs.
async fn frozen_backup(storage: Storage) {
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let timings = LockTimings {
        clock_margin: Duration::ZERO,
        ..LockTimings::new(Duration::from_secs(1), Duration::from_secs(4)).unwrap()
    };
    let (store, gate) = gated(Arc::clone(storage.object_store()));
    let mut backup_repo = Repository::open(storage.map_store(|_| store), PASSWORD)
        .await
        .unwrap();
    backup_repo.set_lock_timings(timings);
    let data = noise(DATA_LEN, 8);
    let (reader, stall) = stalling_reader(data.clone(), STALL_AT);
    let backup = tokio::spawn(async move {
        backup_repo
            .backup_stream(reader, "db.sql", BackupOptions::default())
            .await
    });
    let mut pruner = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    pruner.set_lock_timings(timings);
    wait_for_stall(&stall, &pruner).await;

    gate.freeze();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let removed = prune_everything(&pruner).await;
    assert!(
        removed > 0,
        "the prune removed none of the frozen backup's packs"
    );
    gate.thaw();
    stall.release.send(()).unwrap();
    let result = backup.await.unwrap();
    assert_lapse_outcome(result, &pruner, &data).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_backup_never_saves_a_broken_snapshot_local() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("repo");
    frozen_backup(Storage::open_or_create(location.to_str().unwrap()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_backup_never_saves_a_broken_snapshot_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("lapse");
    let storage = Storage::open_with_options("s3://lapse/repo", false, &server.options()).unwrap();
    frozen_backup(storage).await;
}

/// While a maintenance lock's holder refreshes it (just before its conditional write
/// reaches the store), the lock is removed by `unlock --remove-all` and taken by another
/// prune: the refresh must lose, never overwrite the new holder's lock.
async fn refresh_race(storage: Storage) {
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let (store, gate) = gated(Arc::clone(storage.object_store()));
    let first = Repository::open(storage.map_store(|_| store), PASSWORD)
        .await
        .unwrap();
    let second = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    let held = first.lock_maintenance().await.unwrap();

    let taken: Arc<Mutex<Option<LockGuard>>> = Arc::default();
    let slot = Arc::clone(&taken);
    gate.intercept_write(
        "locks/maintenance",
        Box::new(move || {
            Box::pin(async move {
                second.unlock(true).await.unwrap();
                let lock = second.lock_maintenance().await.unwrap();
                *slot.lock().unwrap() = Some(lock);
            })
        }),
    );
    let err = held.refresh_now().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Locked, "{err}");
    let other = taken
        .lock()
        .unwrap()
        .take()
        .expect("the second prune took the lock");
    // The new holder's lock is intact: its own refresh finds its token.
    other.refresh_now().await.unwrap();
    other.check().unwrap();
    assert!(held.check().is_err());
    other.release().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_never_overwrites_a_lock_taken_meanwhile_memory() {
    refresh_race(Storage::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_never_overwrites_a_lock_taken_meanwhile_local() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("repo");
    refresh_race(Storage::open_or_create(location.to_str().unwrap()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_never_overwrites_a_lock_taken_meanwhile_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    server.create_bucket("race");
    let storage = Storage::open_with_options("s3://race/repo", false, &server.options()).unwrap();
    refresh_race(storage).await;
}
