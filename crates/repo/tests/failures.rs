//! A storage backend that fails mid-backup: the backup reports the storage error (naming the
//! object), writes no snapshot, and leaves a repository that `check` accepts and the next
//! backup completes.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::check::CheckOptions;
use cairn_repo::{ErrorKind, Repository, SnapshotFilter, Storage};
use common::hooked::{injected, Hook, Hooked};
use common::*;
use object_store::memory::InMemory;
use object_store::path::Path;

#[tokio::test(flavor = "multi_thread")]
async fn storage_failure_mid_backup_is_reported_and_leaves_a_consistent_repository() {
    // Every pack upload after the first three fails, until `allowed` is raised.
    let allowed = Arc::new(AtomicUsize::new(3));
    let pack_puts = Arc::new(AtomicUsize::new(0));
    let hook: Hook = {
        let allowed = Arc::clone(&allowed);
        Arc::new(move |path: &Path| {
            let is_pack = path.as_ref().starts_with("data/");
            if is_pack && pack_puts.fetch_add(1, Ordering::SeqCst) >= allowed.load(Ordering::SeqCst)
            {
                return Err(injected("disk full"));
            }
            Ok(())
        })
    };
    let flaky = Arc::new(Hooked::new(Arc::new(InMemory::new()), hook));
    let storage = Storage::new(flaky, "flaky://");
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
    allowed.store(usize::MAX, Ordering::SeqCst);
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
