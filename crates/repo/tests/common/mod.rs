//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

pub mod gated;
pub mod hooked;
mod s3_server;
#[allow(unused_imports)]
pub use s3_server::S3Server;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use cairn_chunker::ChunkerParams;
use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::restore::RestoreOptions;
use std::time::Duration;

use cairn_repo::ops::check::{CheckOptions, ReadData};
use cairn_repo::{FileType, InitOptions, KdfParams, LockTimings};
use cairn_repo::{Repository, SnapshotFilter, SnapshotId, Storage};

pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// Small chunks and packs so tests exercise many of each; a cheap KDF.
pub fn fast_init() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams::new(16 * 1024, 64 * 1024, 256 * 1024).unwrap(),
        pack_size: 256 * 1024,
        compression: Some(3),
        kdf: KdfParams::insecure_for_tests(64, 1, 1).unwrap(),
    }
}

pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key("cairn repo test noise")
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A tree with every kind of entry cairn stores. Returns whether xattrs are supported here.
pub fn make_tree(root: &Path) -> bool {
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("small.txt"), b"hello cairn\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("dir/big.bin"), noise(1_500_000, 1)).unwrap();
    let mut text = Vec::new();
    for i in 0..40_000 {
        text.extend_from_slice(format!("line {i} of a compressible file\n").as_bytes());
    }
    std::fs::write(root.join("dir/sub/text.log"), &text).unwrap();
    std::fs::write(root.join("dir/same-as-big.bin"), noise(1_500_000, 1)).unwrap();
    // Sparse: 3 MiB hole then data.
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"tail data", 3 << 20).unwrap();
    std::os::unix::fs::symlink("dir/sub/text.log", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("small.txt"), root.join("dir/hardlink.txt")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let weird = std::ffi::OsStr::from_bytes(b"name-\xff\xfe-not-utf8");
    std::fs::write(root.join(weird), b"bytes").unwrap();
    std::fs::set_permissions(root.join("dir/sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(
        root.join("small.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let xattrs = xattr::set(root.join("small.txt"), "user.cairn", b"value").is_ok();
    // A fixed, old mtime with nanoseconds.
    let ts = nix::sys::time::TimeSpec::new(1_600_000_000, 123_456_789);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &root.join("dir/big.bin"),
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    xattrs
}

/// Asserts two trees are equal in names, kinds, content, modes, mtimes, link targets,
/// hard links and (optionally) xattrs.
pub fn assert_same_tree(a: &Path, b: &Path, check_xattrs: bool) {
    let list = |root: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.symlink_metadata().unwrap().is_dir() {
                    stack.push(path.clone());
                }
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
        out.sort();
        out
    };
    let left = list(a);
    assert_eq!(left, list(b), "different entries");
    for rel in &left {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            pa.symlink_metadata().unwrap(),
            pb.symlink_metadata().unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", rel.display());
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", rel.display());
        if ma.is_file() {
            assert_eq!(
                std::fs::read(&pa).unwrap(),
                std::fs::read(&pb).unwrap(),
                "content of {}",
                rel.display()
            );
            assert_eq!(ma.nlink(), mb.nlink(), "links of {}", rel.display());
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap()
            );
        }
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            rel.display()
        );
        if check_xattrs && !ma.file_type().is_symlink() {
            let xa: Vec<_> = xattr::list(&pa).unwrap().collect();
            let xb: Vec<_> = xattr::list(&pb).unwrap().collect();
            assert_eq!(xa, xb, "xattrs of {}", rel.display());
        }
    }
}

