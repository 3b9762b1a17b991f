//! The local metadata cache: a warm cache serves index files, snapshots and trees without
//! requests; a deleted, stale, shared or tampered cache never changes a result.

mod common;

use std::path::{Path, PathBuf};

use cairn_repo::ops::check::CheckOptions;
use cairn_repo::ops::prune::{MaxUnused, PruneOptions};
use cairn_repo::{FileType, OpenOptions, Repository, Storage};
use common::{assert_same_tree, fast_init, make_tree, write_files, PASSWORD};

fn cached(dir: &Path) -> OpenOptions {
    OpenOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..Default::default()
    }
}

/// A new in-memory repository's storage.
async fn new_repository() -> Storage {
    let storage = Storage::in_memory();
    Repository::init(storage.clone(), PASSWORD, fast_init())
        .await
        .unwrap();
    storage
}

async fn open(storage: &Storage, cache: &Path) -> Repository {
    Repository::open_with(storage.clone(), PASSWORD, &cached(cache))
        .await
        .unwrap()
}

/// A new repository with `first` backed up by a host with a cache (`cache`), and `second`
/// written but not backed up; all below `dir`.
async fn first_backup(dir: &Path) -> (Storage, PathBuf, Repository, PathBuf, PathBuf) {
    let (first, second) = (dir.join("first"), dir.join("second"));
    write_files(&first, &[1, 2, 3]);
    write_files(&second, &[4, 5]);
    let storage = new_repository().await;
    let cache = dir.join("cache");
    let here = open(&storage, &cache).await;
    here.backup(std::slice::from_ref(&first), Default::default())
        .await
        .unwrap();
    (storage, cache, here, first, second)
}

/// Another host, with its own cache below `dir`, backs up `source`; returns its handle.
async fn other_host_backs_up(storage: &Storage, dir: &Path, source: &Path) -> Repository {
    let other = open(storage, &dir.join("other-cache")).await;
    other
        .backup(&[source.to_path_buf()], Default::default())
        .await
        .unwrap();
    other
}

