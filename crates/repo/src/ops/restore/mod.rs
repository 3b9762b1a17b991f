//! Restore: recreate a snapshot (or part of it) under a target directory; `dump` one file.
//!
//! Files are created at their final size first (unwritten ranges are holes), then each
//! needed pack is read once, with ranged reads of just the blobs needed (adjacent ones
//! coalesced), and each blob is written at every offset that uses it. All-zero blobs are not
//! written at all, so sparse files stay sparse. Hard links and symlinks come after the
//! content, metadata last: files, then directories deepest first, so writing content never
//! disturbs a directory's times.
//!
//! Nothing is ever resolved by path below the target: the target is opened once and every
//! entry is created, written, changed, verified and removed relative to its parent
//! directory's descriptor, which is opened without following any symlink
//! ([`super::beneath`]). A snapshot written by a compromised host therefore cannot reach
//! outside the target, whatever names, symlinks and collisions it holds, and neither can
//! symlinks planted in the target beforehand. What a restore applies that could grant
//! privileges (owners, setuid/setgid bits, device nodes, extended attributes) can each be
//! turned off ([`RestoreOptions`]); drills turn them off by default.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_pack::{BlobId, BlobType, PackEntry, PackId};
use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::beneath::{io_err, is_dir, list, remove_at, stat_at, Beneath};
use crate::ops::progress::{CancelToken, Counters, ProgressFn, Reporter};
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind, Tree};
use crate::walk::TreeWalker;
use crate::Repository;

mod delete;
mod verify;

/// The default of [`RestoreOptions::max_entries`]: 16 Mi entries. A restore keeps every
/// entry it restores in memory (a few hundred bytes each), so this is about 6 GiB.
pub const DEFAULT_MAX_ENTRIES: u64 = 1 << 24;

/// How to restore.
/// Deserializes from the JSON the C ABI takes (the fields below by name, each optional,
/// unknown names refused; `progress` and `cancel` are not part of it).
#[derive(Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestoreOptions {
    /// Only paths matching one of these patterns (and what is below them), if non-empty.
    /// Patterns match snapshot paths like `/var/lib/pg/*.conf`; one without a leading `/`
    /// matches at any depth.
    pub include: Vec<String>,
    /// Skip paths matching one of these patterns (and what is below them).
    pub exclude: Vec<String>,
    /// Re-read every restored file and check it against its blob ids.
    pub verify: bool,
    /// Remove what the target holds inside restored directories but the snapshot does not
    /// (restic's `--delete`), so the target ends up equal to the snapshot. With `include`,
    /// only what the patterns select is removed; what `exclude` matches is never removed.
    pub delete: bool,
    /// Do not restore owners: entries belong to the user running the restore. Without it,
    /// owners (numeric uid and gid) are restored when running as root.
    pub no_owner: bool,
    /// Clear the setuid and setgid bits of every restored mode.
    pub no_setid: bool,
    /// Do not create block or character device nodes (they are counted in
    /// [`RestoreReport::skipped`]); FIFOs are still created.
    pub no_devices: bool,
    /// Restore only the extended attributes whose names match one of these glob patterns
    /// (`user.*`), if non-empty (restic's `--include-xattr`).
    pub include_xattr: Vec<String>,
    /// Do not restore the extended attributes whose names match one of these glob patterns
    /// (`security.*`, `trusted.*`; restic's `--exclude-xattr`). Applies after `include_xattr`.
    pub exclude_xattr: Vec<String>,
    /// Refuse snapshots (or the restored directory of one) that expand to more entries than
    /// this; `None` means [`DEFAULT_MAX_ENTRIES`]. Equal directories are stored once and may
    /// be referenced from many places, so a snapshot of a few kilobytes can describe 2^30
    /// paths; the count is taken over the distinct trees before anything is expanded, so a
    /// refusal costs as little as the snapshot's size.
    pub max_entries: Option<u64>,
    /// Progress callback.
    #[serde(skip)]
    pub progress: Option<ProgressFn>,
    /// Cancellation.
    #[serde(skip)]
    pub cancel: CancelToken,
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Regular files restored (hard links included).
    pub files_restored: u64,
    /// Directories restored.
    pub dirs_restored: u64,
    /// Other entries (symlinks, devices, FIFOs).
    pub others_restored: u64,
    /// Bytes of file content written or covered by holes.
    pub bytes_restored: u64,
    /// Files checked by `verify`.
    pub files_verified: u64,
    /// Entries of the target removed by `delete` (a removed directory counts once).
    pub deleted: u64,
    /// Entries left out on purpose (device nodes with [`RestoreOptions::no_devices`]).
    pub skipped: u64,
    /// Problems with single items (an entry that could not be created, such as a symlink
    /// with an empty target or a name colliding with another on a case-insensitive file
    /// system; metadata that could not be set; verify mismatches). The restore goes on.
    pub errors: Vec<(PathBuf, String)>,
}

impl RestoreReport {
    /// [`crate::Outcome::Incomplete`] when single entries failed (`errors` lists them; the
    /// rest is restored), else success.
    pub fn outcome(&self) -> crate::Outcome {
        if self.errors.is_empty() {
            crate::Outcome::Success
        } else {
            crate::Outcome::Incomplete
        }
    }
}

struct Item {
    /// Path relative to the target (and, with a leading `/`, the path in the snapshot).
    rel: PathBuf,
    /// The tree listing this entry (shared by every item of that directory, and by every
    /// path at which a shared subtree is restored: nodes are never copied).
    tree: Arc<Tree>,
    index: usize,
}

impl Item {
    fn node(&self) -> &Node {
        &self.tree.nodes[self.index]
    }
}

fn matches_self_or_ancestor(set: &GlobSet, rel: &Path) -> bool {
    let absolute = Path::new("/").join(rel);
    absolute
        .ancestors()
        .any(|p| p != Path::new("/") && set.is_match(p))
}

