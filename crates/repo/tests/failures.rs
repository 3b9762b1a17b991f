//! A storage backend that fails mid-backup: the backup reports the storage error (naming the
//! object), writes no snapshot, and leaves a repository that `check` accepts and the next
//! backup completes.

mod common;

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::check::CheckOptions;
use cairn_repo::{ErrorKind, Repository, SnapshotFilter, Storage};
use common::*;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Fails every pack upload after the first `allowed` while `failing` is set.
#[derive(Debug)]
struct Flaky {
    inner: InMemory,
    pack_puts: AtomicUsize,
    allowed: AtomicUsize,
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Flaky")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if location.as_ref().starts_with("data/")
            && self.pack_puts.fetch_add(1, Ordering::SeqCst) >= self.allowed.load(Ordering::SeqCst)
        {
            return Err(object_store::Error::Generic {
                store: "Flaky",
                source: "disk full (injected)".into(),
            });
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
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
        self.inner.delete_stream(locations)
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
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_failure_mid_backup_is_reported_and_leaves_a_consistent_repository() {
    let flaky = Arc::new(Flaky {
        inner: InMemory::new(),
        pack_puts: AtomicUsize::new(0),
        allowed: AtomicUsize::new(3),
    });
    let storage = Storage::new(flaky.clone(), "flaky://");
    let repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let source = tempfile::tempdir().unwrap();
    for i in 0..8 {
        std::fs::write(source.path().join(format!("f{i}")), noise(300_000, i)).unwrap();
    }
    let err = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Storage, "{err}");
    let message = err.to_string();
    assert!(
        message.contains("data/") && message.contains("disk full"),
        "{message}"
    );
    assert!(repo
        .list_snapshots(&SnapshotFilter::default())
        .await
        .unwrap()
        .is_empty());
    let report = repo.check(&CheckOptions::default()).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);

    // The disk has room again: the next backup completes and restores.
    flaky.allowed.store(usize::MAX, Ordering::SeqCst);
    repo.backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let report = repo
        .check(&CheckOptions {
            read_data: cairn_repo::ops::check::ReadData::All,
        })
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
}
