//! Directory handles for restore: every path beneath a restore target is resolved from an
//! open descriptor of the target, never by re-resolving a path string.
//!
//! A path string is resolved again by the kernel on every call, through whatever the file
//! system holds at that moment: a symlink planted in an intermediate directory, or a name that
//! a case-insensitive or normalising file system (APFS, SMB, vfat, ext4 casefold) folds onto
//! a symlink restored a moment earlier (`S` and `s -> /etc`), sends the write outside the
//! target; `O_NOFOLLOW` only guards the last component. Here the target is opened once;
//! directories below it are opened relative to it with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)` (Linux 5.6+), or component by component with `openat(O_NOFOLLOW |
//! O_DIRECTORY)` where the kernel lacks `openat2` (or a seccomp filter refuses it); entries are
//! created, changed and removed with the `*at` calls relative to their parent's descriptor.
//! Recently used directory descriptors are cached, so restoring the entries of one directory
//! opens it once, not once per entry (and never once per component per entry).
//!
//! `nix` provides every call used here (`openat2` included); nothing is hand-written.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};

/// How many directory descriptors the cache keeps open (well below the usual soft limit of
/// 1024 open files, leaving room for pack downloads and the files being written).
const CACHE_CAPACITY: usize = 256;

/// Longest relative path handed to one `openat2` call; longer ones (deep trees) are walked
/// a component at a time, so depth is never limited by `PATH_MAX`.
const MAX_OPENAT2_PATH: usize = 3072;

/// How many levels up [`Beneath::dir`] looks for an open ancestor.
const ANCESTORS_LOOKED_UP: usize = 16;

/// Most symlinks followed while resolving the target path (the kernel's limit too).
const MAX_TARGET_SYMLINKS: usize = 40;

pub(crate) fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// Flags for a directory opened to work in: readable (for listing), never through a symlink.
fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

/// A restore target held open, and a cache of the directories below it.
pub(crate) struct Beneath {
    root: Arc<OwnedFd>,
    /// The target as given, for messages.
    display: PathBuf,
    /// The kernel has `openat2` (checked once when the target is opened).
    openat2: AtomicBool,
    /// Read on every entry (from many threads), written on a miss: a read-write lock, so
    /// lookups do not queue behind each other.
    cache: RwLock<HashMap<PathBuf, Arc<OwnedFd>>>,
}

impl Beneath {
    /// Opens (creating it and missing parents if needed) the restore target.
    ///
    /// The target path is the operator's: an existing symlink on the way (`/data` pointing
    /// to `/mnt/data`, or the target itself being a symlink to a directory) is followed, as
    /// restic and every other tool do, but only when the symlink belongs to root or to the
    /// user running the restore. A symlink owned by anybody else is refused: whoever could
    /// plant it where a directory was expected (a shared `/srv/restore`, a home directory
    /// restored into as root) could point the restore at `/etc`. The kernel applies the same
    /// rule in sticky world-writable directories (`fs.protected_symlinks`); this applies it
    /// everywhere on the target's path. Components that do not exist are created with
    /// `mkdirat` and opened without following symlinks, so one planted between the check
    /// and the creation makes the restore fail instead of being followed.
    pub fn open_target(path: &Path) -> io::Result<Beneath> {
        let root = open_target_dir(path)?;
        let beneath = Beneath {
            root: Arc::new(root),
            display: path.to_path_buf(),
            openat2: AtomicBool::new(true),
            cache: RwLock::new(HashMap::new()),
        };
        // One probe: a kernel before 5.6 says ENOSYS; container runtimes with an old seccomp
        // profile say EPERM; both get the component-wise walk.
        let probe = openat2(
            beneath.root.as_fd(),
            ".",
            OpenHow::new().flags(dir_flags()).resolve(beneath_resolve()),
        );
        if matches!(probe, Err(Errno::ENOSYS | Errno::EPERM | Errno::EINVAL)) {
            beneath.openat2.store(false, Ordering::Relaxed);
        }
        Ok(beneath)
    }

    /// Use `openat2`? False forces the component-wise walk (tests exercise both).
    #[cfg(test)]
    pub fn set_openat2(&self, on: bool) {
        self.openat2.store(on, Ordering::Relaxed);
        self.forget_all();
    }

    /// The path of `rel` for messages.
    pub fn path_of(&self, rel: &Path) -> PathBuf {
        self.display.join(rel)
    }

