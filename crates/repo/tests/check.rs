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
