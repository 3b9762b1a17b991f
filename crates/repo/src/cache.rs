//! The local metadata cache: index files, snapshots and tree packs kept on this host, so a
//! run against a remote store does not fetch them again (docs/format.md#local-cache).
//!
//! Why it can never make a result wrong:
//! - Entries are the objects' sealed bytes as stored, named by their ids, and every read
//!   authenticates them exactly as it authenticates what comes from the store (an index
//!   file or snapshot must hash to its name and open with the key; each tree blob must
//!   decrypt and hash to its id). A damaged or planted entry fails that, is deleted, and
//!   the object is fetched from the store instead.
//! - What exists is always decided by listing the store: another host's new index files
//!   and snapshots are read (and then cached) because the listing names them; an entry the
//!   listing no longer names (removed by forget or prune) is deleted when the listing is
//!   taken. Packs are immutable (named by the hash of their content), so a cached tree pack
//!   is either that pack or detectably not.
//! - `check` reads around the cache: it judges the store, not this host.
//!
//! Shared by several processes: entries are written to a temporary name and renamed into
//! place, so a reader sees a whole entry or none; two writers of one entry write the same
//! bytes. Any failure to read or write the cache only costs a fetch.
//!
//! Bounded: tree packs beyond [`DEFAULT_CACHE_LIMIT`] (or the configured limit) are evicted
//! oldest first; index files and snapshots are small and kept while the store lists them.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cairn_pack::PackId;

use crate::storage::FileType;

/// Tree packs are kept up to this many bytes by default (4 GiB: the trees of several
/// million directories).
pub const DEFAULT_CACHE_LIMIT: u64 = 4 << 30;

/// Subdirectory of the index tables.
const INDEX_TABLES: &str = "index-tables";

/// Packs larger than this are never cached whole (a pack mixing data into its trees).
const MAX_CACHED_PACK: u64 = 64 << 20;

/// One repository's cache directory.
#[derive(Debug)]
pub struct MetadataCache {
    dir: PathBuf,
    limit: u64,
    tree_bytes: AtomicU64,
    /// One fetch per pack at a time: readers of a pack being fetched wait for it.
    fetching: Mutex<HashMap<PackId, Arc<tokio::sync::Mutex<()>>>>,
    /// Packs fetched whole once and not kept (too large, or not matching their name): their
    /// trees are read by range from then on, never by fetching the pack again.
    not_kept: Mutex<HashSet<PackId>>,
}

