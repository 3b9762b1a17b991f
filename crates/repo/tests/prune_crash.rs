//! A prune stopped at any point (every write or delete it makes, in turn, is the last one
//! that happens) leaves a repository that `check --read-data` accepts, whose snapshots all
//! restore, and that the next prune completes.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::prune::{MaxUnused, PruneOptions};
use cairn_repo::{FileType, Repository, Storage};
use common::hooked::{injected, Hooked};
use common::*;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};

/// Counts mutations and lets the first `budget` through; from the first refused one on,
/// every mutation fails, as if the process had died (nothing it does reaches the store).
#[derive(Debug)]
struct Gate {
    budget: AtomicUsize,
    crashed: AtomicBool,
    mutations: AtomicUsize,
}

impl Gate {
    fn new(budget: usize) -> Arc<Gate> {
        Arc::new(Gate {
            budget: AtomicUsize::new(budget),
            crashed: AtomicBool::new(false),
            mutations: AtomicUsize::new(0),
        })
    }

    fn pass(&self) -> object_store::Result<()> {
        self.mutations.fetch_add(1, Ordering::SeqCst);
        let allowed = self
            .budget
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                left.checked_sub(1)
            })
            .is_ok();
        if !allowed || self.crashed.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
            return Err(injected("process stopped"));
        }
        Ok(())
    }

    /// A store over `inner` guarded by this gate.
    fn store(self: &Arc<Self>, inner: Arc<InMemory>) -> Arc<Hooked> {
        let gate = Arc::clone(self);
        Arc::new(Hooked::new(inner, Arc::new(move |_: &Path| gate.pass())))
    }
}

/// The small files of the history: `s<i>`, 6 kB each.
fn small_file(i: u64) -> (String, Vec<u8>) {
    (format!("s{i}"), noise(6_000, 1000 + i))
}

/// Copies every object of `from` into a new store.
async fn clone_store(from: &InMemory) -> Arc<InMemory> {
    let to = InMemory::new();
    let metas: Vec<ObjectMeta> = from.list(None).map(|m| m.unwrap()).collect().await;
    for meta in metas {
        let bytes = from
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        to.put(&meta.location, bytes.into()).await.unwrap();
    }
    Arc::new(to)
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_stopped_at_every_step_leaves_a_consistent_repository() {
    // A history with garbage to remove and packs to repack.
    let base = Arc::new(InMemory::new());
    let storage = Storage::new(Arc::clone(&base) as Arc<dyn ObjectStore>, "memory://base");
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let repo = open_for_prune(storage).await;
    let source = tempfile::tempdir().unwrap();
    // Many small files share each pack, so forgetting the first snapshot leaves packs
    // partly used (to repack) as well as wholly unused ones (the big file).
    let mut snaps = Vec::new();
    for (round, keep) in [(0u64, 0..40u64), (1, 0..40)] {
        for entry in std::fs::read_dir(source.path()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        let files: Vec<u64> = keep.filter(|i| round == 0 || i % 2 == 0).collect();
        for i in &files {
            let (name, content) = small_file(*i);
            std::fs::write(source.path().join(name), content).unwrap();
        }
        if round == 0 {
            std::fs::write(source.path().join("big"), noise(600_000, 7)).unwrap();
        }
        let report = repo
            .backup(&[source.path().to_path_buf()], BackupOptions::default())
            .await
            .unwrap();
        snaps.push((report.snapshot_id, files));
    }
    let (first, _) = snaps.remove(0);
    repo.storage()
        .delete(FileType::Snapshot, first.as_str())
        .await
        .unwrap();
    let options = PruneOptions {
        max_unused: MaxUnused::Bytes(0),
        ..Default::default()
    };

    // How many mutations a whole prune makes.
    let counting = Gate::new(usize::MAX);
    let full = open_for_prune(Storage::new(
        counting.store(clone_store(&base).await),
        "memory://count",
    ))
    .await;
    let report = full.prune(&options).await.unwrap();
    assert!(
        report.packs_deleted > 0 && report.packs_repacked > 0,
        "{report:?}"
    );
    let total = counting.mutations.load(Ordering::SeqCst);
    assert!(total > 5, "{total} mutations");

    for budget in 0..total {
        let copy = clone_store(&base).await;
        let crashing = Gate::new(budget).store(Arc::clone(&copy));
        let stopped = open_for_prune(Storage::new(crashing, "memory://crash")).await;
        let result = stopped.prune(&options).await;
        assert!(
            result.is_err(),
            "budget {budget} of {total}: prune should have been cut short"
        );

        // As found after the crash: consistent, every snapshot restores.
        let healthy = open_for_prune(Storage::new(
            Arc::clone(&copy) as Arc<dyn ObjectStore>,
            "memory://after",
        ))
        .await;
        assert_healthy(&healthy).await;
        assert_restores_files(&healthy, &snaps, small_file).await;
        // The stale lock of the dead run is removed by hand, then a prune completes.
        healthy.unlock(true).await.unwrap();
        healthy.prune(&options).await.unwrap();
        let again = healthy.prune(&options).await.unwrap();
        assert_eq!(again.blobs_unused, 0, "budget {budget}: {again:?}");
        assert!(healthy.read_pending().await.unwrap().is_empty());
        assert_healthy(&healthy).await;
        assert_restores_files(&healthy, &snaps, small_file).await;
    }
}
