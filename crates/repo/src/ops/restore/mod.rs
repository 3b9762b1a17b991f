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

use cairn_pack::{BlobType, PackEntry, PackId};
use futures::{StreamExt, TryStreamExt};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FchmodatFlags, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::beneath::{io_err, is_dir, list, remove_at, stat_at, Beneath};
use crate::ops::progress::{CancelToken, Counters, ProgressFn, Reporter};
use crate::snapshot::Snapshot;
use crate::tree::{Node, NodeKind, Tree};
use crate::Repository;

mod delete;
mod expand;
use expand::Listing;
mod shape;
mod verify;

/// The default of [`RestoreOptions::max_entries`]: 16 Mi entries. Memory does not grow with
/// the entries restored (they are restored a batch at a time); the limit stops a snapshot
/// whose shared subtrees expand without end from filling the target.
pub const DEFAULT_MAX_ENTRIES: u64 = 1 << 24;

/// Entries restored per batch, at most: about 20 MB of paths, nodes' trees and state. (Unit
/// tests use tiny batches, so every test restore crosses batch boundaries.)
pub const BATCH_ENTRIES: usize = if cfg!(test) { 5 } else { 65_536 };

/// Content blobs per batch, at most (each planned blob takes about 80 bytes until written).
pub const BATCH_BLOBS: usize = if cfg!(test) { 7 } else { 262_144 };

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
    /// A directory's own listing (for `--delete`), held only while its batch is restored.
    listing: Option<Listing>,
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

/// A hard link to make: (item index, device and inode of the file it links to).
type HardLink = (usize, (u64, u64));

/// What a batch's namespace phase created and left for later phases.
#[derive(Default)]
struct Created {
    /// Regular files whose content is to be written.
    files: Vec<usize>,
    hardlinks: Vec<HardLink>,
    symlinks: Vec<usize>,
    /// Multiply-linked inodes first named in this batch, with that item.
    firsts: Vec<((u64, u64), usize)>,
}

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

/// What every batch of one restore shares: the target, the options that shape what is
/// applied, and what must be remembered across batches (directories made, hard links'
/// first paths, problems). Nothing here grows with the number of files, except the hard
/// link map, which holds one path per multiply-linked inode.
struct Shared {
    fs: Beneath,
    /// Set owners (running as root, and not `no_owner`).
    chown: bool,
    no_setid: bool,
    no_devices: bool,
    xattrs: XattrFilter,
    /// Device and inode of every directory this restore made (or kept): a later entry of
    /// the same name is a collision, never a reason to remove it.
    dirs: Mutex<HashSet<(u64, u64)>>,
    /// Where each multiply-linked inode was first restored (device, inode).
    first_links: Mutex<HashMap<(u64, u64), FirstLink>>,
    problems: Mutex<Vec<(PathBuf, String)>>,
}

/// The first name of a multiply-linked inode, which later names link to.
#[derive(Clone, Debug)]
enum FirstLink {
    /// An item of the batch being restored.
    InBatch(usize),
    /// Restored by an earlier batch, at this path below the target.
    Restored(PathBuf),
    /// Could not be restored: its other names fail too.
    Failed,
}

impl Shared {
    fn new(fs: Beneath, xattrs: XattrFilter, options: &RestoreOptions) -> Self {
        Shared {
            fs,
            chown: nix::unistd::geteuid().is_root() && !options.no_owner,
            no_setid: options.no_setid,
            no_devices: options.no_devices,
            xattrs,
            dirs: Mutex::new(HashSet::new()),
            first_links: Mutex::new(HashMap::new()),
            problems: Mutex::new(Vec::new()),
        }
    }

    fn report_problem(&self, rel: &Path, message: String) {
        let path = self.fs.path_of(rel);
        self.problems
            .lock()
            .expect("problems lock")
            .push((path, message));
    }
}

impl Shared {
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
}

impl Shared {
    /// Metadata of the restored directories, deepest first (`dirs` is in path order), so
    /// setting a directory's times comes after everything inside it changed.
    fn finish_dirs(&self, dirs: &[(PathBuf, Node)]) {
        for (rel, node) in dirs.iter().rev() {
            let done = self
                .fs
                .dir(rel)
                .and_then(|fd| self.apply_fd(fd.as_fd(), node));
            if let Err(e) = done {
                self.report_problem(rel, format!("metadata: {e}"));
            }
        }
    }
}

/// One batch of a restore: a run of entries in path order, restored phase by phase.
struct Restorer {
    items: Vec<Item>,
    shared: Arc<Shared>,
    state: Vec<AtomicU8>,
}