impl MetadataCache {
    /// Opens (creating, mode 0700) the cache directory `dir` of one repository; `None` if it
    /// cannot be created (the run then goes without a cache).
    pub fn open(dir: PathBuf, limit: u64) -> Option<MetadataCache> {
        for sub in ["index", "snapshots", "trees", INDEX_TABLES] {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir.join(sub))
                .ok()?;
        }
        let cache = MetadataCache {
            dir,
            limit,
            tree_bytes: AtomicU64::new(0),
            fetching: Mutex::new(HashMap::new()),
            not_kept: Mutex::new(HashSet::new()),
        };
        // Marks this repository's cache as in use, for `--cleanup-cache` elsewhere.
        if let Ok(handle) = std::fs::File::open(&cache.dir) {
            let _ = handle.set_modified(std::time::SystemTime::now());
        }
        let held: u64 = cache.tree_entries().iter().map(|(_, size, _)| size).sum();
        cache.tree_bytes.store(held, Ordering::Relaxed);
        cache.evict();
        Some(cache)
    }

    /// The directory of the index tables built from the cached index files
    /// (index/tables.rs).
    pub fn index_table_dir(&self) -> PathBuf {
        self.dir.join(INDEX_TABLES)
    }

    /// The directory this cache keeps its entries in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True for the file types kept here.
    pub fn keeps(file_type: FileType) -> bool {
        matches!(file_type, FileType::Index | FileType::Snapshot)
    }

    fn path(&self, file_type: FileType, name: &str) -> PathBuf {
        let sub = match file_type {
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            _ => "trees",
        };
        self.dir.join(sub).join(name)
    }

    /// The cached bytes of a file, if any.
    pub fn get(&self, file_type: FileType, name: &str) -> Option<Bytes> {
        std::fs::read(self.path(file_type, name))
            .ok()
            .map(Bytes::from)
    }

    /// Keeps a file's bytes (best effort).
    pub fn put(&self, file_type: FileType, name: &str, bytes: &[u8]) {
        let _ = write_atomically(&self.path(file_type, name), bytes);
    }

    /// Forgets an entry (it failed authentication, or the store no longer has it).
    pub fn remove(&self, file_type: FileType, name: &str) {
        let path = self.path(file_type, name);
        if file_type == FileType::Pack {
            if let Ok(meta) = std::fs::metadata(&path) {
                self.tree_bytes.fetch_sub(meta.len(), Ordering::Relaxed);
            }
        }
        let _ = std::fs::remove_file(path);
    }

    /// Deletes the entries of `file_type` that `listed` (the store's listing) does not name.
    pub fn retain(&self, file_type: FileType, listed: &HashSet<&str>) {
        let Ok(entries) = std::fs::read_dir(self.path(file_type, "")) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !name.starts_with('.') && !listed.contains(name.as_ref()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// `range` of a cached pack, if the pack is cached and long enough.
    pub fn read_pack_range(&self, pack: &PackId, range: std::ops::Range<u64>) -> Option<Bytes> {
        let file = std::fs::File::open(self.path(FileType::Pack, &pack.to_hex())).ok()?;
        let mut buffer = vec![0u8; (range.end - range.start) as usize];
        file.read_exact_at(&mut buffer, range.start).ok()?;
        Some(Bytes::from(buffer))
    }

    /// True if `pack` is cached.
    pub fn has_pack(&self, pack: &PackId) -> bool {
        self.path(FileType::Pack, &pack.to_hex()).exists()
    }

    /// The lock one fetch of `pack` holds.
    pub fn fetch_lock(&self, pack: &PackId) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = self.fetching.lock().expect("cache fetch lock");
        Arc::clone(fetching.entry(*pack).or_default())
    }

    /// True if `pack` was fetched whole before and could not be kept.
    pub fn not_kept(&self, pack: &PackId) -> bool {
        self.not_kept.lock().expect("cache lock").contains(pack)
    }

    /// Keeps a whole tree pack if it is intact (hashes to its name) and small enough, then
    /// evicts beyond the limit; otherwise remembers not to fetch it whole again. Returns
    /// whether it was kept.
    pub fn put_pack(&self, pack: &PackId, bytes: &[u8]) -> bool {
        let keep = bytes.len() as u64 <= MAX_CACHED_PACK && PackId::of(bytes) == *pack;
        if !keep {
            self.not_kept.lock().expect("cache lock").insert(*pack);
            return false;
        }
        if write_atomically(&self.path(FileType::Pack, &pack.to_hex()), bytes).is_ok() {
            self.tree_bytes
                .fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.evict();
        }
        true
    }

    /// Cached tree packs: (path, size, modification time).
    fn tree_entries(&self) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("trees")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let time = meta.modified().ok()?;
                meta.is_file().then(|| (e.path(), meta.len(), time))
            })
            .collect()
    }

    /// Deletes the oldest tree packs until the cache holds at most 90 % of its limit.
    fn evict(&self) {
        if self.tree_bytes.load(Ordering::Relaxed) <= self.limit {
            return;
        }
        let mut entries = self.tree_entries();
        entries.sort_by_key(|(_, _, time)| *time);
        let mut held: u64 = entries.iter().map(|(_, size, _)| size).sum();
        let target = self.limit / 10 * 9;
        for (path, size, _) in entries {
            if held <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                held -= size;
            }
        }
        self.tree_bytes.store(held, Ordering::Relaxed);
    }
}