/// Which extended attributes to restore.
#[derive(Clone, Default)]
struct XattrFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl XattrFilter {
    fn new(include: &[String], exclude: &[String]) -> Result<XattrFilter> {
        fn compile(patterns: &[String], what: &str) -> Result<Option<GlobSet>> {
            let mut set = GlobSetBuilder::new();
            let mut any = false;
            for pattern in patterns.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
                // Attribute names hold no `/`: `*` matches any run of characters.
                set.add(GlobBuilder::new(pattern).build().map_err(|e| {
                    RepoError::InvalidInput(format!("{what} pattern {pattern:?}: {e}"))
                })?);
                any = true;
            }
            if !any {
                return Ok(None);
            }
            set.build()
                .map(Some)
                .map_err(|e| RepoError::InvalidInput(format!("{what} patterns: {e}")))
        }
        Ok(XattrFilter {
            include: compile(include, "include-xattr")?,
            exclude: compile(exclude, "exclude-xattr")?,
        })
    }

    fn wants(&self, name: &[u8]) -> bool {
        let name = Path::new(OsStr::from_bytes(name));
        self.include.as_ref().is_none_or(|set| set.is_match(name))
            && !self.exclude.as_ref().is_some_and(|set| set.is_match(name))
    }
}

/// One step of a restore, run on a blocking thread.
type Phase = Box<dyn FnOnce(&Restorer) -> Result<()> + Send>;

/// A hard link to make: (item index, index of the item it links to).
type HardLink = (usize, usize);

/// One use of a blob: file index and offset in it.
type Use = (usize, u64);

/// The blobs of one pack a restore needs, by offset, each with where it goes.
type PackBlobs = BTreeMap<u32, (PackEntry, Vec<Use>)>;

/// What became of an item.
const OK: u8 = 0;
/// Could not be restored (reported once), or lies below a directory that could not.
const FAILED: u8 = 1;
/// Left out on purpose (a device node with `no_devices`).
const SKIPPED: u8 = 2;

/// An error that stops the whole restore (the target's file system is full, read-only or
/// broken, or this process ran out of descriptors), as opposed to one about a single entry.
fn fatal(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(
            Errno::ENOSPC
                | Errno::EDQUOT
                | Errno::EROFS
                | Errno::EIO
                | Errno::EMFILE
                | Errno::ENFILE
                | Errno::ENOMEM
        )
    )
}

/// The error for a name another restored directory already has.
fn collision() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::AlreadyExists,
        "a directory restored from the snapshot already has this name (a case-insensitive \
         or normalising file system folds two of the snapshot's names into one); not \
         replacing it",
    )
}

fn timespec(ns: i64) -> TimeSpec {
    TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000))
}

/// The state of one restore, shared by its phases.
struct Restorer {
    items: Vec<Item>,
    fs: Beneath,
    /// Set owners (running as root, and not `no_owner`).
    chown: bool,
    no_setid: bool,
    no_devices: bool,
    xattrs: XattrFilter,
    /// Device and inode of every directory this restore made (or kept): a later entry of
    /// the same name is a collision, never a reason to remove it.
    dirs: Mutex<HashSet<(u64, u64)>>,
    state: Vec<AtomicU8>,
    problems: Mutex<Vec<(PathBuf, String)>>,
}

impl Restorer {
    fn new(items: Vec<Item>, fs: Beneath, xattrs: XattrFilter, options: &RestoreOptions) -> Self {
        let state = items.iter().map(|_| AtomicU8::new(OK)).collect();
        Restorer {
            items,
            fs,
            chown: nix::unistd::geteuid().is_root() && !options.no_owner,
            no_setid: options.no_setid,
            no_devices: options.no_devices,
            xattrs,
            dirs: Mutex::new(HashSet::new()),
            state,
            problems: Mutex::new(Vec::new()),
        }
    }
}

impl Restorer {
    fn ok(&self, i: usize) -> bool {
        self.state[i].load(Ordering::Relaxed) == OK
    }

    /// Records that item `i` could not be restored (reported once).
    fn fail(&self, i: usize, message: String) {
        if self.state[i].swap(FAILED, Ordering::Relaxed) != FAILED {
            self.problem(i, message);
        }
    }

    /// Reports a problem with item `i` that leaves it restored (metadata, verification).
    fn problem(&self, i: usize, message: String) {
        let path = self.fs.path_of(&self.items[i].rel);
        self.problems
            .lock()
            .expect("problems lock")
            .push((path, message));
    }

    /// A single entry's failure: reported unless it is one that stops the restore.
    fn entry_error(&self, i: usize, what: &str, e: std::io::Error) -> Result<()> {
        if fatal(&e) {
            return Err(RepoError::io(self.fs.path_of(&self.items[i].rel), e));
        }
        self.fail(i, format!("{what}: {e}"));
        Ok(())
    }

    /// The mode to set: permission bits, less setuid/setgid when asked.
    fn mode(&self, node: &Node) -> Mode {
        let mut bits = node.mode & 0o7777;
        if self.no_setid {
            bits &= !0o6000;
        }
        Mode::from_bits_truncate(bits as nix::libc::mode_t)
    }

    /// Makes room for a new non-directory entry `name` in `parent`: an existing file or
    /// symlink is removed (so nothing is written through it); an existing directory too,
    /// unless this restore made it (a collision).
    fn clear(&self, parent: BorrowedFd, name: &OsStr, rel: &Path) -> std::io::Result<()> {
        let Some(stat) = stat_at(parent, name)? else {
            return Ok(());
        };
        if is_dir(&stat) {
            if self
                .dirs
                .lock()
                .expect("dirs lock")
                .contains(&(stat.st_dev, stat.st_ino))
            {
                return Err(collision());
            }
            remove_at(parent, name, rel, None)?;
            self.fs.forget_all();
            return Ok(());
        }
        nix::unistd::unlinkat(parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir).map_err(io_err)
    }