    /// The directory at `rel` (empty: the target), opened without following any symlink.
    pub fn dir(&self, rel: &Path) -> io::Result<Arc<OwnedFd>> {
        if rel.as_os_str().is_empty() {
            return Ok(Arc::clone(&self.root));
        }
        if let Some(fd) = self.cache.read().expect("dir cache").get(rel) {
            return Ok(Arc::clone(fd));
        }
        // Start from the nearest directory already open (looking a few levels up only:
        // from the root is one `openat2` call anyway, and hashing every ancestor of a very
        // deep path on every miss would cost more than the walk).
        let mut base = Arc::clone(&self.root);
        let mut done = Path::new("");
        {
            let cache = self.cache.read().expect("dir cache");
            for ancestor in rel.ancestors().skip(1).take(ANCESTORS_LOOKED_UP) {
                if ancestor.as_os_str().is_empty() {
                    break;
                }
                if let Some(fd) = cache.get(ancestor) {
                    base = Arc::clone(fd);
                    done = ancestor;
                    break;
                }
            }
        }
        let rest = rel.strip_prefix(done).unwrap_or(rel);
        check_relative(rest)?;
        let mut current = base;
        if self.openat2.load(Ordering::Relaxed) {
            // One call per run of components that fits a path (one call in all but very
            // deep trees); the kernel refuses any symlink and any step out of `current`.
            let mut chunk = PathBuf::new();
            let mut components = rest.components().peekable();
            while let Some(component) = components.next() {
                chunk.push(component);
                let full = components.peek().is_some_and(|next| {
                    chunk.as_os_str().len() + 1 + next.as_os_str().len() > MAX_OPENAT2_PATH
                });
                if full || components.peek().is_none() {
                    let fd = openat2(
                        current.as_fd(),
                        &chunk,
                        OpenHow::new().flags(dir_flags()).resolve(beneath_resolve()),
                    )
                    .map_err(io_err)?;
                    current = Arc::new(fd);
                    chunk.clear();
                }
            }
        } else {
            // Component by component, with O_NOFOLLOW | O_DIRECTORY at each step.
            for component in rest.components() {
                let fd = openat(
                    current.as_fd(),
                    component.as_os_str(),
                    dir_flags(),
                    Mode::empty(),
                )
                .map_err(io_err)?;
                current = Arc::new(fd);
            }
        }
        Ok(self.remember(rel, current))
    }

    /// Caches `fd` as the directory at `rel` and returns it.
    pub fn remember(&self, rel: &Path, fd: Arc<OwnedFd>) -> Arc<OwnedFd> {
        let mut cache = self.cache.write().expect("dir cache");
        if cache.len() >= CACHE_CAPACITY {
            // Restore walks the tree in order, so the working set is a path and its
            // siblings: starting over is as good as a finer eviction and much simpler.
            cache.clear();
        }
        cache.insert(rel.to_path_buf(), Arc::clone(&fd));
        fd
    }

    /// Drops every cached descriptor (after a directory was removed, so no later step works
    /// in a directory that is no longer in the tree).
    pub fn forget_all(&self) {
        self.cache.write().expect("dir cache").clear();
    }

    /// The parent directory of `rel` and `rel`'s last component.
    pub fn parent<'a>(&self, rel: &'a Path) -> io::Result<(Arc<OwnedFd>, &'a OsStr)> {
        let name = match rel.components().next_back() {
            Some(Component::Normal(name)) => name,
            _ => return Err(invalid_component(rel)),
        };
        let parent = self.dir(rel.parent().unwrap_or(Path::new("")))?;
        Ok((parent, name))
    }

    /// Opens the entry at `rel` (which must not be a symlink) with `flags`.
    pub fn open(&self, rel: &Path, flags: OFlag) -> io::Result<OwnedFd> {
        let (parent, name) = self.parent(rel)?;
        openat(
            parent.as_fd(),
            name,
            flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)
    }
}

fn beneath_resolve() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS
}

fn invalid_component(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "{}: not a plain relative path (restore never resolves `..`, `.` or `/`)",
            path.display()
        ),
    )
}

/// Rejects anything but plain names (tree names cannot hold them; this is a second guard).
fn check_relative(path: &Path) -> io::Result<()> {
    if path.components().all(|c| matches!(c, Component::Normal(_))) {
        Ok(())
    } else {
        Err(invalid_component(path))
    }
}

/// Is a symlink owned by `uid` trusted to be followed on the way to the target?
fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == nix::unistd::geteuid().as_raw()
}