/// `other` forgets the oldest snapshot and prunes everything unused: index files are
/// replaced and packs deleted.
async fn forget_oldest_and_prune(other: &Repository) {
    let mut snapshots = other.list_snapshots(&Default::default()).await.unwrap();
    snapshots.sort_by_key(|s| s.snapshot.time);
    other.delete_snapshot(&snapshots[0].id).await.unwrap();
    other
        .prune(&PruneOptions {
            max_unused: MaxUnused::Bytes(0),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Restores `latest` into a fresh directory below `dir` and compares it with `source`.
async fn assert_restores(repo: &Repository, source: &Path, dir: &Path, name: &str) {
    let target = dir.join(name);
    repo.restore_spec("latest", &target, Default::default())
        .await
        .unwrap();
    assert_same_tree(
        source,
        &target.join(source.strip_prefix("/").unwrap()),
        false,
    );
}

/// Every cached file of one kind (`index`, `snapshots`, `trees`).
fn cached_files(repo: &Repository, kind: &str) -> Vec<std::path::PathBuf> {
    let dir = repo.cache().expect("a cache").dir().join(kind);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_cache_reads_no_metadata_and_a_tampered_one_is_refetched() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    make_tree(&source);
    let storage = new_repository().await;
    let cache = dir.path().join("cache");
    let repo = open(&storage, &cache).await;
    repo.backup(std::slice::from_ref(&source), Default::default())
        .await
        .unwrap();
    assert_restores(&repo, &source, dir.path(), "cold").await;

    // Warm: a second run reads no index file, snapshot or tree from the store.
    let repo = open(&storage, &cache).await;
    let before = storage.requests();
    assert_restores(&repo, &source, dir.path(), "warm").await;
    let made = storage.requests().since(&before);
    assert_eq!(made.gets(FileType::Index), 0, "{made:?}");
    assert_eq!(made.gets(FileType::Snapshot), 0, "{made:?}");
    let data_packs = repo.list_packs().await.unwrap().len() as u64;
    // Only data reads reach the packs (at most one per pack): no tree read does.
    assert!(made.gets(FileType::Pack) <= data_packs, "{made:?}");

    // check reads around this cache, through one of its own: every tree pack once (whole),
    // and every pack's header (one or two ranged reads), not one read per tree.
    let tree_packs = cached_files(&repo, "trees").len() as u64;
    let packs = repo.list_packs().await.unwrap().len() as u64;
    let before = storage.requests();
    assert!(repo.check(&CheckOptions::default()).await.unwrap().is_ok());
    let made = storage.requests().since(&before);
    assert!(
        made.gets(FileType::Index) >= 1,
        "check read the index from the store"
    );
    assert!(
        made.gets(FileType::Pack) <= tree_packs + 2 * packs,
        "{made:?}"
    );
    assert!(
        !std::fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .any(|e| e.path().join("check").exists()),
        "check's own cache is gone"
    );

    // Tampered entries (a planted index file, damaged tree packs) fail authentication, are
    // refetched, and the result is the same.
    // (The index tables are removed too, so that the index files are read again.)
    let indexes = cached_files(&repo, "index");
    std::fs::write(&indexes[0], b"planted").unwrap();
    std::fs::remove_dir_all(repo.cache().unwrap().index_table_dir()).unwrap();
    for tree_pack in cached_files(&repo, "trees") {
        let mut bytes = std::fs::read(&tree_pack).unwrap();
        bytes[10] ^= 0xff;
        std::fs::write(&tree_pack, bytes).unwrap();
    }
    let repo = open(&storage, &cache).await;
    let before = storage.requests();
    assert_restores(&repo, &source, dir.path(), "tampered").await;
    let made = storage.requests().since(&before);
    assert!(made.gets(FileType::Index) >= 1, "{made:?}");
    assert_ne!(std::fs::read(&indexes[0]).unwrap(), b"planted");

    // Deleted: the next run starts over.
    std::fs::remove_dir_all(&cache).unwrap();
    let repo = open(&storage, &cache).await;
    assert_restores(&repo, &source, dir.path(), "deleted").await;
    assert!(!cached_files(&repo, "trees").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_hosts_backup_and_a_prune_are_seen_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, cache, here, _, second) = first_backup(dir.path()).await;
    assert_eq!(
        here.list_snapshots(&Default::default())
            .await
            .unwrap()
            .len(),
        1
    );

    // Another host (its own cache) backs up: this host's cache does not hide it.
    let other = other_host_backs_up(&storage, dir.path(), &second).await;
    let here = open(&storage, &cache).await;
    assert_eq!(
        here.list_snapshots(&Default::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_restores(&here, &second, dir.path(), "restored-second").await;

    // The other host forgets the first snapshot and prunes: index files are replaced and
    // packs deleted. This host's cached index files go with the listing, and what it
    // reads is the repository as it is now.
    forget_oldest_and_prune(&other).await;
    let here = open(&storage, &cache).await;
    let index = here.load_index().await.unwrap();
    let listed = here.storage().list(FileType::Index).await.unwrap();
    let mut cached: Vec<String> = cached_files(&here, "index")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    cached.sort();
    let mut names: Vec<String> = listed.into_iter().map(|l| l.name).collect();
    names.sort();
    assert_eq!(
        cached, names,
        "the cache holds exactly the listed index files"
    );
    assert!(!index.is_empty());
    assert_restores(&here, &second, dir.path(), "after-prune").await;
    assert!(here.check(&CheckOptions::default()).await.unwrap().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_judges_the_store_not_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    write_files(&source, &[9]);
    let storage = new_repository().await;
    let cache = dir.path().join("cache");
    let repo = open(&storage, &cache).await;
    repo.backup(&[source], Default::default()).await.unwrap();
    repo.list_snapshots(&Default::default()).await.unwrap();
    // The store's snapshot is damaged; this host's cache still holds the good copy.
    let snapshot = storage.list(FileType::Snapshot).await.unwrap()[0]
        .name
        .clone();
    storage
        .overwrite(FileType::Snapshot, &snapshot, b"damaged".to_vec().into())
        .await
        .unwrap();
    let report = repo.check(&CheckOptions::default()).await.unwrap();
    assert!(!report.is_ok(), "check trusted the cache: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_one_cache() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    make_tree(&source);
    let storage = new_repository().await;
    let cache = dir.path().join("cache");
    open(&storage, &cache)
        .await
        .backup(std::slice::from_ref(&source), Default::default())
        .await
        .unwrap();
    // Two handles with the same cache directory fill it at the same time.
    let (a, b) = (open(&storage, &cache).await, open(&storage, &cache).await);
    let (ta, tb) = (dir.path().join("a"), dir.path().join("b"));
    let (ra, rb) = tokio::join!(
        a.restore_spec("latest", &ta, Default::default()),
        b.restore_spec("latest", &tb, Default::default())
    );
    ra.unwrap();
    rb.unwrap();
    let rel = source.strip_prefix("/").unwrap();
    assert_same_tree(&source, &ta.join(rel), false);
    assert_same_tree(&source, &tb.join(rel), false);
}

/// Every index table in a repository's cache.
fn index_tables(repo: &Repository) -> Vec<std::path::PathBuf> {
    cached_files(repo, "index-tables")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "table"))
        .collect()
}

/// The cached index (mapped from tables) holds exactly the blobs of the store's index files.
async fn assert_index_matches_the_store(repo: &Repository) -> std::sync::Arc<cairn_repo::Index> {
    let mapped = repo.load_index().await.unwrap();
    assert!(mapped.is_mapped());
    let heap = repo.uncached().load_index().await.unwrap();
    assert!(!heap.is_mapped());
    for location in heap.iter() {
        let found = mapped
            .get(&location.entry.id)
            .expect("every stored blob is found");
        assert!(heap.packs().contains(&found.pack));
    }
    for location in mapped.iter() {
        assert!(
            heap.contains(&location.entry.id),
            "a blob no index file lists"
        );
    }
    mapped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_tables_follow_the_listing_and_survive_tampering_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let (storage, cache, here, _, second) = first_backup(dir.path()).await;
    assert_index_matches_the_store(&here).await;
    assert_eq!(index_tables(&here).len(), 1);

    // A warm run reads no index file, not even from the cache: the table covers them all.
    let here = open(&storage, &cache).await;
    for file in cached_files(&here, "index") {
        std::fs::write(file, b"never read").unwrap();
    }
    let before = storage.requests();
    assert!(here.load_index().await.unwrap().is_mapped());
    assert_eq!(storage.requests().since(&before).gets(FileType::Index), 0);
    assert_index_matches_the_store(&here).await;

    // Another host's backup adds an index file: this host's table does not cover it, so it
    // is read and added.
    let other = other_host_backs_up(&storage, dir.path(), &second).await;
    let here = open(&storage, &cache).await;
    assert_index_matches_the_store(&here).await;
    assert_restores(&here, &second, dir.path(), "restored-second").await;

    // A damaged table fails its MAC, is deleted and rebuilt; the index is unchanged.
    let mut damaged = Vec::new();
    for table in index_tables(&here) {
        let mut bytes = std::fs::read(&table).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0x10;
        std::fs::write(&table, &bytes).unwrap();
        damaged.push((table, bytes));
    }
    assert_index_matches_the_store(&here).await;
    for (table, bytes) in &damaged {
        // Rebuilt under the same name, or merged into another: never left damaged.
        if let Ok(now) = std::fs::read(table) {
            assert_ne!(&now, bytes, "a damaged table was kept");
        }
    }
    assert_restores(&here, &second, dir.path(), "after-tamper").await;

    // Deleted: rebuilt from the cached index files, with no request for them.
    std::fs::remove_dir_all(here.cache().unwrap().index_table_dir()).unwrap();
    let before = storage.requests();
    assert!(here.load_index().await.unwrap().is_mapped());
    assert_eq!(storage.requests().since(&before).gets(FileType::Index), 0);
    assert_eq!(index_tables(&here).len(), 1);
    assert_index_matches_the_store(&here).await;

    // The other host forgets the first snapshot and prunes: the index files this host's
    // tables cover are replaced, so the tables are stale; none survives that covers a
    // removed index file, and no removed pack is found.
    forget_oldest_and_prune(&other).await;
    let here = open(&storage, &cache).await;
    let mapped = assert_index_matches_the_store(&here).await;
    let packs = here.list_packs().await.unwrap();
    for location in mapped.iter() {
        assert!(packs.iter().any(|p| p.id == location.pack), "a pruned pack");
    }
    assert_restores(&here, &second, dir.path(), "after-prune").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prune_replacing_index_files_under_a_backup_using_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    write_files(&first, &[1, 2]);
    write_files(&second, &[3, 4]);
    let storage = new_repository().await;
    let cache = dir.path().join("cache");
    let here = open(&storage, &cache).await;
    for source in [&first, &second] {
        here.backup(std::slice::from_ref(source), Default::default())
            .await
            .unwrap();
    }
    // A backup holds the mapped index while a prune elsewhere replaces every index file,
    // and a third process sharing this cache then drops the stale tables.
    let held = here.load_index().await.unwrap();
    let blobs: Vec<_> = held.iter().map(|l| l.entry.id).collect();
    let other = open(&storage, &dir.path().join("other-cache")).await;
    forget_oldest_and_prune(&other).await;
    let third = open(&storage, &cache).await;
    assert_index_matches_the_store(&third).await;
    // The held mapping still reads (its files are unlinked, not changed).
    for id in &blobs {
        assert!(held.contains(id));
    }
    // The backup's next run sees the repository as the prune left it.
    here.backup(std::slice::from_ref(&first), Default::default())
        .await
        .unwrap();
    assert_index_matches_the_store(&here).await;
    assert_restores(&here, &first, dir.path(), "first-again").await;
    assert!(here.check(&CheckOptions::default()).await.unwrap().is_ok());
}
