//! A hostile store (write access to the bucket, no key) costs nothing: planted or renamed key
//! files are not derived, hostile KDF costs are refused unread, at most `MAX_KEYS_TRIED` key
//! files are tried (the hinted or remembered key first), new keys are not weaker than the
//! floor (`check` warns about old ones), and a local repository is private to its owner.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use bytes::Bytes;
use cairn_repo::ops::backup::BackupOptions;
use cairn_repo::ops::check::{CheckOptions, Finding};
use cairn_repo::{
    ErrorKind, FileType, KdfParams, OpenOptions, Repository, Storage, MAX_KEYS_TRIED,
};
use common::*;

fn fast() -> KdfParams {
    KdfParams::insecure_for_tests(64, 1, 1).unwrap()
}

async fn key_names(storage: &Storage) -> Vec<String> {
    storage
        .list(FileType::Key)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect()
}

async fn put_key(storage: &Storage, name: &str, bytes: Vec<u8>) {
    storage
        .overwrite(FileType::Key, name, Bytes::from(bytes).into())
        .await
        .unwrap();
}

fn content_id(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn renamed_key_file_is_skipped_without_deriving() {
    let storage = Storage::in_memory();
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let real = key_names(&storage).await.remove(0);
    let bytes = storage.get(FileType::Key, &real).await.unwrap().to_vec();
    // The very key file that opens the repository, under a name that is not its hash (as a
    // revoked key copied back, or a key file altered in place, would be).
    let planted = "0".repeat(64);
    put_key(&storage, &planted, bytes).await;
    storage.delete(FileType::Key, &real).await.unwrap();

    let err = Repository::open(storage.clone(), PASSWORD)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    let text = err.to_string();
    assert!(
        text.contains("ran the key derivation on 0 of 1 key files"),
        "{text}"
    );
    assert!(
        text.contains(&format!("keys/{planted} (content does not match its name")),
        "{text}"
    );
    assert!(text.contains(&format!("hashes to {real}")), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_key_files_cost_no_derivation_and_the_real_key_still_opens() {
    let storage = Storage::in_memory();
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let real = key_names(&storage).await.remove(0);
    let bytes = storage.get(FileType::Key, &real).await.unwrap().to_vec();
    let mut planted = Vec::new();
    // Costs above the ceiling (1 GiB × 64 passes was accepted before), correctly named: a
    // hostile store can hash what it writes.
    for (m, t) in [(1024 * 1024, 64), (256 * 1024, 5)] {
        let mut hostile = bytes.clone();
        hostile[10..14].copy_from_slice(&u32::to_le_bytes(m));
        hostile[14..18].copy_from_slice(&u32::to_le_bytes(t));
        let name = content_id(&hostile);
        put_key(&storage, &name, hostile).await;
        planted.push(name);
    }
    // Larger than any key file: not even downloaded.
    let huge = vec![0u8; cairn_pack::MAX_KEY_FILE_LEN + 1];
    let name = content_id(&huge);
    put_key(&storage, &name, huge).await;
    planted.push(name);

    let err = Repository::open(storage.clone(), b"wrong")
        .await
        .unwrap_err();
    let text = err.to_string();
    // Only the real key was derived.
    assert!(
        text.contains("ran the key derivation on 1 of 4 key files"),
        "{text}"
    );
    for name in &planted {
        assert!(text.contains(&format!("keys/{name}")), "{name}: {text}");
    }
    assert!(text.contains("above the ceiling"), "{text}");
    assert!(text.contains("larger than any key file"), "{text}");
    let repo = Repository::open(storage.clone(), PASSWORD).await.unwrap();
    // check reports the planted files as damaged key files.
    let report = repo.check(&CheckOptions::default()).await.unwrap();
    for name in &planted {
        assert!(
            report
                .findings
                .iter()
                .any(|f| matches!(f, Finding::KeyFileDamaged { file, .. } if file == name)),
            "{name}: {:?}",
            report.findings
        );
    }
}

/// A repository with more keys than are tried per open, each with its own password.
/// Returns the storage and the key that sorts last with its password.
async fn many_keys() -> (Storage, String, Vec<u8>) {
    let storage = Storage::in_memory();
    let repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let mut passwords = std::collections::HashMap::new();
    passwords.insert(key_names(&storage).await.remove(0), PASSWORD.to_vec());
    for i in 0..MAX_KEYS_TRIED + 5 {
        let password = format!("node {i}").into_bytes();
        let id = repo.add_key(&password, fast()).await.unwrap();
        passwords.insert(id, password);
    }
    let last = key_names(&storage).await.pop().unwrap();
    let password = passwords.remove(&last).unwrap();
    (storage, last, password)
}

#[tokio::test(flavor = "multi_thread")]
async fn at_most_max_keys_are_tried_and_a_hint_finds_the_rest() {
    let (storage, last, password) = many_keys().await;
    let total = MAX_KEYS_TRIED + 6;

    let err = Repository::open(storage.clone(), b"no such password")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "ran the key derivation on {MAX_KEYS_TRIED} of {total} key files"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("stopped after {MAX_KEYS_TRIED} of {total}")),
        "{text}"
    );
    assert!(text.contains("--key-hint"), "{text}");

    // The key that sorts last is beyond the limit without a hint...
    let err = Repository::open(storage.clone(), &password)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stopped after"), "{err}");
    // ...and found first with one (a unique prefix will do).
    let hinted = OpenOptions {
        key_hint: Some(last[..8].to_string()),
        cache_dir: None,
        ..Default::default()
    };
    Repository::open_with(storage.clone(), &password, &hinted)
        .await
        .unwrap();
    // A hint that matches nothing is passed over, and said so if nothing opens.
    let unknown = OpenOptions {
        key_hint: Some("ffffffffffff".into()),
        cache_dir: None,
        ..Default::default()
    };
    let err = Repository::open_with(storage.clone(), &password, &unknown)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("key hint \"ffffffffffff\" matches no key file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_key_that_opened_is_remembered_per_repository() {
    let (storage, last, password) = many_keys().await;
    let cache = tempfile::tempdir().unwrap();
    let remembering = OpenOptions {
        key_hint: None,
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    // Nothing remembered yet: beyond the limit.
    assert!(
        Repository::open_with(storage.clone(), &password, &remembering)
            .await
            .is_err()
    );
    // Opened once with a hint...
    let hinted = OpenOptions {
        key_hint: Some(last.clone()),
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    Repository::open_with(storage.clone(), &password, &hinted)
        .await
        .unwrap();
    // ...the key is tried first next time, without one.
    Repository::open_with(storage.clone(), &password, &remembering)
        .await
        .unwrap();
    // One small file per repository, named by the config object's hash, private.
    let config = storage.get(FileType::Config, "").await.unwrap();
    let hint_file = cache.path().join(content_id(&config)).join("key-hint");
    assert_eq!(
        std::fs::read_to_string(&hint_file).unwrap().trim(),
        last.as_str()
    );
    assert_eq!(mode(&hint_file), 0o600);
    assert_eq!(mode(hint_file.parent().unwrap()), 0o700);
    // Another repository does not use it.
    let other = Storage::in_memory();
    Repository::init(other.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    Repository::open_with(other.clone(), PASSWORD, &remembering)
        .await
        .unwrap();
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 2);
    // A cache that cannot be written is no error.
    let unwritable = OpenOptions {
        key_hint: None,
        cache_dir: Some("/proc/self/cairn-cache".into()),
        ..Default::default()
    };
    Repository::open_with(other, PASSWORD, &unwritable)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn new_keys_below_the_floor_are_refused() {
    // What was accepted before: 8 MiB × 1 pass.
    let weak = KdfParams::new(8 * 1024, 1, 1).unwrap();
    let storage = Storage::in_memory();
    let err = Repository::init(
        storage.clone(),
        PASSWORD,
        cairn_repo::InitOptions {
            kdf: weak,
            ..fast_init()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("below the floor"), "{err}");
    assert!(key_names(&storage).await.is_empty());
    assert!(!storage.exists(FileType::Config, "").await.unwrap());

    let mut repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let err = repo.add_key(b"another", weak).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = repo.change_password(b"another", weak).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(key_names(&storage).await.len(), 1);
    // At the floor is fine (OWASP's 19 MiB × 2).
    let floor = KdfParams::new(19 * 1024, 2, 1).unwrap();
    repo.add_key(b"another", floor).await.unwrap();
    assert_eq!(key_names(&storage).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_warns_about_weak_keys() {
    let storage = Storage::in_memory();
    let mut repo = Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    let weak = key_names(&storage).await.remove(0);
    let report = repo.check(&CheckOptions::default()).await.unwrap();
    assert!(
        report.is_ok(),
        "a weak key is a warning: {:?}",
        report.findings
    );
    let warning = report
        .findings
        .iter()
        .find(|f| matches!(f, Finding::KeyWeak { file, .. } if *file == weak))
        .unwrap_or_else(|| panic!("{:?}", report.findings));
    assert!(!warning.is_error());
    let text = warning.to_string();
    assert!(
        text.contains("is weak") && text.contains("64 KiB × 1 passes"),
        "{text}"
    );
    // Replaced by a key at the floor: no warning.
    repo.change_password(b"stronger", KdfParams::new(19 * 1024, 2, 1).unwrap())
        .await
        .unwrap();
    let report = repo.check(&CheckOptions::default()).await.unwrap();
    assert!(
        !report
            .findings
            .iter()
            .any(|f| matches!(f, Finding::KeyWeak { .. })),
        "{:?}",
        report.findings
    );
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread")]
async fn local_repository_files_are_0600_and_directories_0700() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let source = dir.path().join("source");
    write_files(&source, &[1, 2, 3]);
    let storage = Storage::open_or_create(root.to_str().unwrap()).unwrap();
    let repo = Repository::init(storage, PASSWORD, fast_init())
        .await
        .unwrap();
    repo.backup(std::slice::from_ref(&source), BackupOptions::default())
        .await
        .unwrap();
    repo.add_key(b"second", fast()).await.unwrap();
    repo.check_and_record(&CheckOptions::default())
        .await
        .unwrap()
        .1
        .unwrap();

    let (mut files, mut dirs) = (0, 0);
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        assert_eq!(mode(&dir), 0o700, "{}", dir.display());
        dirs += 1;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.symlink_metadata().unwrap().is_dir() {
                stack.push(path);
            } else {
                assert_eq!(mode(&path), 0o600, "{}", path.display());
                files += 1;
            }
        }
    }
    // config, 2 keys, packs, an index, a snapshot, a check record; root, keys, data, data/xx,
    // index, snapshots, checks.
    assert!(files >= 7 && dirs >= 7, "{files} files, {dirs} dirs");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// Planted garbage, under its own hash or under any other name, never costs a derivation,
    /// never stops the real key from opening, and is named when nothing opens.
    #[test]
    fn planted_garbage_costs_no_derivation(
        files in proptest::collection::vec(
            (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400), proptest::prelude::any::<bool>(), "[0-9a-f]{64}"),
            1..8,
        ),
    ) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let storage = Storage::in_memory();
            Repository::init(storage.clone(), PASSWORD, fast_init()).await.unwrap();
            let mut planted = Vec::new();
            for (bytes, named_by_hash, other_name) in files {
                let name = if named_by_hash { content_id(&bytes) } else { other_name };
                if storage.exists(FileType::Key, &name).await.unwrap() {
                    continue;
                }
                put_key(&storage, &name, bytes).await;
                planted.push(name);
            }
            let total = planted.len() + 1;
            let err = Repository::open(storage.clone(), b"wrong").await.unwrap_err();
            let text = err.to_string();
            assert!(
                text.contains(&format!("ran the key derivation on 1 of {total} key files")),
                "{text}"
            );
            for name in &planted {
                assert!(text.contains(&format!("keys/{name}")), "{name}: {text}");
            }
            Repository::open(storage, PASSWORD).await.unwrap();
        });
    }
}
