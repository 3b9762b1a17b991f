//! `check` finds every injected fault: a flipped byte in a pack, a deleted pack, a deleted
//! index file; and names the snapshots and files each one breaks.

mod common;

use std::path::{Path, PathBuf};

use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::check::{CheckOptions, Finding, ReadData};
use cairn_repo::{BlobType, Repository, Storage};
use common::*;

struct Fixture {
    _dir: tempfile::TempDir,
    repo_dir: PathBuf,
    repo: Repository,
    source: PathBuf,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let repo_dir = dir.path().join("repo");
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("one.bin"), noise(400_000, 1)).unwrap();
    std::fs::write(source.join("two.bin"), noise(400_000, 2)).unwrap();
    let storage = Storage::open_or_create(repo_dir.to_str().unwrap()).unwrap();
    let repo = Repository::init(storage, PASSWORD, fast_init())
        .await
        .unwrap();
    repo.backup(std::slice::from_ref(&source), BackupOptions::default())
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        repo_dir,
        repo,
        source,
    }
}

fn pack_path(repo: &Path, hex: &str) -> PathBuf {
    repo.join("data").join(&hex[..2]).join(hex)
}

async fn data_pack_of(f: &Fixture) -> (String, u32) {
    let index = f.repo.load_index().await.unwrap();
    let location = index
        .iter()
        .find(|l| l.entry.blob_type == BlobType::Data)
        .unwrap();
    (location.pack.to_hex(), location.entry.offset)
}