    /// Creates the regular file `rel`, empty, mode 0600, never through an existing entry.
    fn create_file(&self, rel: &Path) -> std::io::Result<std::fs::File> {
        let (parent, name) = self.fs.parent(rel)?;
        let open = || {
            nix::fcntl::openat(
                parent.as_fd(),
                name,
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
        };
        let fd = match open() {
            Err(Errno::EEXIST) => {
                self.clear(parent.as_fd(), name, rel)?;
                open().map_err(io_err)?
            }
            other => other.map_err(io_err)?,
        };
        Ok(std::fs::File::from(fd))
    }

    /// Phase 1, in order (parents first): every directory, mode 0700 while it is filled.
    fn create_dirs(&self) -> Result<()> {
        // Entries below a directory that could not be made fail with it, silently.
        let mut failed_dir: Option<&Path> = None;
        for (i, item) in self.items.iter().enumerate() {
            if let Some(dir) = failed_dir {
                if item.rel.starts_with(dir) {
                    self.state[i].store(FAILED, Ordering::Relaxed);
                    continue;
                }
                failed_dir = None;
            }
            if item.node().kind != NodeKind::Dir {
                continue;
            }
            if let Err(e) = self.make_dir(&item.rel) {
                self.entry_error(i, "cannot create directory", e)?;
                failed_dir = Some(&item.rel);
            }
        }
        Ok(())
    }

    fn make_dir(&self, rel: &Path) -> std::io::Result<()> {
        let (parent, name) = self.fs.parent(rel)?;
        let parent = parent.as_fd();
        let placeholder = Mode::from_bits_truncate(0o700);
        let existed = match nix::sys::stat::mkdirat(parent, name, placeholder) {
            Ok(()) => false,
            Err(Errno::EEXIST) => match stat_at(parent, name)? {
                Some(stat) if is_dir(&stat) => true,
                _ => {
                    // A file or symlink where the snapshot has a directory: replaced.
                    self.clear(parent, name, rel)?;
                    nix::sys::stat::mkdirat(parent, name, placeholder).map_err(io_err)?;
                    false
                }
            },
            Err(e) => return Err(io_err(e)),
        };
        let fd = nix::fcntl::openat(
            parent,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        if existed {
            // Writable while we fill it; the real mode is set at the end. Someone else's
            // directory keeps its mode (and the restore into it may then fail per entry).
            match nix::sys::stat::fchmod(fd.as_fd(), placeholder) {
                Ok(()) | Err(Errno::EPERM) => {}
                Err(e) => return Err(io_err(e)),
            }
        }
        let stat = nix::sys::stat::fstat(fd.as_fd()).map_err(io_err)?;
        self.dirs
            .lock()
            .expect("dirs lock")
            .insert((stat.st_dev, stat.st_ino));
        self.fs.remember(rel, Arc::new(fd));
        Ok(())
    }

    /// Phase 1, in parallel: regular files (at full size; one-blob files wait for their
    /// blob), FIFOs and devices. Returns the files whose content must be written, the hard
    /// links to make and the symlinks to create (both after the content).
    fn create_entries(&self) -> Result<(Vec<usize>, Vec<HardLink>, Vec<usize>)> {
        use rayon::prelude::*;
        let mut hardlinks = Vec::new();
        let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
        let mut to_create = Vec::new();
        let mut symlinks = Vec::new();
        for (i, item) in self.items.iter().enumerate() {
            if !self.ok(i) {
                continue;
            }
            let node = item.node();
            match node.kind {
                NodeKind::Dir => {}
                NodeKind::Symlink => symlinks.push(i),
                NodeKind::Dev | NodeKind::Chardev if self.no_devices => {
                    self.state[i].store(SKIPPED, Ordering::Relaxed);
                }
                NodeKind::File if node.links > 1 && node.inode != 0 => {
                    match first_link.get(&(node.device, node.inode)) {
                        Some(&first) => hardlinks.push((i, first)),
                        None => {
                            first_link.insert((node.device, node.inode), i);
                            to_create.push(i);
                        }
                    }
                }
                _ => to_create.push(i),
            }
        }
        to_create.par_iter().try_for_each(|&i| self.create_one(i))?;
        let files = to_create
            .into_iter()
            .filter(|&i| self.items[i].node().kind == NodeKind::File && self.ok(i))
            .collect();
        Ok((files, hardlinks, symlinks))
    }

    /// Creates one file, FIFO or device node.
    fn create_one(&self, i: usize) -> Result<()> {
        let item = &self.items[i];
        let node = item.node();
        if one_shot(node) {
            // Created, written and finished in one go when its only blob arrives.
            return Ok(());
        }
        let outcome = (|| -> std::io::Result<()> {
            if node.kind == NodeKind::File {
                let file = self.create_file(&item.rel)?;
                return file.set_len(node.size);
            }
            let (parent, name) = self.fs.parent(&item.rel)?;
            self.clear(parent.as_fd(), name, &item.rel)?;
            let kind = match node.kind {
                NodeKind::Fifo => SFlag::S_IFIFO,
                NodeKind::Dev => SFlag::S_IFBLK,
                _ => SFlag::S_IFCHR,
            };
            nix::sys::stat::mknodat(
                parent.as_fd(),
                name,
                kind,
                Mode::from_bits_truncate(0o600),
                node.rdev.unwrap_or(0) as nix::libc::dev_t,
            )
            .map_err(io_err)
        })();
        match outcome {
            Ok(()) => Ok(()),
            Err(e) => self.entry_error(i, &format!("cannot create {:?}", node.kind), e),
        }
    }

    /// Writes one blob into file `i` at `offset`.
    fn write_blob(&self, i: usize, offset: u64, plain: &[u8], zero: bool) -> Result<()> {
        if !self.ok(i) {
            return Ok(());
        }
        let item = &self.items[i];
        if one_shot(item.node()) {
            return self.write_one_shot(i, plain, zero);
        }
        if zero {
            return Ok(());
        }
        let file = match self.fs.open(&item.rel, OFlag::O_WRONLY) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => return self.entry_error(i, "cannot open to write", e),
        };
        file.write_all_at(plain, offset)
            .map_err(|e| RepoError::io(self.fs.path_of(&item.rel), e))
    }

    /// Restores a one-blob file completely: create, write, metadata.
    fn write_one_shot(&self, i: usize, plain: &[u8], zero: bool) -> Result<()> {
        let item = &self.items[i];
        let file = match self.create_file(&item.rel) {
            Ok(file) => file,
            Err(e) => return self.entry_error(i, "cannot create file", e),
        };
        let written = if zero {
            file.set_len(plain.len() as u64)
        } else {
            file.write_all_at(plain, 0)
        };
        written.map_err(|e| RepoError::io(self.fs.path_of(&item.rel), e))?;
        if let Err(e) = self.apply_fd(file.as_fd(), item.node()) {
            self.problem(i, format!("metadata: {e}"));
        }
        Ok(())
    }

    /// Hard links (to files restored earlier), then symlinks: last, so no restore step
    /// ever runs after a symlink exists (and none would follow one anyway).
    fn link_entries(&self, hardlinks: &[HardLink], symlinks: &[usize]) -> Result<()> {
        use rayon::prelude::*;
        for &(link, first) in hardlinks {
            if !self.ok(first) {
                self.fail(
                    link,
                    "not linked: the file it links to was not restored".into(),
                );
                continue;
            }
            let made = (|| -> std::io::Result<()> {
                let (from_dir, from_name) = self.fs.parent(&self.items[first].rel)?;
                let (to_dir, to_name) = self.fs.parent(&self.items[link].rel)?;
                self.clear(to_dir.as_fd(), to_name, &self.items[link].rel)?;
                nix::unistd::linkat(
                    from_dir.as_fd(),
                    from_name,
                    to_dir.as_fd(),
                    to_name,
                    AtFlags::empty(),
                )
                .map_err(io_err)
            })();
            if let Err(e) = made {
                self.entry_error(link, "cannot create hard link", e)?;
            }
        }
        symlinks
            .par_iter()
            .try_for_each(|&i| self.create_symlink(i))
    }

    fn create_symlink(&self, i: usize) -> Result<()> {
        let item = &self.items[i];
        let target = item
            .node()
            .link_target
            .as_ref()
            .map(|t| t.0.as_slice())
            .unwrap_or_default();
        // A target no file system can hold is this entry's problem, not the restore's.
        if target.is_empty() {
            self.fail(i, "cannot create symlink: its target is empty".into());
            return Ok(());
        }
        if target.contains(&0) {
            self.fail(
                i,
                "cannot create symlink: its target contains a NUL byte".into(),
            );
            return Ok(());
        }
        let made = (|| -> std::io::Result<()> {
            let (parent, name) = self.fs.parent(&item.rel)?;
            self.clear(parent.as_fd(), name, &item.rel)?;
            nix::unistd::symlinkat(OsStr::from_bytes(target), parent.as_fd(), name).map_err(io_err)
        })();
        match made {
            Ok(()) => Ok(()),
            Err(e) => self.entry_error(i, "cannot create symlink", e),
        }
    }

    /// Metadata through an open descriptor: owner, then mode (a chown clears setuid bits),
    /// extended attributes, times.
    fn apply_fd(&self, fd: BorrowedFd, node: &Node) -> std::io::Result<()> {
        if self.chown {
            nix::unistd::fchown(fd, Some(node.uid.into()), Some(node.gid.into()))
                .map_err(io_err)?;
        }
        nix::sys::stat::fchmod(fd, self.mode(node)).map_err(io_err)?;
        for xattr in node.xattrs.iter().filter(|x| self.xattrs.wants(&x.name.0)) {
            tolerate_xattr(xattr::FileExt::set_xattr(
                &BorrowedFile(fd),
                xattr.name.to_os(),
                &xattr.value.0,
            ))?;
        }
        // Access times are not stored (they change on every read and would make every
        // directory's tree differ between backups): restore sets them to the mtime.
        nix::sys::stat::futimens(fd, &timespec(node.mtime_ns), &timespec(node.mtime_ns))
            .map_err(io_err)
    }

    /// Metadata of an entry that is not opened (a symlink, or a device node, whose opening
    /// can have side effects): by name in its parent, never following a symlink.
    fn apply_at(&self, parent: BorrowedFd, name: &OsStr, node: &Node) -> std::io::Result<()> {
        if self.chown {
            nix::unistd::fchownat(
                parent,
                name,
                Some(node.uid.into()),
                Some(node.gid.into()),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(io_err)?;
        }
        if node.kind != NodeKind::Symlink {
            chmod_nofollow(parent, name, self.mode(node))?;
        }
        let wanted: Vec<_> = node
            .xattrs
            .iter()
            .filter(|x| self.xattrs.wants(&x.name.0))
            .collect();
        if !wanted.is_empty() {
            // There is no fd-relative lsetxattr: the parent's descriptor is named through
            // /proc (resolved to that very directory) and `xattr::set` (lsetxattr) does not
            // follow the last component.
            let mut path = PathBuf::from(format!("/proc/self/fd/{}", parent.as_raw_fd()));
            path.push(name);
            for xattr in wanted {
                tolerate_xattr(xattr::set(&path, xattr.name.to_os(), &xattr.value.0))?;
            }
        }
        nix::sys::stat::utimensat(
            parent,
            name,
            &timespec(node.mtime_ns),
            &timespec(node.mtime_ns),
            UtimensatFlags::NoFollowSymlink,
        )
        .map_err(io_err)
    }

    /// Phase 3: metadata of everything not finished yet; directories last, deepest first,
    /// so setting a directory's times comes after everything inside it changed.
    fn finish_entries(&self) -> Result<()> {
        use rayon::prelude::*;
        (0..self.items.len())
            .into_par_iter()
            .filter(|&i| {
                let node = self.items[i].node();
                self.ok(i) && node.kind != NodeKind::Dir && !one_shot(node)
            })
            .for_each(|i| {
                if let Err(e) = self.finish_one(i) {
                    self.problem(i, format!("metadata: {e}"));
                }
            });
        for (i, item) in self.items.iter().enumerate().rev() {
            if item.node().kind != NodeKind::Dir || !self.ok(i) {
                continue;
            }
            let done = self
                .fs
                .dir(&item.rel)
                .and_then(|fd| self.apply_fd(fd.as_fd(), item.node()));
            if let Err(e) = done {
                self.problem(i, format!("metadata: {e}"));
            }
        }
        Ok(())
    }

    fn finish_one(&self, i: usize) -> std::io::Result<()> {
        let item = &self.items[i];
        match item.node().kind {
            NodeKind::File | NodeKind::Fifo => {
                // Non-blocking, so a FIFO opens without a writer.
                let fd = self.fs.open(
                    &item.rel,
                    OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
                )?;
                let kind = SFlag::from_bits_truncate(
                    nix::sys::stat::fstat(fd.as_fd()).map_err(io_err)?.st_mode,
                ) & SFlag::S_IFMT;
                let expected = if item.node().kind == NodeKind::File {
                    SFlag::S_IFREG
                } else {
                    SFlag::S_IFIFO
                };
                if kind != expected {
                    return Err(std::io::Error::other(
                        "replaced by another kind of entry during the restore",
                    ));
                }
                self.apply_fd(fd.as_fd(), item.node())
            }
            _ => {
                let (parent, name) = self.fs.parent(&item.rel)?;
                self.apply_at(parent.as_fd(), name, item.node())
            }
        }
    }

    /// The report's counts: what exists now, as the snapshot has it.
    fn counts(&self, report: &mut RestoreReport) {
        for (i, item) in self.items.iter().enumerate() {
            match self.state[i].load(Ordering::Relaxed) {
                OK => match item.node().kind {
                    NodeKind::File => {
                        report.files_restored += 1;
                        report.bytes_restored += item.node().size;
                    }
                    NodeKind::Dir => report.dirs_restored += 1,
                    _ => report.others_restored += 1,
                },
                SKIPPED => report.skipped += 1,
                _ => {}
            }
        }
    }
}

/// A borrowed descriptor as the `xattr` crate's `FileExt` (fsetxattr) wants it (it
/// implements the trait for `File` only; the trait is open to other descriptor holders).
struct BorrowedFile<'a>(BorrowedFd<'a>);

impl AsRawFd for BorrowedFile<'_> {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl xattr::FileExt for BorrowedFile<'_> {}

/// Restoring an attribute the file system or our privileges refuse is not an error.
fn tolerate_xattr(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e)
            if e.raw_os_error() == Some(nix::libc::ENOTSUP)
                || e.raw_os_error() == Some(nix::libc::EPERM) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `chmod` of `name` in `parent` that never follows a symlink. glibc (2.32+) and musl
/// implement `AT_SYMLINK_NOFOLLOW` (fchmodat2, or O_PATH and /proc); where the C library
/// refuses it, the entry is checked not to be a symlink first (it lives in a directory this
/// restore created and keeps at mode 0700 until the end, so it cannot be swapped meanwhile).
fn chmod_nofollow(parent: BorrowedFd, name: &OsStr, mode: Mode) -> std::io::Result<()> {
    match nix::sys::stat::fchmodat(parent, name, mode, FchmodatFlags::NoFollowSymlink) {
        Ok(()) => Ok(()),
        Err(Errno::ENOTSUP) => {
            let stat = stat_at(parent, name)?.ok_or_else(|| io_err(Errno::ENOENT))?;
            if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
                return Err(io_err(Errno::ELOOP));
            }
            nix::sys::stat::fchmodat(parent, name, mode, FchmodatFlags::FollowSymlink)
                .map_err(io_err)
        }
        Err(e) => Err(io_err(e)),
    }
}