impl Restorer {
    fn new(items: Vec<Item>, shared: Arc<Shared>) -> Self {
        let state = items.iter().map(|_| AtomicU8::new(OK)).collect();
        Restorer {
            items,
            shared,
            state,
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
        self.shared.report_problem(&self.items[i].rel, message);
    }

    /// A single entry's failure: reported unless it is one that stops the restore.
    fn entry_error(&self, i: usize, what: &str, e: std::io::Error) -> Result<()> {
        if fatal(&e) {
            return Err(RepoError::io(self.shared.fs.path_of(&self.items[i].rel), e));
        }
        self.fail(i, format!("{what}: {e}"));
        Ok(())
    }

    /// Phase 1, in order (parents first): every directory, mode 0700 while it is filled.
    /// `failed_dir` is the last directory that could not be made, carried from batch to
    /// batch: entries below it fail with it, silently.
    fn create_dirs(&self, failed_dir: &mut Option<PathBuf>) -> Result<()> {
        for (i, item) in self.items.iter().enumerate() {
            if let Some(dir) = failed_dir {
                if item.rel.starts_with(&*dir) {
                    self.state[i].store(FAILED, Ordering::Relaxed);
                    continue;
                }
                *failed_dir = None;
            }
            if item.node().kind != NodeKind::Dir {
                continue;
            }
            if let Err(e) = self.shared.make_dir(&item.rel) {
                self.entry_error(i, "cannot create directory", e)?;
                *failed_dir = Some(item.rel.clone());
            }
        }
        Ok(())
    }

    /// Phase 1, in parallel: regular files (at full size; one-blob files wait for their
    /// blob), FIFOs and devices. Returns the files whose content must be written, the hard
    /// links to make and the symlinks to create (both after the content).
    fn create_entries(&self) -> Result<Created> {
        use rayon::prelude::*;
        let mut created = Created::default();
        let mut to_create = Vec::new();
        {
            let mut first_links = self.shared.first_links.lock().expect("links lock");
            for (i, item) in self.items.iter().enumerate() {
                if !self.ok(i) {
                    continue;
                }
                let node = item.node();
                match node.kind {
                    NodeKind::Dir => {}
                    NodeKind::Symlink => created.symlinks.push(i),
                    NodeKind::Dev | NodeKind::Chardev if self.shared.no_devices => {
                        self.state[i].store(SKIPPED, Ordering::Relaxed);
                    }
                    NodeKind::File if node.links > 1 && node.inode != 0 => {
                        let inode = (node.device, node.inode);
                        match first_links.entry(inode) {
                            std::collections::hash_map::Entry::Occupied(_) => {
                                created.hardlinks.push((i, inode));
                            }
                            std::collections::hash_map::Entry::Vacant(first) => {
                                first.insert(FirstLink::InBatch(i));
                                created.firsts.push((inode, i));
                                to_create.push(i);
                            }
                        }
                    }
                    _ => to_create.push(i),
                }
            }
        }
        to_create.par_iter().try_for_each(|&i| self.create_one(i))?;
        created.files = to_create
            .into_iter()
            .filter(|&i| self.items[i].node().kind == NodeKind::File && self.ok(i))
            .collect();
        Ok(created)
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
                let file = self.shared.create_file(&item.rel)?;
                return file.set_len(node.size);
            }
            let (parent, name) = self.shared.fs.parent(&item.rel)?;
            self.shared.clear(parent.as_fd(), name, &item.rel)?;
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
        let file = match self.shared.fs.open(&item.rel, OFlag::O_WRONLY) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => return self.entry_error(i, "cannot open to write", e),
        };
        file.write_all_at(plain, offset)
            .map_err(|e| RepoError::io(self.shared.fs.path_of(&item.rel), e))
    }

    /// Restores a one-blob file completely: create, write, metadata.
    fn write_one_shot(&self, i: usize, plain: &[u8], zero: bool) -> Result<()> {
        let item = &self.items[i];
        let file = match self.shared.create_file(&item.rel) {
            Ok(file) => file,
            Err(e) => return self.entry_error(i, "cannot create file", e),
        };
        let written = if zero {
            file.set_len(plain.len() as u64)
        } else {
            file.write_all_at(plain, 0)
        };
        written.map_err(|e| RepoError::io(self.shared.fs.path_of(&item.rel), e))?;
        if let Err(e) = self.shared.apply_fd(file.as_fd(), item.node()) {
            self.problem(i, format!("metadata: {e}"));
        }
        Ok(())
    }

    /// Hard links (to files restored earlier), then symlinks: last, so no restore step
    /// ever runs after a symlink exists (and none would follow one anyway). Then the first
    /// names this batch restored are remembered for later batches' links.
    fn link_entries(&self, created: &Created) -> Result<()> {
        use rayon::prelude::*;
        for &(link, inode) in &created.hardlinks {
            let first = self.shared.first_links.lock().expect("links lock")[&inode].clone();
            let from = match first {
                FirstLink::InBatch(first) if self.ok(first) => self.items[first].rel.clone(),
                FirstLink::Restored(path) => path,
                FirstLink::InBatch(_) | FirstLink::Failed => {
                    self.fail(
                        link,
                        "not linked: the file it links to was not restored".into(),
                    );
                    continue;
                }
            };
            let made = (|| -> std::io::Result<()> {
                let (from_dir, from_name) = self.shared.fs.parent(&from)?;
                let (to_dir, to_name) = self.shared.fs.parent(&self.items[link].rel)?;
                self.shared
                    .clear(to_dir.as_fd(), to_name, &self.items[link].rel)?;
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
        let mut first_links = self.shared.first_links.lock().expect("links lock");
        for &(inode, first) in &created.firsts {
            let settled = if self.ok(first) {
                FirstLink::Restored(self.items[first].rel.clone())
            } else {
                FirstLink::Failed
            };
            first_links.insert(inode, settled);
        }
        drop(first_links);
        created
            .symlinks
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
            let (parent, name) = self.shared.fs.parent(&item.rel)?;
            self.shared.clear(parent.as_fd(), name, &item.rel)?;
            nix::unistd::symlinkat(OsStr::from_bytes(target), parent.as_fd(), name).map_err(io_err)
        })();
        match made {
            Ok(()) => Ok(()),
            Err(e) => self.entry_error(i, "cannot create symlink", e),
        }
    }

    /// Phase 3: metadata of everything but directories not finished yet (directories get
    /// theirs when the whole restore is done: [`Shared::finish_dirs`]).
    fn finish_entries(&self) {
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
    }

    /// The directories of this batch that were made, with their listings (for `--delete`).
    fn listed_dirs(&self) -> Vec<(PathBuf, Listing)> {
        self.items
            .iter()
            .enumerate()
            .filter(|(i, item)| item.node().kind == NodeKind::Dir && self.ok(*i))
            .filter_map(|(_, item)| Some((item.rel.clone(), item.listing.clone()?)))
            .collect()
    }

    /// The directories this batch restored, for their metadata at the end.
    fn restored_dirs(&self) -> impl Iterator<Item = (PathBuf, Node)> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter(|(i, item)| item.node().kind == NodeKind::Dir && self.ok(*i))
            .map(|(_, item)| (item.rel.clone(), item.node().clone()))
    }

    fn finish_one(&self, i: usize) -> std::io::Result<()> {
        let item = &self.items[i];
        match item.node().kind {
            NodeKind::File | NodeKind::Fifo => {
                // Non-blocking, so a FIFO opens without a writer.
                let fd = self.shared.fs.open(
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
                self.shared.apply_fd(fd.as_fd(), item.node())
            }
            _ => {
                let (parent, name) = self.shared.fs.parent(&item.rel)?;
                self.shared.apply_at(parent.as_fd(), name, item.node())
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

impl Repository {
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
    ///
    /// Entries are restored a batch at a time, in path order ([`BATCH_ENTRIES`] entries or
    /// [`BATCH_BLOBS`] content blobs): memory holds one batch, the trees of the current
    /// path, and one record per directory (for its metadata at the end), whatever the
    /// number of files.
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
        let totals = self
            .restore_totals(&index, &snapshot.tree, max_entries)
            .await?;
        let mut expander = expand::Expander::start(
            self,
            Arc::clone(&index),
            &snapshot.tree,
            include.as_ref(),
            exclude.as_ref(),
        )
        .await?;
        let shared = Arc::new(Shared::new(open_target(target).await?, xattrs, &options));
        // With patterns, fewer files than these are restored: the totals are an upper bound.
        let counters = Arc::new(Counters::default());
        counters.total_files.store(totals.files, Ordering::Relaxed);
        counters.total_bytes.store(totals.bytes, Ordering::Relaxed);
        let reporter = Reporter::start(
            options.progress.clone(),
            Arc::clone(&counters),
            Duration::from_secs(1),
        );
        let mut report = RestoreReport::default();
        if options.delete {
            let root = (PathBuf::new(), expander.root().clone());
            let batch = Arc::new(Restorer::new(Vec::new(), Arc::clone(&shared)));
            report.deleted +=
                delete_in(&batch, expander.blobs(), vec![root], (&include, &exclude)).await?;
        }
        let mut failed_dir = None;
        let mut dirs: Vec<(PathBuf, Node)> = Vec::new();
        loop {
            let items = expander.next_batch(BATCH_ENTRIES, BATCH_BLOBS).await?;
            if items.is_empty() {
                break;
            }
            let batch = Arc::new(Restorer::new(items, Arc::clone(&shared)));
            failed_dir = self
                .restore_batch(
                    &batch,
                    &index,
                    failed_dir,
                    (&include, &exclude),
                    &options,
                    &counters,
                    &mut report,
                    expander.blobs(),
                )
                .await?;
            dirs.extend(batch.restored_dirs());
            batch.counts(&mut report);
            // Directory descriptors are kept per batch; later ones reopen what they need.
            shared.fs.forget_all();
        }
        // Directories last, deepest first: nothing changes inside them after this.
        let finishing = Arc::clone(&shared);
        tokio::task::spawn_blocking(move || finishing.finish_dirs(&dirs))
            .await
            .map_err(RepoError::task("restore task"))?;
        drop(reporter);
        report.errors = std::mem::take(&mut *shared.problems.lock().expect("problems lock"));
        Ok(report)
    }

    /// Restores one batch: namespace, content, `--delete`, links, metadata, `--verify`.
    /// Returns the last directory that could not be made (entries below it fail with it).
    #[allow(clippy::too_many_arguments)]
    async fn restore_batch(
        &self,
        batch: &Arc<Restorer>,
        index: &Arc<Index>,
        failed_dir: Option<PathBuf>,
        patterns: (&Option<GlobSet>, &Option<GlobSet>),
        options: &RestoreOptions,
        counters: &Arc<Counters>,
        report: &mut RestoreReport,
        trees: &ReadAhead,
    ) -> Result<Option<PathBuf>> {
        // 1. The namespace: directories, files at full size, special files.
        let (created, failed_dir) = {
            let batch = Arc::clone(batch);
            tokio::task::spawn_blocking(move || {
                let mut failed_dir = failed_dir;
                batch.create_dirs(&mut failed_dir)?;
                Ok::<_, RepoError>((batch.create_entries()?, failed_dir))
            })
            .await
            .map_err(RepoError::task("restore task"))??
        };
        #[cfg(test)]
        tests::after_namespace(&batch.shared.fs.path_of(Path::new("")));

        // 2. Content: plan per pack, fetch, decode, write.
        let per_pack = plan_content(index, batch, &created.files)?;
        futures::stream::iter(per_pack)
            .map(|(pack, blobs)| {
                let (batch, counters) = (Arc::clone(batch), Arc::clone(counters));
                let cancel = options.cancel.clone();
                async move {
                    if cancel.is_cancelled() {
                        return Err(RepoError::Cancelled);
                    }
                    self.restore_pack(pack, blobs, batch, counters).await
                }
            })
            .buffer_unordered(self.transfer_concurrency().max(2))
            .try_collect::<Vec<()>>()
            .await?;

        // Removing entries changes directories' times, so it comes before metadata.
        if options.delete {
            let dirs = batch.listed_dirs();
            report.deleted += delete_in(batch, trees, dirs, patterns).await?;
        }
        // 3. Hard links and symlinks, then metadata of all but directories.
        let files = created.files.clone();
        on_blocking(
            batch,
            Box::new(move |r: &Restorer| {
                r.link_entries(&created)?;
                r.finish_entries();
                Ok(())
            }),
        )
        .await?;
        if options.verify {
            let keys = Arc::clone(&self.keys);
            let index = Arc::clone(index);
            let verified = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let count = Arc::clone(&verified);
            on_blocking(
                batch,
                Box::new(move |r: &Restorer| {
                    count.store(r.verify_files(&keys, &index, &files), Ordering::Relaxed);
                    Ok(())
                }),
            )
            .await?;
            report.files_verified += verified.load(Ordering::Relaxed);
        }
        Ok(failed_dir)
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

/// `--delete` in the directories `dirs` (path below the target and listing), on a blocking
/// thread; returns how many entries were removed.
async fn delete_in(
    batch: &Arc<Restorer>,
    trees: &ReadAhead,
    dirs: Vec<(PathBuf, Listing)>,
    patterns: (&Option<GlobSet>, &Option<GlobSet>),
) -> Result<u64> {
    let mut resolved = Vec::with_capacity(dirs.len());
    for (dir, listing) in dirs {
        resolved.push((dir, delete::Present::of(trees, listing).await?));
    }
    let dirs = resolved;
    let (include, exclude) = (patterns.0.clone(), patterns.1.clone());
    let deleted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = Arc::clone(&deleted);
    on_blocking(
        batch,
        Box::new(move |r: &Restorer| {
            let n = r.delete_extraneous(&dirs, include.as_ref(), exclude.as_ref())?;
            count.store(n, Ordering::Relaxed);
            Ok(())
        }),
    )
    .await?;
    Ok(deleted.load(Ordering::Relaxed))
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

    /// A tree restored in batches of a few entries: hard links whose first name is in an
    /// earlier batch, directories whose entries span batches, include patterns selecting
    /// entries deep in later batches, `--delete` and `--verify` across batches.
    #[tokio::test(flavor = "multi_thread")]
    async fn batches_restore_what_one_pass_would() {
        use std::os::unix::fs::MetadataExt;
        let source = tempfile::tempdir().unwrap();
        let root = source.path();
        for d in ["a", "a/deep", "b", "c/d/e"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        for n in 0..12 {
            let dir = ["a", "a/deep", "b", "c/d/e"][n % 4];
            let content = format!("file {n} ").repeat(n * 300 + 1);
            std::fs::write(root.join(dir).join(format!("f{n:02}")), content).unwrap();
        }
        std::fs::hard_link(root.join("a/f00"), root.join("c/d/e/link-to-f00")).unwrap();
        std::fs::hard_link(root.join("a/f00"), root.join("b/link-to-f00")).unwrap();
        std::os::unix::fs::symlink("../a/f00", root.join("b/sym")).unwrap();
        let options = InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            ..Default::default()
        };
        let repo = Repository::init(Storage::in_memory(), b"pw", options)
            .await
            .unwrap();
        let snapshot = repo
            .backup(&[root.to_path_buf()], BackupOptions::default())
            .await
            .unwrap()
            .snapshot;
        let index = repo.load_index().await.unwrap();
        let restored_root = |target: &Path| {
            let mut path = target.to_path_buf();
            path.push(root.strip_prefix("/").unwrap());
            path
        };

        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(restored_root(target.path()).join("b")).unwrap();
        std::fs::write(restored_root(target.path()).join("b/stray"), b"x").unwrap();
        let report = repo
            .restore(
                Arc::clone(&index),
                &snapshot,
                target.path(),
                RestoreOptions {
                    verify: true,
                    delete: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!(report.deleted, 1, "b/stray");
        let restored = restored_root(target.path());
        let strip = |entries: Vec<(PathBuf, String)>, base: &Path| -> Vec<(PathBuf, String)> {
            entries
                .into_iter()
                .map(|(p, what)| (p.strip_prefix(base).unwrap().to_path_buf(), what))
                .collect()
        };
        assert_eq!(
            strip(fingerprint(&restored), &restored),
            strip(fingerprint(root), root)
        );
        let inode = |p: &str| std::fs::metadata(restored.join(p)).unwrap().ino();
        assert_eq!(inode("a/f00"), inode("c/d/e/link-to-f00"));
        assert_eq!(inode("a/f00"), inode("b/link-to-f00"));
        assert_eq!(
            report.files_verified, 12,
            "hard links are verified through their first name"
        );
        let mtime = |p: &Path| std::fs::metadata(p).unwrap().mtime();
        for d in ["a", "a/deep", "c/d/e", "c"] {
            assert_eq!(mtime(&restored.join(d)), mtime(&root.join(d)), "{d}");
        }

        // Only entries of a late batch, with the directories leading to them.
        let target = tempfile::tempdir().unwrap();
        let report = repo
            .restore(
                index,
                &snapshot,
                target.path(),
                RestoreOptions {
                    include: vec!["e/f11".into(), "a/deep".into()],
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        let restored = restored_root(target.path());
        let mut names: Vec<PathBuf> = strip(fingerprint(&restored), &restored)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        names.sort();
        let expected: Vec<PathBuf> = [
            "a",
            "a/deep",
            "a/deep/f01",
            "a/deep/f05",
            "a/deep/f09",
            "c",
            "c/d",
            "c/d/e",
            "c/d/e/f11",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(names, expected);
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