/// Resolves (and creates) the target path; see [`Beneath::open_target`].
fn open_target_dir(path: &Path) -> io::Result<OwnedFd> {
    if path.as_os_str().is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the restore target is an empty path",
        ));
    }
    let walk_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    let mut current = walk_start(path.is_absolute())?;
    let mut queue: VecDeque<OsString> = path.components().filter_map(component_name).collect();
    let mut followed = 0;
    // Components that came from a symlink's target and are still queued: those must exist
    // (as for `mkdir -p`, a dangling symlink is an error, not a place to create).
    let mut from_link = 0usize;
    // Once a component had to be created, everything below it is new: nothing to follow.
    let mut creating = false;
    let mut walked = PathBuf::from(if path.is_absolute() { "/" } else { "" });
    while let Some(name) = queue.pop_front() {
        let linked = from_link > 0;
        from_link = from_link.saturating_sub(1);
        walked.push(&name);
        if name == ".." {
            current = openat(current.as_fd(), "..", walk_flags, Mode::empty()).map_err(io_err)?;
            continue;
        }
        match openat(current.as_fd(), name.as_os_str(), walk_flags, Mode::empty()) {
            Ok(fd) => {
                current = fd;
                continue;
            }
            Err(Errno::ENOENT) if linked => {
                return Err(with_path(io_err(Errno::ENOENT), &walked));
            }
            Err(Errno::ENOENT) => {
                creating = true;
                current = create_dir_at(current.as_fd(), &name, &walked)?;
                continue;
            }
            Err(Errno::ENOTDIR | Errno::ELOOP) => {}
            Err(e) => return Err(with_path(io_err(e), &walked)),
        }
        // Not a directory: a symlink we may follow, or something else in the way.
        let stat = fstatat(
            current.as_fd(),
            name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| with_path(io_err(e), &walked))?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
            return Err(with_path(io_err(Errno::ENOTDIR), &walked));
        }
        may_follow(creating, stat.st_uid, &walked)?;
        followed += 1;
        if followed > MAX_TARGET_SYMLINKS {
            return Err(with_path(io_err(Errno::ELOOP), &walked));
        }
        let link = nix::fcntl::readlinkat(current.as_fd(), name.as_os_str())
            .map_err(|e| with_path(io_err(e), &walked))?;
        let link = Path::new(&link);
        if link.as_os_str().is_empty() {
            return Err(with_path(io_err(Errno::ENOENT), &walked));
        }
        if link.is_absolute() {
            current = walk_start(true)?;
        }
        for component in link.components().rev() {
            if let Some(pushed) = component_name(component) {
                queue.push_front(pushed);
                from_link += 1;
            }
        }
    }
    // The final descriptor is a readable one (listing for --delete, fstat, fchmod).
    openat(current.as_fd(), ".", dir_flags(), Mode::empty()).map_err(io_err)
}

/// Where a walk to the restore target starts: `/` for an absolute path, else `.`.
fn walk_start(absolute: bool) -> io::Result<OwnedFd> {
    let from = if absolute { "/" } else { "." };
    nix::fcntl::open(
        from,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)
}

/// The name a path component walks to ("..", or a name); `None` for those that stay put.
fn component_name(component: Component<'_>) -> Option<OsString> {
    match component {
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        Component::ParentDir => Some("..".into()),
        Component::Normal(name) => Some(name.to_os_string()),
    }
}

/// Creates directory `name` in `parent` (if nothing is there) and opens it. Whatever is
/// there once created must be a real directory: a symlink that appeared since is refused,
/// not followed.
fn create_dir_at(parent: BorrowedFd<'_>, name: &OsStr, walked: &Path) -> io::Result<OwnedFd> {
    match mkdirat(parent, name, Mode::from_bits_truncate(0o777)) {
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(with_path(io_err(e), walked)),
    }
    let walk_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(parent, name, walk_flags, Mode::empty()).map_err(|e| with_path(io_err(e), walked))
}

/// Whether the walk to a restore target may follow the symlink at `walked`, owned by `uid`:
/// never below a directory the walk created (it appeared meanwhile), and only if owned by
/// root or the user restoring (anyone else who can plant it could redirect the restore).
fn may_follow(creating: bool, uid: u32, walked: &Path) -> io::Result<()> {
    if creating {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{}: a symlink appeared where the restore was creating a directory; \
                 refusing to follow it",
                walked.display()
            ),
        ));
    }
    if !trusted_owner(uid) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is a symlink owned by uid {uid}, neither root nor the user restoring: \
                 refusing to follow it on the way to the restore target (anyone who can \
                 plant it could redirect the restore); give the real path as the target",
                walked.display(),
            ),
        ));
    }
    Ok(())
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Is the entry `name` of `parent` a directory (not following a symlink)? `None` if absent.
pub(crate) fn stat_at(
    parent: BorrowedFd,
    name: &OsStr,
) -> io::Result<Option<nix::sys::stat::FileStat>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(io_err(e)),
    }
}