/// The full round trip every store must pass: back up a tree with every kind of entry,
/// restore and verify it, then unchanged, changed and forced re-backups.
pub async fn roundtrip(storage: Storage) {
    let source = tempfile::tempdir().unwrap();
    let xattrs = make_tree(source.path());
    let repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let report = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    assert!(report.issues.is_empty(), "{:?}", report.issues);
    assert!(!report.snapshot.incomplete);
    let summary = report.snapshot.summary.clone().unwrap();
    assert_eq!(summary.files_new, 8, "{summary:?}");
    // big.bin and same-as-big.bin dedup; the sparse hole is one zero chunk.
    assert!(summary.data_added < 1_500_000 + 2_000_000, "{summary:?}");

    // Reopen from scratch, as another process would.
    let repo = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    let index = repo.load_index().await.unwrap();
    let snapshots = repo
        .list_snapshots(&SnapshotFilter::default())
        .await
        .unwrap();
    assert_eq!(snapshots.len(), 1);
    let target = tempfile::tempdir().unwrap();
    let restored = repo
        .restore(
            Arc::clone(&index),
            &snapshots[0].snapshot,
            target.path(),
            RestoreOptions {
                verify: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    assert_eq!(restored.files_verified, 7, "{restored:?}");
    // Absolute paths are restored under their full path, as restic does.
    let restored_root = target.path().join(source.path().strip_prefix("/").unwrap());
    assert_same_tree(source.path(), &restored_root, xattrs);
    let sparse = restored_root.join("sparse.img").metadata().unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "sparse file restored with {} blocks",
        sparse.blocks()
    );
    let a = restored_root.join("small.txt").metadata().unwrap();
    let b = restored_root.join("dir/hardlink.txt").metadata().unwrap();
    assert_eq!(a.ino(), b.ino(), "hard link relinked");

    // Unchanged second backup: nothing read, nothing added, same root tree.
    let report2 = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let s2 = report2.snapshot.summary.clone().unwrap();
    assert_eq!(s2.files_unmodified, 8, "{s2:?}");
    // No content is new; only the trees above the source (whose directory, /tmp, changed
    // when the restore target was created there) may be.
    assert_eq!(s2.data_blobs, 0, "{s2:?}");
    assert!(s2.tree_blobs <= 2, "{s2:?}");
    assert_eq!(s2.dirs_unmodified + s2.dirs_changed, 5, "{s2:?}");
    assert!(s2.dirs_unmodified >= 3, "{s2:?}");
    assert_eq!(
        report2.snapshot.parent.as_deref(),
        Some(snapshots[0].id.as_str())
    );

    // Change one file: only it is read.
    std::fs::write(source.path().join("dir/sub/text.log"), b"changed").unwrap();
    let report3 = repo
        .backup(&[source.path().to_path_buf()], BackupOptions::default())
        .await
        .unwrap();
    let s3 = report3.snapshot.summary.unwrap();
    assert_eq!((s3.files_changed, s3.files_unmodified), (1, 7), "{s3:?}");
    let forced = repo
        .backup(
            &[source.path().to_path_buf()],
            BackupOptions {
                force: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(forced.snapshot.summary.unwrap().files_new, 8);
    assert!(forced.snapshot.parent.is_none());
}

/// Timings for tests: no clock margin, so packs written a moment ago may be pruned.
pub fn test_timings() -> LockTimings {
    LockTimings {
        clock_margin: Duration::ZERO,
        ..LockTimings::default()
    }
}

pub async fn open_for_prune(storage: Storage) -> Repository {
    let mut repo = Repository::open(storage, PASSWORD).await.unwrap();
    repo.set_lock_timings(test_timings());
    repo
}

/// Replaces the files in `dir` with `f<seed>.bin` of 300 kB noise each.
pub fn write_files(dir: &Path, seeds: &[u64]) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for seed in seeds {
        std::fs::write(dir.join(format!("f{seed}.bin")), noise(300_000, *seed)).unwrap();
    }
}

/// `check --read-data` finds nothing.
pub async fn assert_healthy(repo: &Repository) {
    let report = repo
        .check(&CheckOptions {
            read_data: ReadData::All,
        })
        .await
        .unwrap();
    assert!(report.is_ok(), "{:#?}", report.findings);
}

/// Restores every snapshot and compares it with the source state it was taken of.
pub async fn assert_restores(repo: &Repository, expected: &[(SnapshotId, Vec<u64>)]) {
    assert_restores_files(repo, expected, |seed| {
        (format!("f{seed}.bin"), noise(300_000, seed))
    })
    .await;
}

/// Restores every snapshot (with verification) and checks that it holds, for each of its
/// numbers, the file `file(number)` names with the content it gives.
pub async fn assert_restores_files(
    repo: &Repository,
    expected: &[(SnapshotId, Vec<u64>)],
    file: impl Fn(u64) -> (String, Vec<u8>),
) {
    let index = repo.load_index().await.unwrap();
    for (id, numbers) in expected {
        let entry = repo
            .find_snapshot(id.as_str(), &SnapshotFilter::default())
            .await
            .unwrap();
        let target = tempfile::tempdir().unwrap();
        let report = repo
            .restore(
                Arc::clone(&index),
                &entry.snapshot,
                target.path(),
                RestoreOptions {
                    verify: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let root = target
            .path()
            .join(entry.snapshot.paths[0].trim_start_matches('/'));
        for number in numbers {
            let (name, content) = file(*number);
            let got = std::fs::read(root.join(&name)).unwrap();
            assert!(got == content, "snapshot {id}: {name} differs");
        }
    }
}

/// Bytes of all packs in storage.
pub async fn total_pack_bytes(repo: &Repository) -> u64 {
    repo.storage()
        .list(FileType::Pack)
        .await
        .unwrap()
        .iter()
        .map(|l| l.size)
        .sum()
}

/// A `Write` into shared memory (dump_tar wants an owned, `'static` writer).
#[derive(Clone, Default)]
pub struct SharedBuffer(pub std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
