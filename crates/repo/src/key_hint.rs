//! Which key to try first when opening a repository: an explicit hint (`--key-hint`), then
//! the key that last opened the repository on this host, remembered in a small file of the
//! cache directory (docs/cli.md#keys).
//!
//! The remembered hint is a convenience, never a source of errors: a missing, unreadable or
//! unwritable cache only means every key is tried in listing order. It names a key file, which
//! is not secret (key file names are hashes of public bytes); the file is still written 0600
//! in 0700 directories, as restic writes its cache.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Options for [`crate::Repository::open_with`].
#[derive(Clone, Debug, Default)]
pub struct OpenOptions {
    /// A key id or a unique prefix of one to try before any other (restic's `--key-hint`). A
    /// hint that matches no key file, or several, is passed over (and said so if no key
    /// opens).
    pub key_hint: Option<String>,
    /// The cairn cache directory (see [`default_cache_dir`]): where the key that opened a
    /// repository is remembered and tried first next time, and where its index files,
    /// snapshots and tree packs are kept (`crate::cache`). `None` remembers nothing.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of tree packs the cache keeps per repository (default
    /// [`crate::cache::DEFAULT_CACHE_LIMIT`]).
    pub cache_limit: Option<u64>,
}

impl OpenOptions {
    /// The tree-pack bound in effect.
    pub fn cache_limit(&self) -> u64 {
        self.cache_limit
            .unwrap_or(crate::cache::DEFAULT_CACHE_LIMIT)
    }
}

/// The cache directory the CLI uses: `$CAIRN_CACHE_DIR`, else restic's `$RESTIC_CACHE_DIR`
/// (what a K8up or restic setup already points at a volume), else `$XDG_CACHE_HOME/cairn`, else
/// `$HOME/.cache/cairn`; `None` when none of these variables is set (or set to a relative
/// path, which XDG says to ignore). Nothing is created here.
pub fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    var("CAIRN_CACHE_DIR")
        .or_else(|| var("RESTIC_CACHE_DIR"))
        .or_else(|| var("XDG_CACHE_HOME").map(|p| p.join("cairn")))
        .or_else(|| var("HOME").map(|p| p.join(".cache").join("cairn")))
}

const FILE_NAME: &str = "key-hint";

/// `<cache>/<repository>/key-hint`. `repository` is the content id of the repository's
/// config object (64 hex digits): it is known before any key opens (the repository id itself
/// is inside the sealed config) and is the same whichever URL reaches the repository.
fn hint_path(cache_dir: &Path, repository: &str) -> PathBuf {
    cache_dir.join(repository).join(FILE_NAME)
}

fn is_key_name(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The remembered key id for `repository`, if any (and well-formed).
pub(crate) fn read(cache_dir: &Path, repository: &str) -> Option<String> {
    let text = std::fs::read_to_string(hint_path(cache_dir, repository)).ok()?;
    let id = text.trim();
    is_key_name(id).then(|| id.to_string())
}

/// Remembers `key_id` for `repository`. Best effort: failures are ignored (a read-only home,
/// a full disk), since the hint only saves time.
pub(crate) fn write(cache_dir: &Path, repository: &str, key_id: &str) {
    let _ = try_write(cache_dir, repository, key_id);
}

fn try_write(cache_dir: &Path, repository: &str, key_id: &str) -> std::io::Result<()> {
    if !is_key_name(repository) || !is_key_name(key_id) {
        return Ok(());
    }
    let path = hint_path(cache_dir, repository);
    let dir = path.parent().expect("hint path has a parent");
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)?;
    // Written whole under a temporary name and renamed, so a concurrent open reads the old
    // hint or the new one, never half of one.
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    file.write_all(key_id.as_bytes())?;
    file.write_all(b"\n")?;
    // NamedTempFile creates 0600 files; persist keeps the mode.
    file.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_per_repository_and_ignores_garbage() {
        let cache = tempfile::tempdir().unwrap();
        let (repo_a, repo_b) = ("a".repeat(64), "b".repeat(64));
        assert_eq!(read(cache.path(), &repo_a), None);
        write(cache.path(), &repo_a, &"1".repeat(64));
        assert_eq!(read(cache.path(), &repo_a), Some("1".repeat(64)));
        assert_eq!(read(cache.path(), &repo_b), None);
        write(cache.path(), &repo_a, &"2".repeat(64));
        assert_eq!(read(cache.path(), &repo_a), Some("2".repeat(64)));
        // Not a key name: never written, never returned.
        write(cache.path(), &repo_b, "../../etc/passwd");
        assert_eq!(read(cache.path(), &repo_b), None);
        std::fs::write(hint_path(cache.path(), &repo_a), "not a key\n").unwrap();
        assert_eq!(read(cache.path(), &repo_a), None);
        // A cache that cannot be written is not an error.
        write(
            Path::new("/proc/cairn-no-such-dir"),
            &repo_a,
            &"3".repeat(64),
        );
    }

    proptest::proptest! {
        /// Whatever a hint file holds, what is read back is a key name or nothing.
        #[test]
        fn only_key_names_are_read_back(content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..100)) {
            let cache = tempfile::tempdir().unwrap();
            let repo = "d".repeat(64);
            let path = hint_path(cache.path(), &repo);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
            if let Some(id) = read(cache.path(), &repo) {
                proptest::prop_assert!(is_key_name(&id));
                let text = String::from_utf8_lossy(&content);
                proptest::prop_assert_eq!(id.as_str(), text.trim());
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn hint_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let cache = tempfile::tempdir().unwrap();
        let repo = "c".repeat(64);
        write(cache.path(), &repo, &"4".repeat(64));
        let path = hint_path(cache.path(), &repo);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
    }
}
