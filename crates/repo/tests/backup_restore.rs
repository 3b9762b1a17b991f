//! End-to-end: init, back up trees and streams, restore byte for byte with metadata, verify,
//! dedup against the parent, and the errors a user meets first.

mod common;

use std::sync::Arc;

use cairn_repo::ops::backup::{BackupOptions, ParentSelection};
use cairn_repo::ops::progress::CancelToken;
use cairn_repo::ops::restore::RestoreOptions;
use cairn_repo::{ErrorKind, Repository, SnapshotFilter, Storage};
use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn roundtrip_memory_store() {
    roundtrip(Storage::in_memory()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn roundtrip_local_store() {
    let dir = tempfile::tempdir().unwrap();
    roundtrip(Storage::open(dir.path().to_str().unwrap()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_backup_and_dump() {
    let storage = Storage::in_memory();
    let repo = Repository::init(storage, PASSWORD, fast_init())
        .await
        .unwrap();
    let data = [noise(700_000, 5), vec![0u8; 900_000], noise(300_000, 6)].concat();
    let report = repo
        .backup_stream(
            std::io::Cursor::new(data.clone()),
            "db.sql",
            BackupOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(report.snapshot.paths, vec!["/db.sql".to_string()]);
    let index = repo.load_index().await.unwrap();
    let node = repo
        .find_node(&index, &report.snapshot, "db.sql")
        .await
        .unwrap();
    assert_eq!(node.size, data.len() as u64);
    let mut out = Vec::new();
    repo.dump(&index, &node, &mut out).await.unwrap();
    assert_eq!(out, data);
    // A stream restores at the target's top level.
    let target = tempfile::tempdir().unwrap();
    repo.restore(
        index,
        &report.snapshot,
        target.path(),
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(target.path().join("db.sql")).unwrap(), data);
}

#[tokio::test(flavor = "multi_thread")]
async fn open_errors_are_typed() {
    let storage = Storage::in_memory();
    let err = Repository::open(storage.clone(), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RepositoryNotFound);
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let err = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyInitialized);
    assert!(err.to_string().contains("already initialized"));
    let err = Repository::open(storage.clone(), b"wrong")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    assert!(err.to_string().contains("wrong password"));
}

#[tokio::test(flavor = "multi_thread")]
async fn key_management() {
    let storage = Storage::in_memory();
    let mut repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let fast = cairn_repo::KdfParams::insecure_for_tests(64, 1, 1).unwrap();
    let second = repo.add_key(b"second", fast).await.unwrap();
    let keys = repo.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k.current).count(), 1);
    assert!(
        repo.remove_key(&keys.iter().find(|k| k.current).unwrap().id)
            .await
            .is_err(),
        "current key removed"
    );
    Repository::open(storage.clone(), b"second").await.unwrap();
    repo.change_password(b"third", fast).await.unwrap();
    assert!(Repository::open(storage.clone(), PASSWORD).await.is_err());
    Repository::open(storage.clone(), b"third").await.unwrap();
    repo.remove_key(&second[..10]).await.unwrap();
    assert!(Repository::open(storage.clone(), b"second").await.is_err());
    assert_eq!(repo.list_keys().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_source_marks_snapshot_incomplete() {
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("present"), b"x").unwrap();
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let missing = source.path().join("vanished");
    let report = repo
        .backup(
            &[source.path().join("present"), missing.clone()],
            BackupOptions::default(),
        )
        .await
        .unwrap();
    assert!(report.snapshot.incomplete);
    assert_eq!(report.issues.len(), 1);
    assert_eq!(report.issues[0].path, missing);
}

#[tokio::test(flavor = "multi_thread")]
async fn excludes_and_caches() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(source.path().join("cache")).unwrap();
    std::fs::write(
        source.path().join("cache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc55",
    )
    .unwrap();
    std::fs::write(source.path().join("cache/blob"), b"cached").unwrap();
    std::fs::write(source.path().join("keep.txt"), b"k").unwrap();
    std::fs::write(source.path().join("drop.log"), b"d").unwrap();
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let options = BackupOptions {
        excludes: vec!["*.log".into()],
        exclude_caches: true,
        parent: ParentSelection::None,
        ..Default::default()
    };
    let report = repo
        .backup(&[source.path().to_path_buf()], options)
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    repo.restore(
        index,
        &report.snapshot,
        target.path(),
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    let root = target.path().join(source.path().strip_prefix("/").unwrap());
    assert!(root.join("keep.txt").exists());
    assert!(!root.join("drop.log").exists());
    assert!(!root.join("cache").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_backup_leaves_reusable_data() {
    let source = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(source.path().join(format!("f{i}")), noise(800_000, i)).unwrap();
    }
    let storage = Storage::in_memory();
    let repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let cancel = CancelToken::new();
    let trigger = cancel.clone();
    let options = BackupOptions {
        cancel,
        progress: Some(Arc::new(move |p: &cairn_repo::ops::progress::Progress| {
            if p.bytes_done > 0 {
                trigger.cancel();
            }
        })),
        ..Default::default()
    };
    // Cancel right away: whatever was packed is uploaded and indexed, no snapshot written.
    // (The progress callback also starts the scanner, which must stop with the backup.)
    options.cancel.cancel();
    let err = repo
        .backup(&[source.path().to_path_buf()], options)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert!(repo
        .list_snapshots(&SnapshotFilter::default())
        .await
        .unwrap()
        .is_empty());
    let report = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    repo.restore(
        index,
        &report.snapshot,
        target.path(),
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_same_tree(
        source.path(),
        &target.path().join(source.path().strip_prefix("/").unwrap()),
        false,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_reports_totals_and_finishes() {
    let source = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(source.path().join(format!("f{i}")), noise(50_000, i)).unwrap();
    }
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    let options = BackupOptions {
        progress: Some(Arc::new(move |p: &cairn_repo::ops::progress::Progress| {
            sink.lock().unwrap().push(p.clone())
        })),
        ..Default::default()
    };
    repo.backup(&[source.path().to_path_buf()], options)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let last = seen.last().expect("a final progress report");
    assert_eq!(last.files_done, 20);
    assert_eq!(last.bytes_done, 20 * 50_000);
    assert_eq!(
        (last.total_files, last.total_bytes),
        (20, 20 * 50_000),
        "scanner totals"
    );
}

/// Restoring over a target that holds symlinks where the snapshot has files or directories
/// never writes through them.
#[tokio::test(flavor = "multi_thread")]
async fn restore_never_writes_through_existing_symlinks() {
    let source = tempfile::tempdir().unwrap();
    std::fs::create_dir(source.path().join("dir")).unwrap();
    std::fs::write(source.path().join("small"), b"small file").unwrap();
    std::fs::write(source.path().join("dir/big"), noise(700_000, 3)).unwrap();
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let report = repo
        .backup(
            &[source.path().to_path_buf()],
            BackupOptions {
                parent: ParentSelection::None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let target = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, b"must not change").unwrap();
    let root = target.path().join(source.path().strip_prefix("/").unwrap());
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&victim, root.join("small")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("dir")).unwrap();
    repo.restore(
        index,
        &report.snapshot,
        target.path(),
        RestoreOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(std::fs::read(&victim).unwrap(), b"must not change");
    assert!(!outside.path().join("big").exists());
    assert!(root.join("small").symlink_metadata().unwrap().is_file());
    assert!(root.join("dir").symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read(root.join("small")).unwrap(), b"small file");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_directory_dumps_as_tar_with_every_entry() {
    use std::os::unix::fs::PermissionsExt;
    let source = tempfile::tempdir().unwrap();
    make_tree(source.path());
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let report = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let dir = source.path().join("dir");
    let node = repo
        .find_node(&index, &report.snapshot, dir.to_str().unwrap())
        .await
        .unwrap();
    let out = SharedBuffer::default();
    let written = repo
        .dump_tar(
            Arc::clone(&index),
            node.subtree.unwrap(),
            "dir".into(),
            out.clone(),
        )
        .await
        .unwrap();
    let bytes = out.0.lock().unwrap().clone();
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = 0;
    let mut content_bytes = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let rel = entry.path().unwrap().into_owned();
        let original = source.path().join(&rel);
        let meta = original.symlink_metadata().unwrap();
        assert_eq!(
            entry.header().mode().unwrap(),
            meta.permissions().mode() & 0o7777,
            "mode of {}",
            rel.display()
        );
        match entry.header().entry_type() {
            tar::EntryType::Regular => {
                let mut got = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut got).unwrap();
                assert!(
                    got == std::fs::read(&original).unwrap(),
                    "{}",
                    rel.display()
                );
                content_bytes += got.len() as u64;
            }
            tar::EntryType::Symlink => assert_eq!(
                entry.link_name().unwrap().unwrap(),
                std::fs::read_link(&original).unwrap()
            ),
            tar::EntryType::Directory => assert!(meta.is_dir()),
            other => panic!("unexpected entry type {other:?} for {}", rel.display()),
        }
        seen += 1;
    }
    // Every entry under dir/ in the source is in the archive.
    let mut expected = 0;
    let mut stack = vec![dir.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            expected += 1;
            if p.symlink_metadata().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    assert!(seen >= 3, "{seen} entries");
    assert_eq!(seen, expected);
    assert_eq!(written, content_bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_delete_makes_the_target_equal_within_its_selection() {
    let source = tempfile::tempdir().unwrap();
    for (name, data) in [
        ("keep/a", &b"a"[..]),
        ("keep/sub/b", b"b"),
        ("other/c", b"c"),
    ] {
        let path = source.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let report = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let target = tempfile::tempdir().unwrap();
    let root = target.path().join(source.path().strip_prefix("/").unwrap());
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("precious"), b"outside").unwrap();
    let plant = |rel: &str| {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"extra").unwrap();
    };
    plant("keep/extra.txt");
    plant("keep/gone/deep/file");
    plant("other/extra.txt");
    plant("logs/skip.log");
    std::os::unix::fs::symlink(outside.path(), root.join("keep/link")).unwrap();
    std::fs::write(target.path().join("top-level"), b"extra").unwrap();

    // Selected by --include: only what it selects is removed.
    let restored = repo
        .restore(
            repo.load_index().await.unwrap(),
            &report.snapshot,
            target.path(),
            RestoreOptions {
                include: vec!["/**/keep".into()],
                delete: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(restored.deleted, 3, "extra.txt, gone/ and the link");
    assert!(!root.join("keep/extra.txt").exists());
    assert!(!root.join("keep/gone").exists());
    assert!(std::fs::symlink_metadata(root.join("keep/link")).is_err());
    assert_eq!(
        std::fs::read(outside.path().join("precious")).unwrap(),
        b"outside"
    );
    assert!(
        root.join("other/extra.txt").exists(),
        "outside the selection"
    );
    assert!(
        target.path().join("top-level").exists(),
        "outside the selection"
    );

    // Everything, but never what --exclude matches.
    let restored = repo
        .restore(
            repo.load_index().await.unwrap(),
            &report.snapshot,
            target.path(),
            RestoreOptions {
                exclude: vec!["*.log".into()],
                delete: true,
                verify: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    assert!(!root.join("other/extra.txt").exists());
    assert!(!target.path().join("top-level").exists());
    assert!(
        root.join("logs/skip.log").exists(),
        "excluded paths are never deleted"
    );
    assert_eq!(std::fs::read(root.join("keep/sub/b")).unwrap(), b"b");
}

/// A changed file is re-chunked along its parent's chunks (skipping the cut search where
/// they still hold): its chunks must be exactly those of a backup that reads it from
/// scratch, and it must restore byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn changed_file_chunks_as_if_read_from_scratch() {
    let repo = Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap();
    let source = tempfile::tempdir().unwrap();
    let file = source.path().join("volume.img");
    let mut data = [noise(1_500_000, 1), vec![0u8; 700_000], noise(900_000, 2)].concat();
    std::fs::write(&file, &data).unwrap();
    let paths = [source.path().to_path_buf()];
    repo.backup(&paths, BackupOptions::default()).await.unwrap();
    // Scattered in-place rewrites, one inside the zero run, and a longer tail.
    for (at, seed) in [(200_000usize, 3u64), (1_800_000, 4), (2_500_000, 5)] {
        data[at..at + 5000].copy_from_slice(&noise(5000, seed));
    }
    data.extend_from_slice(&noise(100_000, 6));
    std::fs::write(&file, &data).unwrap();
    let guided = repo.backup(&paths, BackupOptions::default()).await.unwrap();
    assert!(
        guided.snapshot.parent.is_some(),
        "the second backup has a parent"
    );
    let scratch = repo
        .backup(
            &paths,
            BackupOptions {
                force: true,
                ..BackupOptions::default()
            },
        )
        .await
        .unwrap();
    let index = repo.load_index().await.unwrap();
    let name = file.to_str().unwrap().trim_start_matches('/');
    let node = |snapshot| {
        let (repo, index) = (&repo, &index);
        async move { repo.find_node(index, snapshot, name).await.unwrap() }
    };
    let (with_parent, from_scratch) = (node(&guided.snapshot).await, node(&scratch.snapshot).await);
    assert!(
        with_parent.content.len() > 10,
        "{} chunks",
        with_parent.content.len()
    );
    assert_eq!(with_parent.content, from_scratch.content);
    let mut out = Vec::new();
    repo.dump(&index, &with_parent, &mut out).await.unwrap();
    assert!(out == data, "the guided snapshot restores the new bytes");
}