/// A regular file with exactly one content blob: the common small file, restored by one task
/// from open to metadata (about half the system calls of the general path).
fn one_shot(node: &Node) -> bool {
    node.kind == NodeKind::File && node.content.len() == 1
}

/// Entries below each tree, counted once per path (saturating), computed bottom-up over the
/// distinct trees without recursion.
fn expanded_counts(
    trees: &HashMap<BlobId, Arc<Tree>>,
    root: &BlobId,
) -> Result<HashMap<BlobId, u64>> {
    let subtrees = |id: &BlobId| -> Vec<BlobId> {
        trees[id]
            .nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Dir)
            .filter_map(|n| n.subtree)
            .collect()
    };
    let mut counts: HashMap<BlobId, u64> = HashMap::new();
    let mut open: HashSet<BlobId> = HashSet::new();
    let mut stack = vec![(*root, false)];
    while let Some((id, children_done)) = stack.pop() {
        if counts.contains_key(&id) {
            continue;
        }
        if !children_done {
            if !open.insert(id) {
                // Ids are hashes of contents, so a tree cannot contain itself; one that
                // claims to is forged.
                return Err(RepoError::corrupt(
                    format!("tree {id}"),
                    "contains itself (a cycle of subtrees)",
                ));
            }
            stack.push((id, true));
            for child in subtrees(&id) {
                if !counts.contains_key(&child) {
                    stack.push((child, false));
                }
            }
            continue;
        }
        open.remove(&id);
        let count = trees[&id].nodes.iter().fold(0u64, |sum, node| {
            let below = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => counts.get(&sub).copied().unwrap_or(0),
                _ => 0,
            };
            sum.saturating_add(1).saturating_add(below)
        });
        counts.insert(id, count);
    }
    Ok(counts)
}