#[tokio::test(flavor = "multi_thread")]
async fn clean_repository_passes_with_read_data() {
    let f = fixture().await;
    let report = f
        .repo
        .check(&CheckOptions {
            read_data: ReadData::All,
        })
        .await
        .unwrap();
    assert!(report.is_ok(), "{:?}", report.findings);
    assert!(report.packs_indexed >= 2);
    assert_eq!(report.packs_read, report.packs_indexed);
    assert_eq!(report.snapshots_checked, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn flipped_byte_in_a_pack_is_found_and_attributed() {
    let f = fixture().await;
    let (pack, offset) = data_pack_of(&f).await;
    let path = pack_path(&f.repo_dir, &pack);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[offset as usize + 100] ^= 0x04;
    std::fs::write(&path, bytes).unwrap();

    let structural = f.repo.check(&CheckOptions::default()).await.unwrap();
    assert!(
        structural.is_ok(),
        "a data-region flip leaves the header intact: {:?}",
        structural.findings
    );

    let report = f
        .repo
        .check(&CheckOptions {
            read_data: ReadData::All,
        })
        .await
        .unwrap();
    assert!(!report.is_ok());
    let text: Vec<String> = report.findings.iter().map(|x| x.to_string()).collect();
    assert!(
        report
            .findings
            .iter()
            .any(|x| matches!(x, Finding::PackDamaged { .. })),
        "{text:?}"
    );
    assert!(
        report
            .findings
            .iter()
            .any(|x| matches!(x, Finding::BlobDamaged { .. })),
        "{text:?}"
    );
    let broken: Vec<_> = report
        .findings
        .iter()
        .filter_map(|x| match x {
            Finding::FileDamaged { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect();
    assert!(!broken.is_empty(), "{text:?}");
    assert!(
        broken
            .iter()
            .all(|p| p.starts_with(f.source.to_str().unwrap())),
        "{broken:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_pack_is_found() {
    let f = fixture().await;
    let (pack, _) = data_pack_of(&f).await;
    std::fs::remove_file(pack_path(&f.repo_dir, &pack)).unwrap();
    let report = f.repo.check(&CheckOptions::default()).await.unwrap();
    assert!(!report.is_ok());
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::PackMissing { pack: p, .. } if p.to_hex() == pack)));
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::FileDamaged { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn deleted_index_file_is_found() {
    let f = fixture().await;
    let index_dir = f.repo_dir.join("index");
    for entry in std::fs::read_dir(&index_dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let report = f.repo.check(&CheckOptions::default()).await.unwrap();
    assert!(!report.is_ok());
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::PackNotIndexed { .. })));
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::TreeDamaged { .. } | Finding::FileDamaged { .. })));
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_index_file_is_reported_not_fatal() {
    let f = fixture().await;
    let index_dir = f.repo_dir.join("index");
    let file = std::fs::read_dir(&index_dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let report = f.repo.check(&CheckOptions::default()).await.unwrap();
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::IndexFileDamaged { .. })));
    assert!(!report.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_index_rebuilds_a_lost_index_from_the_packs() {
    let f = fixture().await;
    for entry in std::fs::read_dir(f.repo_dir.join("index")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    assert!(!f
        .repo
        .check(&CheckOptions::default())
        .await
        .unwrap()
        .is_ok());
    let report = f.repo.repair_index().await.unwrap();
    assert!(report.packs_indexed >= 2, "{report:?}");
    assert!(report.packs_unreadable.is_empty());
    let check = f
        .repo
        .check(&CheckOptions {
            read_data: ReadData::All,
        })
        .await
        .unwrap();
    assert!(check.is_ok(), "{:?}", check.findings);
}

#[tokio::test(flavor = "multi_thread")]
async fn repair_snapshots_cuts_lost_data_and_says_so() {
    use cairn_repo::ops::repair::RepairSnapshotsOptions;
    use cairn_repo::ops::restore::RestoreOptions;
    use cairn_repo::SnapshotFilter;

    let f = fixture().await;
    // Lose the pack holding the first data blob of one.bin or two.bin.
    let (pack, _) = data_pack_of(&f).await;
    std::fs::remove_file(pack_path(&f.repo_dir, &pack)).unwrap();
    f.repo.repair_index().await.unwrap();

    let dry = f
        .repo
        .repair_snapshots(
            &SnapshotFilter::default(),
            &RepairSnapshotsOptions {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(dry.len(), 1);
    assert!(dry[0].repaired.is_none());
    assert!(
        dry[0].damage.iter().any(|d| d.contains("truncated")),
        "{dry:?}"
    );

    let done = f
        .repo
        .repair_snapshots(
            &SnapshotFilter::default(),
            &RepairSnapshotsOptions {
                forget: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(done[0].damage, dry[0].damage);
    let snapshots = f
        .repo
        .list_snapshots(&SnapshotFilter::default())
        .await
        .unwrap();
    assert_eq!(snapshots.len(), 1, "the damaged original was forgotten");
    let repaired = &snapshots[0];
    assert_eq!(Some(&repaired.id), done[0].repaired.as_ref());
    assert!(repaired.snapshot.tags.contains(&"repaired".to_string()));
    assert_eq!(
        repaired.snapshot.original.as_deref(),
        Some(done[0].original.as_str())
    );
    let check = f
        .repo
        .check(&CheckOptions {
            read_data: ReadData::All,
        })
        .await
        .unwrap();
    assert!(check.is_ok(), "{:?}", check.findings);
    // What survived restores: an intact file whole, the damaged one truncated.
    let target = tempfile::tempdir().unwrap();
    let index = f.repo.load_index().await.unwrap();
    let restored = f
        .repo
        .restore(
            index,
            &repaired.snapshot,
            target.path(),
            RestoreOptions::default(),
        )
        .await
        .unwrap();
    assert!(restored.errors.is_empty(), "{:?}", restored.errors);
    let root = target.path().join(f.source.strip_prefix("/").unwrap());
    // Each file is the original or a prefix of it, and each cut file is named in the damage.
    for (name, seed) in [("one.bin", 1), ("two.bin", 2)] {
        let got = std::fs::read(root.join(name)).unwrap();
        let original = noise(400_000, seed);
        assert!(
            original.starts_with(&got),
            "{name} is not a prefix of the original"
        );
        if got.len() < original.len() {
            assert!(
                done[0]
                    .damage
                    .iter()
                    .any(|d| d.contains(name) && d.contains(&format!("to {} bytes", got.len()))),
                "{name} cut to {} without saying so: {:?}",
                got.len(),
                done[0].damage
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn damaged_key_file_is_found() {
    let f = fixture().await;
    let id = f
        .repo
        .add_key(
            b"second",
            cairn_repo::KdfParams::insecure_for_tests(64, 1, 1).unwrap(),
        )
        .await
        .unwrap();
    let path = f.repo_dir.join("keys").join(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[3] ^= 0x10;
    std::fs::write(&path, bytes).unwrap();
    let report = f.repo.check(&CheckOptions::default()).await.unwrap();
    assert!(!report.is_ok());
    assert!(report
        .findings
        .iter()
        .any(|x| matches!(x, Finding::KeyFileDamaged { file, .. } if *file == id)));
}