/// Removes the caches of other repositories under `root` that no run has used for
/// `max_age` (restic's `--cleanup-cache`, 30 days there); returns what was removed. Only
/// directories that are cairn caches (named by a 64-digit hex hash, holding `trees/` or a
/// `key-hint`) are touched, so a cache root shared with restic keeps restic's.
pub fn cleanup(root: &Path, keep: Option<&Path>, max_age: std::time::Duration) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let is_hash = name.len() == 64
            && name
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
        let is_ours = path.join("trees").is_dir() || path.join("key-hint").is_file();
        let unused = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        let removable = is_hash && is_ours && unused && Some(path.as_path()) != keep;
        if removable && std::fs::remove_dir_all(&path).is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// Writes `bytes` to a temporary file beside `path` (mode 0600) and renames it into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|e| std::io::Error::other(e.to_string()))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let temporary = path.with_file_name(format!(".{name}.{}", hex::encode(nonce)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(bytes)?;
        std::fs::rename(&temporary, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleanup_removes_only_old_cairn_caches_of_other_repositories() {
        let root = tempfile::tempdir().unwrap();
        let name = |c: char| c.to_string().repeat(64);
        let old = root.path().join(name('a'));
        let current = root.path().join(name('b'));
        let restics = root.path().join(name('c'));
        let other = root.path().join("not-a-cache");
        MetadataCache::open(old.clone(), DEFAULT_CACHE_LIMIT).unwrap();
        MetadataCache::open(current.clone(), DEFAULT_CACHE_LIMIT).unwrap();
        std::fs::create_dir_all(restics.join("data")).unwrap();
        std::fs::create_dir_all(&other).unwrap();
        // Everything is fresh: nothing goes.
        let day = std::time::Duration::from_secs(86_400);
        assert!(cleanup(root.path(), Some(&current), 30 * day).is_empty());
        // With no age limit, only the other cairn cache goes: not the one in use, not
        // restic's, not what is not a cache.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let removed = cleanup(root.path(), Some(&current), std::time::Duration::ZERO);
        assert_eq!(removed, vec![old.clone()]);
        assert!(!old.exists() && current.exists() && restics.exists() && other.exists());
    }

    #[test]
    fn entries_round_trip_and_the_listing_decides_what_stays() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::open(dir.path().join("repo"), DEFAULT_CACHE_LIMIT).unwrap();
        cache.put(FileType::Index, "aa", b"one");
        cache.put(FileType::Index, "bb", b"two");
        assert_eq!(
            cache.get(FileType::Index, "aa").as_deref(),
            Some(&b"one"[..])
        );
        cache.retain(FileType::Index, &["bb"].into_iter().collect());
        assert!(cache.get(FileType::Index, "aa").is_none());
        assert_eq!(
            cache.get(FileType::Index, "bb").as_deref(),
            Some(&b"two"[..])
        );
    }

    #[test]
    fn tree_packs_are_read_by_range_and_evicted_oldest_first_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = MetadataCache::open(dir.path().join("repo"), 2500).unwrap();
        let (bytes_a, bytes_b, bytes_c) = ([7u8; 1000], [8u8; 1000], [9u8; 1000]);
        let (a, b, c) = (
            PackId::of(&bytes_a),
            PackId::of(&bytes_b),
            PackId::of(&bytes_c),
        );
        assert!(cache.put_pack(&a, &bytes_a));
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.put_pack(&b, &bytes_b));
        assert_eq!(
            cache.read_pack_range(&a, 10..20).as_deref(),
            Some(&[7u8; 10][..])
        );
        assert!(cache.read_pack_range(&a, 990..1010).is_none());
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.put_pack(&c, &bytes_c));
        // 3000 > 2500: the oldest goes, down to at most 2250.
        assert!(!cache.has_pack(&a));
        assert!(cache.has_pack(&b) && cache.has_pack(&c));
        // A pack that does not hash to its name is not kept, and not fetched whole again.
        let planted = PackId([4; 32]);
        assert!(!cache.put_pack(&planted, &bytes_a));
        assert!(!cache.has_pack(&planted) && cache.not_kept(&planted));
        // A reopened cache counts what is there and keeps the bound.
        let reopened = MetadataCache::open(dir.path().join("repo"), 1500).unwrap();
        assert!(!reopened.has_pack(&b) && reopened.has_pack(&c));
    }
}