impl Repository {
    /// Lists every node of a snapshot below `root` in path order (directories before their
    /// contents, siblings in name order), leaving out what `exclude` matches.
    ///
    /// Each distinct tree is read once, however often the snapshot refers to it (equal
    /// directories are one blob). Restoring a shared subtree at every path that refers to
    /// it is what a restore must do, so the expansion is counted first, over the distinct
    /// trees: a snapshot that expands to more than `max_entries` is refused naming the
    /// smallest tree that does, before any memory is spent on the expansion.
    async fn collect_items(
        &self,
        index: &Index,
        root: &BlobId,
        exclude: Option<&GlobSet>,
        max_entries: u64,
    ) -> Result<Vec<Item>> {
        // Every distinct tree, read once however often it is shared.
        let mut trees: HashMap<BlobId, Arc<Tree>> = HashMap::new();
        TreeWalker::new(self, index)
            .walk([*root], |reached| {
                trees.insert(reached.id, Arc::new(reached.tree?));
                Ok(())
            })
            .await?;
        let counts = expanded_counts(&trees, root)?;
        if counts[root] > max_entries {
            // Name the smallest tree over the limit: the one whose sharing multiplies.
            let mut culprit = *root;
            let mut path = PathBuf::from("/");
            while let Some(node) = trees[&culprit].nodes.iter().find(|n| {
                n.kind == NodeKind::Dir && n.subtree.is_some_and(|s| counts[&s] > max_entries)
            }) {
                path.push(node.name.to_os());
                culprit = node.subtree.expect("checked above");
            }
            return Err(RepoError::corrupt(
                format!(
                    "tree {culprit} (at {} of the restored tree)",
                    path.display()
                ),
                format!(
                    "expands to {} entries, more than the limit of {max_entries}: its \
                     subtrees are shared so often that restoring them at every path would \
                     exhaust memory (raise the limit with --max-entries only for a snapshot \
                     you trust, or restore a smaller part with SNAPSHOT:PATH)",
                    counts[&culprit]
                ),
            ));
        }
        let mut items = Vec::with_capacity(usize::try_from(counts[root]).unwrap_or(0));
        // Depth first, children pushed in reverse: path order without sorting.
        let children = |tree: &Arc<Tree>, dir: &Path| -> Vec<(PathBuf, Arc<Tree>, usize)> {
            (0..tree.nodes.len())
                .rev()
                .map(|i| (dir.join(tree.nodes[i].name.to_os()), Arc::clone(tree), i))
                .collect()
        };
        let mut stack = children(&trees[root], Path::new(""));
        while let Some((rel, tree, index)) = stack.pop() {
            let node = &tree.nodes[index];
            // Parents come first, so an excluded directory is left out with all below it.
            if exclude.is_some_and(|set| set.is_match(Path::new("/").join(&rel))) {
                continue;
            }
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                stack.extend(children(&trees[&sub], &rel));
            }
            items.push(Item { rel, tree, index });
        }
        Ok(items)
    }

    /// Resolves restic's `SNAPSHOT[:PATH]` among the snapshots passing `filter`: `latest`, a
    /// full id or a unique prefix, optionally followed by `:PATH`, a directory inside the
    /// snapshot to restore instead of all of it. Returns the snapshot found and the snapshot
    /// to restore: the same, with its tree replaced by PATH's.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] when no snapshot matches or PATH is not a directory;
    /// [`RepoError::MissingObject`] when PATH does not exist in it; read errors.
    pub async fn resolve_restore_source(
        &self,
        index: &Index,
        spec: &str,
        filter: &crate::SnapshotFilter,
    ) -> Result<(crate::SnapshotEntry, Snapshot)> {
        let (snapshot_spec, subdir) = match spec.split_once(':') {
            Some((snapshot, path)) => (snapshot, Some(path)),
            None => (spec, None),
        };
        let entry = self.find_snapshot(snapshot_spec, filter).await?;
        let mut snapshot = entry.snapshot.clone();
        if let Some(path) = subdir.filter(|p| !p.trim_matches('/').is_empty()) {
            let node = self.find_node(index, &entry.snapshot, path).await?;
            snapshot.tree = node
                .subtree
                .filter(|_| node.kind == NodeKind::Dir)
                .ok_or_else(|| {
                    RepoError::InvalidInput(format!(
                        "{path:?} in snapshot {} is not a directory (use an include pattern \
                         to restore a file)",
                        entry.short_id()
                    ))
                })?;
        }
        Ok((entry, snapshot))
    }

    /// Restores `spec` (restic's `SNAPSHOT[:PATH]`, see
    /// [`Repository::resolve_restore_source`]) into `target`: finds the snapshot among all,
    /// loads the index, restores.
    pub async fn restore_spec(
        &self,
        spec: &str,
        target: &Path,
        options: RestoreOptions,
    ) -> Result<RestoreReport> {
        let index = self.load_index().await?;
        let (_, snapshot) = self
            .resolve_restore_source(&index, spec, &crate::SnapshotFilter::default())
            .await?;
        self.restore(index, &snapshot, target, options).await
    }

    /// Restores `snapshot` (or the parts `options` select) under `target`.
    ///
    /// Everything is created beneath the target and nowhere else (see the module's
    /// documentation); problems with single entries are listed in
    /// [`RestoreReport::errors`] and the restore goes on.
    pub async fn restore(
        &self,
        index: Arc<Index>,
        snapshot: &Snapshot,
        target: &Path,
        options: RestoreOptions,
    ) -> Result<RestoreReport> {
        let include = crate::ops::patterns::compile(&options.include, "include")?;
        let exclude = crate::ops::patterns::compile(&options.exclude, "exclude")?;
        let xattrs = XattrFilter::new(&options.include_xattr, &options.exclude_xattr)?;
        let max_entries = options.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        let mut items = self
            .collect_items(&index, &snapshot.tree, exclude.as_ref(), max_entries)
            .await?;
        if let Some(include) = &include {
            keep_included(&mut items, include);
        }
        let fs = open_target(target).await?;
        let counters = Arc::new(totals(&items));
        let reporter = Reporter::start(
            options.progress.clone(),
            Arc::clone(&counters),
            Duration::from_secs(1),
        );
        let restorer = Arc::new(Restorer::new(items, fs, xattrs, &options));
        // 1. The namespace: directories, files at full size, special files.
        let (files, hardlinks, symlinks) = {
            let restorer = Arc::clone(&restorer);
            tokio::task::spawn_blocking(move || {
                restorer.create_dirs()?;
                restorer.create_entries()
            })
            .await
            .map_err(RepoError::task("restore task"))??
        };
        #[cfg(test)]
        tests::after_namespace(target);
        let links = (hardlinks, symlinks);

        // 2. Content: plan per pack, fetch, decode, write.
        let per_pack = plan_content(&index, &restorer, &files)?;
        futures::stream::iter(per_pack)
            .map(|(pack, blobs)| {
                let (restorer, counters) = (Arc::clone(&restorer), Arc::clone(&counters));
                let cancel = options.cancel.clone();
                async move {
                    if cancel.is_cancelled() {
                        return Err(RepoError::Cancelled);
                    }
                    self.restore_pack(pack, blobs, restorer, counters).await
                }
            })
            .buffer_unordered(self.transfer_concurrency().max(2))
            .try_collect::<Vec<()>>()
            .await?;

        let (deleted, verified) = self
            .finish_restore(
                &restorer,
                &index,
                files,
                links,
                (include, exclude),
                &options,
            )
            .await?;
        drop(reporter);
        let mut report = RestoreReport {
            files_verified: verified,
            deleted,
            errors: std::mem::take(&mut *restorer.problems.lock().expect("problems lock")),
            ..Default::default()
        };
        restorer.counts(&mut report);
        Ok(report)
    }

    /// The steps after content: delete extraneous entries (`--delete`), links, metadata,
    /// and verification (`--verify`). Returns (entries deleted, files verified).
    async fn finish_restore(
        &self,
        restorer: &Arc<Restorer>,
        index: &Arc<Index>,
        files: Vec<usize>,
        links: (Vec<HardLink>, Vec<usize>),
        patterns: (Option<GlobSet>, Option<GlobSet>),
        options: &RestoreOptions,
    ) -> Result<(u64, u64)> {
        // Removing entries changes directories' times, so it comes before metadata.
        let blocking = |f: Phase| on_blocking(restorer, f);
        let (include, exclude) = patterns;
        let (hardlinks, symlinks) = links;
        let deleted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if options.delete {
            let deleted = Arc::clone(&deleted);
            blocking(Box::new(move |r: &Restorer| {
                let n = r.delete_extraneous(include.as_ref(), exclude.as_ref())?;
                deleted.store(n, Ordering::Relaxed);
                Ok(())
            }))
            .await?;
        }
        // 3. Hard links and symlinks, then metadata (files, then directories deepest first).
        blocking(Box::new(move |r: &Restorer| {
            r.link_entries(&hardlinks, &symlinks)?;
            r.finish_entries()
        }))
        .await?;
        let verified = Arc::new(std::sync::atomic::AtomicU64::new(0));
        if options.verify {
            let keys = Arc::clone(&self.keys);
            let index = Arc::clone(index);
            let verified = Arc::clone(&verified);
            blocking(Box::new(move |r: &Restorer| {
                verified.store(r.verify_files(&keys, &index, &files), Ordering::Relaxed);
                Ok(())
            }))
            .await?;
        }
        Ok((
            deleted.load(Ordering::Relaxed),
            verified.load(Ordering::Relaxed),
        ))
    }

    /// Writes the blobs `blobs` of `pack` wherever they are used, read through the one blob
    /// reader (coalesced ranges, decoded on every core).
    async fn restore_pack(
        &self,
        pack: PackId,
        blobs: PackBlobs,
        restorer: Arc<Restorer>,
        counters: Arc<Counters>,
    ) -> Result<()> {
        self.read_pack_blobs(pack, blobs.into_values().collect(), move |blob| {
            let plain = blob.plain?;
            let zero = plain.iter().all(|&b| b == 0);
            for (file, offset) in blob.tag {
                restorer.write_blob(file, offset, &plain, zero)?;
                counters
                    .bytes_done
                    .fetch_add(plain.len() as u64, Ordering::Relaxed);
            }
            Ok(())
        })
        .await
    }
}