pub(crate) fn is_dir(stat: &nix::sys::stat::FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

/// The names in the directory `dir` (a fresh open file description, so listing never
/// disturbs a cached descriptor), without `.` and `..`.
pub(crate) fn list(dir: BorrowedFd) -> io::Result<Vec<OsString>> {
    let mut listing =
        nix::dir::Dir::openat(dir, ".", dir_flags(), Mode::empty()).map_err(io_err)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(io_err)?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    Ok(names)
}

/// Removes the entry `name` of `parent`: a directory with everything below it (each level
/// opened without following symlinks; a symlink is removed, never followed). With `spare`,
/// entries it selects (given their path relative to `rel`'s root) are kept, and so are the
/// directories leading to them. True when `name` itself is gone.
pub(crate) fn remove_at(
    parent: BorrowedFd,
    name: &OsStr,
    rel: &Path,
    spare: Option<&dyn Fn(&Path) -> bool>,
) -> io::Result<bool> {
    let Some(stat) = stat_at(parent, name)? else {
        return Ok(true);
    };
    if !is_dir(&stat) {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(io_err)?;
        return Ok(true);
    }
    let dir = openat(parent, name, dir_flags(), Mode::empty()).map_err(io_err)?;
    let mut spared = false;
    for child in list(dir.as_fd())? {
        let child_rel = rel.join(&child);
        if spare.is_some_and(|spare| spare(&child_rel)) {
            spared = true;
            continue;
        }
        spared |= !remove_at(dir.as_fd(), &child, &child_rel, spare)?;
    }
    if spared {
        return Ok(false);
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir).map_err(io_err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn dirs_below_the_target_never_resolve_through_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(outside.path().join("inner")).unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target.path().join("a/b/c")).unwrap();
        symlink(outside.path(), target.path().join("a/link")).unwrap();
        symlink("..", target.path().join("a/up")).unwrap();
        let beneath = Beneath::open_target(target.path()).unwrap();
        for openat2_on in [true, false] {
            beneath.set_openat2(openat2_on);
            assert!(beneath.dir(Path::new("a/b/c")).is_ok());
            assert!(beneath.dir(Path::new("a/b")).is_ok(), "from the cache");
            for bad in ["a/link", "a/link/inner", "a/up/a", "a/../a", "/etc"] {
                assert!(
                    beneath.dir(Path::new(bad)).is_err(),
                    "{bad} resolved (openat2: {openat2_on})"
                );
            }
            assert!(beneath.open(Path::new("a/link"), OFlag::O_RDONLY).is_err());
        }
    }

    #[test]
    fn deep_paths_beyond_path_max_resolve() {
        let target = tempfile::tempdir().unwrap();
        let beneath = Beneath::open_target(target.path()).unwrap();
        let name = "d".repeat(200);
        let mut rel = PathBuf::new();
        for _ in 0..30 {
            let parent = beneath.dir(&rel).unwrap();
            mkdirat(
                parent.as_fd(),
                name.as_str(),
                Mode::from_bits_truncate(0o700),
            )
            .unwrap();
            rel.push(&name);
        }
        beneath.forget_all();
        assert!(rel.as_os_str().len() > 4096);
        assert!(beneath.dir(&rel).is_ok());
    }

    #[test]
    fn the_target_follows_only_trusted_symlinks_and_creates_without_following() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        std::fs::create_dir(&real).unwrap();
        // Our own symlink as (part of) the target: followed, as the operator asked.
        symlink(&real, base.path().join("mine")).unwrap();
        Beneath::open_target(&base.path().join("mine/new/deeper")).unwrap();
        assert!(real.join("new/deeper").is_dir());
        Beneath::open_target(&base.path().join("mine")).unwrap();
        // A dangling symlink where a directory must be created is never followed.
        symlink(base.path().join("elsewhere"), base.path().join("dangling")).unwrap();
        assert!(Beneath::open_target(&base.path().join("dangling/x")).is_err());
        assert!(!base.path().join("elsewhere").exists());
        // A file in the way.
        std::fs::write(base.path().join("file"), b"x").unwrap();
        assert!(Beneath::open_target(&base.path().join("file/x")).is_err());
        assert!(Beneath::open_target(Path::new("")).is_err());
    }

    #[test]
    fn removal_never_follows_symlinks_and_spares_what_it_is_told() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(target.path().join("d/e")).unwrap();
        std::fs::write(target.path().join("d/e/f"), b"x").unwrap();
        std::fs::write(target.path().join("d/spare.log"), b"x").unwrap();
        symlink(outside.path(), target.path().join("d/link")).unwrap();
        let beneath = Beneath::open_target(target.path()).unwrap();
        let root = beneath.dir(Path::new("")).unwrap();
        let spare: &dyn Fn(&Path) -> bool = &|p: &Path| p.extension().is_some_and(|e| e == "log");
        assert!(!remove_at(root.as_fd(), OsStr::new("d"), Path::new("d"), Some(spare)).unwrap());
        assert!(target.path().join("d/spare.log").exists());
        assert!(!target.path().join("d/e").exists());
        assert!(target.path().join("d/link").symlink_metadata().is_err());
        assert!(outside.path().join("keep").exists());
        assert!(remove_at(root.as_fd(), OsStr::new("d"), Path::new("d"), None).unwrap());
        assert!(!target.path().join("d").exists());
    }
}
