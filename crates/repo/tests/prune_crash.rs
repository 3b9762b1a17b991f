//! A prune stopped at any point (every write or delete it makes, in turn, is the last one
//! that happens) leaves a repository that `check --read-data` accepts, whose snapshots all
//! restore, and that the next prune completes.

mod common;

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::prune::PruneOptions;
use cairn_repo::{FileType, Repository, Storage};
use common::*;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Passes through to `inner` until `budget` mutations have happened; from then on every
/// mutation fails, as if the process had died (nothing it does reaches the store).
#[derive(Debug)]
struct Crashing {
    inner: Arc<InMemory>,
    gate: Arc<Gate>,
}

#[derive(Debug)]
struct Gate {
    budget: AtomicUsize,
    crashed: AtomicBool,
    mutations: AtomicUsize,
}

impl Gate {
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
            return Err(object_store::Error::Generic {
                store: "Crashing",
                source: "process stopped (injected)".into(),
            });
        }
        Ok(())
    }
}

impl Crashing {
    fn new(inner: Arc<InMemory>, budget: usize) -> Self {
        Crashing {
            inner,
            gate: Arc::new(Gate {
                budget: AtomicUsize::new(budget),
                crashed: AtomicBool::new(false),
                mutations: AtomicUsize::new(0),
            }),
        }
    }

    fn mutate(&self) -> object_store::Result<()> {
        self.gate.pass()
    }
}

impl fmt::Display for Crashing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Crashing")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Crashing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.mutate()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.mutate()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let gate = Arc::clone(&self.gate);
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let gate = Arc::clone(&gate);
                async move {
                    let location = location?;
                    gate.pass()?;
                    inner.delete(&location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.mutate()?;
        self.inner.copy_opts(from, to, options).await
    }
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
            std::fs::write(source.path().join(format!("s{i}")), noise(6_000, 1000 + i)).unwrap();
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
        .delete(FileType::Snapshot, &first)
        .await
        .unwrap();
    let options = PruneOptions {
        max_unused: 0.0,
        ..Default::default()
    };

    // How many mutations a whole prune makes.
    let counting = Arc::new(Crashing::new(clone_store(&base).await, usize::MAX));
    let full = open_for_prune(Storage::new(counting.clone(), "memory://count")).await;
    let report = full.prune(&options).await.unwrap();
    assert!(
        report.packs_deleted > 0 && report.packs_repacked > 0,
        "{report:?}"
    );
    let total = counting.gate.mutations.load(Ordering::SeqCst);
    assert!(total > 5, "{total} mutations");

    for budget in 0..total {
        let copy = clone_store(&base).await;
        let crashing = Arc::new(Crashing::new(Arc::clone(&copy), budget));
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
        assert_small_files_restore(&healthy, &snaps).await;
        // The stale lock of the dead run is removed by hand, then a prune completes.
        healthy.unlock(true).await.unwrap();
        healthy.prune(&options).await.unwrap();
        let again = healthy.prune(&options).await.unwrap();
        assert_eq!(again.blobs_unused, 0, "budget {budget}: {again:?}");
        assert!(healthy.read_pending().await.unwrap().is_empty());
        assert_healthy(&healthy).await;
        assert_small_files_restore(&healthy, &snaps).await;
    }
}

async fn assert_small_files_restore(repo: &Repository, snaps: &[(String, Vec<u64>)]) {
    use cairn_repo::ops::restore::RestoreOptions;
    use cairn_repo::SnapshotFilter;
    let index = repo.load_index().await.unwrap();
    for (id, files) in snaps {
        let entry = repo
            .find_snapshot(id, &SnapshotFilter::default())
            .await
            .unwrap();
        let target = tempfile::tempdir().unwrap();
        let report = repo
            .restore(
                Arc::clone(&index),
                &entry.snapshot,
                target.path(),
                RestoreOptions::default(),
            )
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let root = target
            .path()
            .join(entry.snapshot.paths[0].trim_start_matches('/'));
        for i in files {
            let got = std::fs::read(root.join(format!("s{i}"))).unwrap();
            assert!(got == noise(6_000, 1000 + i), "snapshot {id}: s{i} differs");
        }
    }
}