/// Opens (creating as needed) the restore target, walking to it without following a
/// symlink anyone else could have planted (see `beneath.rs`).
async fn open_target(target: &Path) -> Result<Beneath> {
    let target = target.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Beneath::open_target(&target).map_err(|e| RepoError::io(&target, e))
    })
    .await
    .map_err(RepoError::task("restore task"))?
}

/// Runs one restore phase on a blocking thread (they make system calls).
async fn on_blocking(restorer: &Arc<Restorer>, phase: Phase) -> Result<()> {
    let restorer = Arc::clone(restorer);
    tokio::task::spawn_blocking(move || phase(&restorer))
        .await
        .map_err(RepoError::task("restore task"))?
}

/// Progress counters with the files and bytes a restore of `items` will write.
fn totals(items: &[Item]) -> Counters {
    let counters = Counters::default();
    for item in items.iter().filter(|i| i.node().kind == NodeKind::File) {
        counters.total_files.fetch_add(1, Ordering::Relaxed);
        (counters.total_bytes).fetch_add(item.node().size, Ordering::Relaxed);
    }
    counters
}

/// Keeps the items `include` selects and the directories leading to them.
fn keep_included(items: &mut Vec<Item>, include: &GlobSet) {
    let selected: Vec<bool> = items
        .iter()
        .map(|i| matches_self_or_ancestor(include, &i.rel))
        .collect();
    let mut needed_dirs = HashSet::new();
    for (item, keep) in items.iter().zip(&selected) {
        if *keep {
            for ancestor in item.rel.ancestors().skip(1) {
                needed_dirs.insert(ancestor.to_path_buf());
            }
        }
    }
    let mut keep = selected.into_iter();
    items.retain(|item| keep.next().unwrap_or(false) || needed_dirs.contains(&item.rel));
}

/// Where each blob of each file goes, grouped by pack and ordered by offset in it, so each
/// pack is read once (coalesced) however many files share its blobs.
fn plan_content(
    index: &Index,
    restorer: &Restorer,
    files: &[usize],
) -> Result<HashMap<PackId, PackBlobs>> {
    let mut per_pack: HashMap<PackId, PackBlobs> = HashMap::new();
    for &file in files {
        let item = &restorer.items[file];
        let mut offset = 0u64;
        for id in &item.node().content {
            let location = index
                .get(id)
                .filter(|l| l.entry.blob_type == BlobType::Data)
                .ok_or_else(|| RepoError::MissingObject {
                    object: format!("data blob {id} of {}", item.rel.display()),
                })?;
            per_pack
                .entry(location.pack)
                .or_default()
                .entry(location.entry.offset)
                .or_insert_with(|| (location.entry, Vec::new()))
                .1
                .push((file, offset));
            offset += location.entry.plain_len as u64;
        }
    }
    Ok(per_pack)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::backup::BackupOptions;
    use crate::tree::Name;
    use crate::{InitOptions, Storage};

    type Hook = Box<dyn Fn() + Send>;

    /// Run after the namespace is created and before any content is written, for restores
    /// into the given target: lets a test do what a case-insensitive file system does when
    /// a restore step creates a second name for the same entry.
    static HOOKS: Mutex<Vec<(PathBuf, Hook)>> = Mutex::new(Vec::new());

    pub(super) fn after_namespace(target: &Path) {
        for (hooked, hook) in HOOKS.lock().expect("hooks").iter() {
            if hooked == target {
                hook();
            }
        }
    }

    fn node(name: &str, kind: NodeKind) -> Node {
        Node {
            mtime_ns: 1_600_000_000_000_000_000,
            ctime_ns: 1_600_000_000_000_000_000,
            ..Node::new(name, kind)
        }
    }

    /// Every path below `dir` with its kind and content or link target.
    fn fingerprint(dir: &Path) -> Vec<(PathBuf, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                let meta = path.symlink_metadata().unwrap();
                let what = if meta.is_dir() {
                    stack.push(path.clone());
                    "dir".to_string()
                } else if meta.is_symlink() {
                    format!("-> {:?}", std::fs::read_link(&path).unwrap())
                } else {
                    format!("{:?}", std::fs::read(&path).unwrap())
                };
                out.push((path, what));
            }
        }
        out.sort();
        out
    }

    /// A snapshot holding directory `S` (two files) and a symlink `s` pointing at
    /// `outside`: on a case-insensitive target the two names are one entry.
    async fn colliding_snapshot(outside: &Path) -> (Repository, Snapshot) {
        let options = InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            pack_size: 64 * 1024,
            ..Default::default()
        };
        let repo = Repository::init(Storage::in_memory(), b"pw", options)
            .await
            .unwrap();
        let outside = outside.as_os_str().as_bytes().to_vec();
        let report = repo
            .backup_built_tree(vec!["/x".into()], BackupOptions::default(), move |store| {
                let mut small = node("victim", NodeKind::File);
                small.content = vec![store(BlobType::Data, b"written by the snapshot")?];
                small.size = 23;
                // Two blobs: written by the general path, not in one shot.
                let mut big = node("big", NodeKind::File);
                big.content = vec![
                    store(BlobType::Data, &[1u8; 1000])?,
                    store(BlobType::Data, &[2u8; 1000])?,
                ];
                big.size = 2000;
                let inner = store(
                    BlobType::Tree,
                    &Tree {
                        nodes: vec![big, small],
                    }
                    .encode()?,
                )?;
                let mut dir = node("S", NodeKind::Dir);
                dir.subtree = Some(inner);
                let mut link = node("s", NodeKind::Symlink);
                link.link_target = Some(Name(outside));
                store(
                    BlobType::Tree,
                    &Tree {
                        nodes: vec![dir, link],
                    }
                    .encode()?,
                )
            })
            .await
            .unwrap();
        (repo, report.snapshot)
    }

    /// What a case-insensitive file system does to the old restore order, forced here on a
    /// case-sensitive one at the worst moment (after the directories exist, before any
    /// content is written): the entry `S` becomes the symlink to outside. Content writes
    /// must fail for those files alone and nothing outside may change.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_directory_swapped_for_a_symlink_mid_restore_is_never_written_through() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("victim"), b"precious").unwrap();
        std::fs::write(outside.path().join("big"), b"precious too").unwrap();
        let before = fingerprint(outside.path());
        let (repo, snapshot) = colliding_snapshot(outside.path()).await;
        let target = tempfile::tempdir().unwrap();
        let folded = target.path().join("S");
        let to = outside.path().to_path_buf();
        HOOKS.lock().unwrap().push((
            target.path().to_path_buf(),
            Box::new(move || {
                std::fs::remove_dir_all(&folded).unwrap();
                std::os::unix::fs::symlink(&to, &folded).unwrap();
            }),
        ));
        let report = repo
            .restore(
                repo.load_index().await.unwrap(),
                &snapshot,
                target.path(),
                RestoreOptions {
                    verify: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            fingerprint(outside.path()),
            before,
            "outside the target changed"
        );
        let failed: Vec<_> = report.errors.iter().map(|(p, _)| p.clone()).collect();
        assert!(
            failed.contains(&target.path().join("S/victim")),
            "{report:?}"
        );
        assert!(failed.contains(&target.path().join("S/big")), "{report:?}");
    }

    /// The same collision as the file system reports it when the symlink is created over
    /// the directory's folded name: a per-entry error, the directory and its files kept.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_symlink_colliding_with_a_restored_directory_is_an_entry_error() {
        let outside = tempfile::tempdir().unwrap();
        let before = fingerprint(outside.path());
        let (repo, snapshot) = colliding_snapshot(outside.path()).await;
        let target = tempfile::tempdir().unwrap();
        // Folding `s` onto `S`: the restored directory now answers to the symlink's name.
        let (from, to) = (target.path().join("S"), target.path().join("s"));
        HOOKS.lock().unwrap().push((
            target.path().to_path_buf(),
            Box::new(move || std::fs::rename(&from, &to).unwrap()),
        ));
        let report = repo
            .restore(
                repo.load_index().await.unwrap(),
                &snapshot,
                target.path(),
                RestoreOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(fingerprint(outside.path()), before);
        let (_, message) = report
            .errors
            .iter()
            .find(|(p, _)| p == &target.path().join("s"))
            .expect("the symlink is reported");
        assert!(message.contains("case-insensitive"), "{message}");
        assert!(target.path().join("s").symlink_metadata().unwrap().is_dir());
        assert_eq!(report.others_restored, 0, "{report:?}");
    }
}
