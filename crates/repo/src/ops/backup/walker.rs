//! Walking the source tree: one tree blob per directory, written bottom-up as each directory
//! completes, so memory depends on the depth and width being worked on, not on the number
//! of files. Directories and files are processed in parallel on rayon.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_chunker::Chunker;
use cairn_pack::{BlobId, BlobType};
use rayon::prelude::*;

use super::excludes::Excludes;
use super::metadata::{kind_of, node_for, read_xattrs, OwnerNames};
use super::parent_dir::ParentDir;
use super::saver::Saver;
use super::BackupIssue;
use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::progress::Counters;
use crate::tree::{Name, Node, NodeKind, Splitter, TreeWriter, SINGLE_MAX};
use crate::Repository;

/// (device, inode) of a file with several hard links.
type LinkKey = (u64, u64);

/// File and directory counters for the snapshot summary.
#[derive(Debug, Default)]
pub(crate) struct FileStats {
    pub files_new: AtomicU64,
    pub files_changed: AtomicU64,
    pub files_unmodified: AtomicU64,
    pub dirs_new: AtomicU64,
    pub dirs_changed: AtomicU64,
    pub dirs_unmodified: AtomicU64,
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
}

impl FileStats {
    /// The counts so far, as the snapshot's summary records them.
    pub fn counts(&self) -> super::FileCounts {
        super::FileCounts {
            files_new: self.files_new.load(Ordering::Relaxed),
            files_changed: self.files_changed.load(Ordering::Relaxed),
            files_unmodified: self.files_unmodified.load(Ordering::Relaxed),
            dirs_new: self.dirs_new.load(Ordering::Relaxed),
            dirs_changed: self.dirs_changed.load(Ordering::Relaxed),
            dirs_unmodified: self.dirs_unmodified.load(Ordering::Relaxed),
            total_files: self.total_files.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
        }
    }
}

pub(crate) struct Walker {
    pub saver: Arc<Saver>,
    pub index: Arc<Index>,
    /// Reads the parent snapshot's trees (with read-ahead of their subtrees).
    pub parents: ReadAhead,
    pub chunker: Chunker,
    pub counters: Arc<Counters>,
    pub excludes: Excludes,
    pub one_file_system: bool,
    pub use_parent: bool,
    pub issues: Mutex<Vec<BackupIssue>>,
    pub notes: Mutex<Vec<String>>,
    pub owners: OwnerNames,
    hardlinks: Mutex<HashMap<LinkKey, (Vec<BlobId>, u64)>>,
    pub stats: FileStats,
    /// Where large directories are cut into parts.
    splitter: Splitter,
}

/// The backup targets arranged as a tree of path components.
#[derive(Debug)]
pub(crate) enum Target {
    /// A target covers the root: its contents are the snapshot's root.
    Whole(PathBuf),
    /// Targets below the root, with the real directories above them.
    Below(BTreeMap<Vec<u8>, TargetNode>),
}

#[derive(Debug)]
pub(crate) enum TargetNode {
    /// An intermediate directory (its metadata is read from `real`).
    Dir {
        real: PathBuf,
        children: BTreeMap<Vec<u8>, TargetNode>,
    },
    /// A backed-up path.
    Path(PathBuf),
}

/// Arranges `paths` as restic does: an absolute path is stored under its full path from the
/// root, a relative one under its cleaned relative path (`.` is the root itself).
/// Returns the targets and the snapshot's (absolute, sorted) paths.
pub(crate) fn arrange_targets(paths: &[PathBuf]) -> Result<(Target, Vec<String>)> {
    if paths.is_empty() {
        return Err(RepoError::InvalidInput(
            "nothing to back up: no paths given".into(),
        ));
    }
    let mut snapshot_paths = Vec::new();
    let mut root: Option<PathBuf> = None;
    let mut below: BTreeMap<Vec<u8>, TargetNode> = BTreeMap::new();
    for path in paths {
        let absolute = std::path::absolute(path).map_err(|e| RepoError::io(path, e))?;
        let absolute = clean(&absolute);
        snapshot_paths.push(absolute.to_string_lossy().into_owned());
        let relative = clean(path);
        let (base, components): (PathBuf, Vec<&OsStr>) =
            if path.is_absolute() || relative.starts_with("..") {
                (
                    "/".into(),
                    absolute.components().filter_map(normal).collect(),
                )
            } else {
                (
                    PathBuf::new(),
                    relative.components().filter_map(normal).collect(),
                )
            };
        let components: Vec<Vec<u8>> = components.iter().map(|c| c.as_bytes().to_vec()).collect();
        if components.is_empty() {
            if root.is_some() || !below.is_empty() {
                return Err(RepoError::InvalidInput(format!(
                    "{} overlaps another path given",
                    path.display()
                )));
            }
            root = Some(absolute);
            continue;
        }
        if root.is_some() {
            return Err(RepoError::InvalidInput(format!(
                "{} overlaps another path given",
                path.display()
            )));
        }
        insert(&mut below, &base, &components, absolute);
    }
    snapshot_paths.sort();
    snapshot_paths.dedup();
    Ok((
        root.map(Target::Whole).unwrap_or(Target::Below(below)),
        snapshot_paths,
    ))
}

fn normal(c: Component<'_>) -> Option<&OsStr> {
    match c {
        Component::Normal(s) => Some(s),
        _ => None,
    }
}

/// Lexical cleaning: drops `.`, resolves `..` against earlier components.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) => {} // `/..` is `/`
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

fn insert(
    level: &mut BTreeMap<Vec<u8>, TargetNode>,
    base: &Path,
    components: &[Vec<u8>],
    target: PathBuf,
) {
    let real = base.join(OsStr::from_bytes(&components[0]));
    if components.len() == 1 {
        level.insert(components[0].clone(), TargetNode::Path(target));
        return;
    }
    let entry = level
        .entry(components[0].clone())
        .or_insert_with(|| TargetNode::Dir {
            real: real.clone(),
            children: BTreeMap::new(),
        });
    if let TargetNode::Dir { children, .. } = entry {
        insert(children, &real, &components[1..], target);
    }
    // A `Path` above it already includes this target.
}

impl Walker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        saver: Arc<Saver>,
        repo: Repository,
        index: Arc<Index>,
        parents: ReadAhead,
        counters: Arc<Counters>,
        excludes: Excludes,
        one_file_system: bool,
        use_parent: bool,
    ) -> Self {
        Walker {
            saver,
            chunker: repo.chunker.clone(),
            splitter: repo.splitter(),
            index,
            parents,
            counters,
            excludes,
            one_file_system,
            use_parent,
            issues: Mutex::new(Vec::new()),
            notes: Mutex::new(Vec::new()),
            owners: OwnerNames::default(),
            hardlinks: Mutex::new(HashMap::new()),
            stats: FileStats::default(),
        }
    }

    fn issue(&self, path: &Path, during: &'static str, error: impl std::fmt::Display) {
        self.counters.errors.fetch_add(1, Ordering::Relaxed);
        self.issues.lock().expect("issues lock").push(BackupIssue {
            path: path.to_path_buf(),
            during,
            message: error.to_string(),
        });
    }

    fn note(&self, text: String) {
        self.notes.lock().expect("notes lock").push(text);
    }

    /// A parent directory's listing, or `None` if there is none or it cannot be read (then
    /// everything is read again, which is always safe).
    fn parent_dir(&self, id: Option<&BlobId>) -> Option<ParentDir> {
        let id = id?;
        if !self.use_parent {
            return None;
        }
        match ParentDir::read(&self.parents, id) {
            Ok(dir) => Some(dir),
            Err(e) => {
                self.note(format!(
                    "parent tree {id} unreadable, files below it are read again: {e}"
                ));
                None
            }
        }
    }

    /// The parent's node for `name` in `dir`; a part that cannot be read drops the parent
    /// for the rest of the directory (noted; its files are read again).
    fn parent_node(&self, dir: &mut Option<ParentDir>, name: &[u8]) -> Option<Node> {
        match dir.as_mut()?.lookup(&self.parents, name) {
            Ok(node) => node,
            Err(e) => {
                self.note(format!(
                    "part of a parent tree unreadable, files below it are read again: {e}"
                ));
                *dir = None;
                None
            }
        }
    }

    /// Saves the snapshot's root; returns its tree id.
    pub fn save_root(&self, target: &Target, parent_root: Option<&BlobId>) -> Result<BlobId> {
        match target {
            Target::Whole(path) => {
                let meta = std::fs::symlink_metadata(path).map_err(|e| RepoError::io(path, e))?;
                if !meta.is_dir() {
                    return Err(RepoError::InvalidInput(format!(
                        "{} is not a directory",
                        path.display()
                    )));
                }
                self.save_dir(path, parent_root, meta.dev()).and_then(|r| {
                    r.ok_or_else(|| {
                        RepoError::InvalidInput(format!("{} could not be read", path.display()))
                    })
                })
            }
            Target::Below(children) => self.save_targets(children, parent_root),
        }
    }

    fn save_targets(
        &self,
        children: &BTreeMap<Vec<u8>, TargetNode>,
        parent: Option<&BlobId>,
    ) -> Result<BlobId> {
        let mut parent_dir = self.parent_dir(parent);
        let entries: Vec<_> = children
            .iter()
            .map(|(name, node)| (name, node, self.parent_node(&mut parent_dir, name)))
            .collect();
        let nodes = entries
            .par_iter()
            .map(|(name, node, parent_node)| {
                let parent_node = parent_node.as_ref();
                match node {
                    TargetNode::Path(path) => {
                        let meta = match std::fs::symlink_metadata(path) {
                            Ok(meta) => meta,
                            Err(e) => {
                                self.issue(path, "scan", e);
                                return Ok(None);
                            }
                        };
                        self.save_entry(path, OsStr::from_bytes(name), parent_node, meta.dev())
                    }
                    TargetNode::Dir { real, children } => {
                        let meta = match std::fs::symlink_metadata(real) {
                            Ok(meta) => meta,
                            Err(e) => {
                                self.issue(real, "scan", e);
                                return Ok(None);
                            }
                        };
                        let mut dir =
                            node_for(Name(name.to_vec()), NodeKind::Dir, &meta, &self.owners);
                        dir.subtree = Some(self.save_targets(
                            children,
                            parent_node.and_then(|n| n.subtree.as_ref()),
                        )?);
                        Ok(Some(dir))
                    }
                }
            })
            .collect::<Result<Vec<Option<Node>>>>()?;
        let mut writer = TreeWriter::new(&self.splitter);
        let mut store = |bytes: &[u8]| self.saver.save_now(BlobType::Tree, bytes);
        for node in nodes.into_iter().flatten() {
            writer.push(node, &mut store)?;
        }
        let (id, _) = writer.finish(&mut store)?;
        self.count_dir(id, parent)
    }

    /// Counts a stored directory as new, changed or unmodified against its parent.
    fn count_dir(&self, id: BlobId, parent: Option<&BlobId>) -> Result<BlobId> {
        let counter = match parent {
            None => &self.stats.dirs_new,
            Some(p) if *p == id => &self.stats.dirs_unmodified,
            Some(_) => &self.stats.dirs_changed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(id)
    }

    /// Saves a directory's entries; `Ok(None)` if it cannot be listed (reported).
    fn save_dir(
        &self,
        dir: &Path,
        parent: Option<&BlobId>,
        root_dev: u64,
    ) -> Result<Option<BlobId>> {
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) => {
                self.issue(dir, "scan", e);
                return Ok(None);
            }
        };
        let mut names = Vec::new();
        for entry in listing {
            match entry {
                Ok(entry) => names.push(entry.file_name()),
                Err(e) => self.issue(dir, "scan", e),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        // A batch of entries at a time (all of a directory that is one tree), each batch in
        // parallel, its nodes streamed into the writer: a directory of millions of entries
        // holds its names, one batch and one part of its parent, not all of its nodes.
        let mut parent_dir = self.parent_dir(parent);
        let mut writer = TreeWriter::new(&self.splitter);
        let mut store = |bytes: &[u8]| self.saver.save_now(BlobType::Tree, bytes);
        for batch in names.chunks(SINGLE_MAX) {
            let parents: Vec<Option<Node>> = batch
                .iter()
                .map(|name| self.parent_node(&mut parent_dir, name.as_bytes()))
                .collect();
            let nodes = batch
                .par_iter()
                .zip(parents.par_iter())
                .map(|(name, parent_node)| {
                    self.save_entry(&dir.join(name), name, parent_node.as_ref(), root_dev)
                })
                .collect::<Result<Vec<Option<Node>>>>()?;
            for node in nodes.into_iter().flatten() {
                writer.push(node, &mut store)?;
            }
        }
        let (id, _) = writer.finish(&mut store)?;
        self.count_dir(id, parent).map(Some)
    }

    /// Saves one entry; `Ok(None)` when it is excluded or unreadable (reported).
    fn save_entry(
        &self,
        path: &Path,
        name: &OsStr,
        parent: Option<&Node>,
        root_dev: u64,
    ) -> Result<Option<Node>> {
        self.saver.check()?;
        if self.excludes.matches_path(path) {
            return Ok(None);
        }
        let meta = match std::fs::symlink_metadata(path) {
            Ok(meta) => meta,
            Err(e) => {
                self.issue(path, "scan", e);
                return Ok(None);
            }
        };
        let Some(kind) = kind_of(&meta) else {
            self.note(format!("{}: socket skipped", path.display()));
            return Ok(None);
        };
        let mut node = node_for(Name::from_os(name), kind, &meta, &self.owners);
        match read_xattrs(path) {
            Ok(xattrs) => node.xattrs = xattrs,
            Err(e) => self.issue(path, "scan", format!("extended attributes: {e}")),
        }
        match kind {
            NodeKind::File => {
                if !self.save_file(path, &meta, parent, &mut node)? {
                    return Ok(None);
                }
            }
            NodeKind::Dir => {
                if self.one_file_system && meta.dev() != root_dev {
                    self.note(format!(
                        "{}: other file system, not descended",
                        path.display()
                    ));
                    return Ok(None);
                }
                if self.excludes.excludes_dir_contents(path) {
                    return Ok(None);
                }
                let parent_subtree = parent
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree.as_ref());
                match self.save_dir(path, parent_subtree, root_dev)? {
                    Some(id) => node.subtree = Some(id),
                    None => return Ok(None),
                }
            }
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => node.link_target = Some(Name::from_os(target.as_os_str())),
                Err(e) => {
                    self.issue(path, "scan", e);
                    return Ok(None);
                }
            },
            NodeKind::Dev | NodeKind::Chardev | NodeKind::Fifo => {}
        }
        Ok(Some(node))
    }

    /// Fills a file's content: the parent's when unchanged, else read and chunked. False
    /// (reported as an item issue) if it could not be read.
    fn save_file(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        parent: Option<&Node>,
        node: &mut Node,
    ) -> Result<bool> {
        self.counters.set_current(path);
        let stats = &self.stats;
        stats.total_files.fetch_add(1, Ordering::Relaxed);
        stats.total_bytes.fetch_add(meta.len(), Ordering::Relaxed);
        if let Some(previous) = parent.filter(|p| self.unchanged(p, node)) {
            node.content = previous.content.clone();
            stats.files_unmodified.fetch_add(1, Ordering::Relaxed);
        } else {
            match self.file_content(path, meta, parent) {
                Ok((content, size)) => {
                    node.content = content;
                    node.size = size;
                }
                Err(Failure::Item(e)) => {
                    self.issue(path, "archival", e);
                    return Ok(false);
                }
                Err(Failure::Fatal(e)) => return Err(e),
            }
            let counter = if parent.is_some() {
                &stats.files_changed
            } else {
                &stats.files_new
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.counters.files_done.fetch_add(1, Ordering::Relaxed);
        self.counters
            .bytes_done
            .fetch_add(node.size, Ordering::Relaxed);
        Ok(true)
    }

    /// A file is unchanged when type, size, mtime, ctime and inode match its parent node and
    /// every content blob is still indexed.
    fn unchanged(&self, previous: &Node, current: &Node) -> bool {
        previous.kind == NodeKind::File
            && previous.size == current.size
            && previous.mtime_ns == current.mtime_ns
            && previous.ctime_ns == current.ctime_ns
            && previous.inode == current.inode
            && previous.content.iter().all(|id| self.index.contains(id))
    }

    /// Content ids and the number of bytes actually read.
    fn file_content(
        &self,
        path: &Path,
        meta: &std::fs::Metadata,
        parent: Option<&Node>,
    ) -> Result<(Vec<BlobId>, u64), Failure> {
        let link_key = (meta.dev(), meta.ino());
        if meta.nlink() > 1 {
            if let Some(known) = self
                .hardlinks
                .lock()
                .expect("hardlinks lock")
                .get(&link_key)
            {
                return Ok(known.clone());
            }
        }
        let mut file = open_nofollow(path).map_err(Failure::Item)?;
        let mut ids = Vec::new();
        let size;
        if meta.len() <= self.chunker.params().min() as u64 {
            // One chunk at most: read it whole and skip the streaming buffer.
            let mut data = Vec::with_capacity(meta.len() as usize);
            (&mut file)
                .take(self.chunker.params().min() as u64 + 1)
                .read_to_end(&mut data)
                .map_err(Failure::Item)?;
            if data.len() > self.chunker.params().min() {
                // Grew while we read: fall back to streaming from the start.
                return self.stream_content(
                    open_nofollow(path).map_err(Failure::Item)?,
                    meta.len(),
                    link_key,
                    meta.nlink(),
                    parent,
                );
            }
            size = data.len() as u64;
            if !data.is_empty() {
                ids.push(
                    self.saver
                        .save_now(BlobType::Data, &data)
                        .map_err(Failure::Fatal)?,
                );
            }
        } else {
            return self.stream_content(file, meta.len(), link_key, meta.nlink(), parent);
        }
        self.remember_link(link_key, meta.nlink(), &ids, size);
        Ok((ids, size))
    }

    fn stream_content(
        &self,
        file: std::fs::File,
        size_hint: u64,
        link_key: LinkKey,
        links: u64,
        parent: Option<&Node>,
    ) -> Result<(Vec<BlobId>, u64), Failure> {
        let mut ids = Vec::new();
        let mut size = 0u64;
        // Holes are not read: the reader hands them out as zeros (see sparse.rs).
        let reader = super::sparse::SparseReader::new(file);
        // A changed file is cut along its previous chunks where it still holds them (see
        // cairn_chunker::Guided): an unchanged chunk costs its id, not the gear hash too.
        let guided = cairn_chunker::Guided::new(
            self.chunker.stream_sized(reader, size_hint),
            self.previous_chunks(parent),
            |id: &BlobId, bytes: &[u8]| self.saver.data_id(bytes) == *id,
        );
        for chunk in guided {
            let (chunk, known) = chunk.map_err(|e| match e {
                cairn_chunker::ChunkerError::Io(io) => Failure::Item(io),
                other => Failure::Item(std::io::Error::other(other)),
            })?;
            size += chunk.data.len() as u64;
            ids.push(match known {
                Some(id) => id,
                None => self.saver.save_chunk(chunk.data).map_err(Failure::Fatal)?,
            });
        }
        self.remember_link(link_key, links, &ids, size);
        Ok((ids, size))
    }

    /// The parent version's chunks to guide re-chunking: ids and lengths (from the index) up
    /// to the first one not indexed, never the last (it may have been cut by the end of the
    /// file). The ids are checked against the bytes before any is reused, so a parent
    /// written by a compromised host can at worst make chunks that do not deduplicate.
    fn previous_chunks(&self, parent: Option<&Node>) -> Vec<(BlobId, usize)> {
        let Some(parent) = parent.filter(|p| p.kind == NodeKind::File) else {
            return Vec::new();
        };
        let all_but_last = &parent.content[..parent.content.len().saturating_sub(1)];
        all_but_last
            .iter()
            .map_while(|id| {
                let location = self.index.get(id)?;
                (location.entry.blob_type == BlobType::Data)
                    .then_some((*id, location.entry.plain_len as usize))
            })
            .collect()
    }

    fn remember_link(&self, key: (u64, u64), links: u64, ids: &[BlobId], size: u64) {
        if links > 1 {
            self.hardlinks
                .lock()
                .expect("hardlinks lock")
                .insert(key, (ids.to_vec(), size));
        }
    }
}

/// Errors while reading one file: `Item` skips the file, `Fatal` stops the backup.
pub(crate) enum Failure {
    Item(std::io::Error),
    Fatal(RepoError),
}

fn open_nofollow(path: &Path) -> std::io::Result<std::fs::File> {
    let flags = nix::libc::O_NOFOLLOW;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags | nix::libc::O_NOATIME)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(nix::libc::EPERM) => {
            // O_NOATIME needs ownership of the file.
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
        }
        other => other,
    }
}

/// Counts the files and bytes a backup will see, on its own thread, so progress can show a
/// percentage and an ETA (as restic's scanner does). Stops early when `stop` is set.
pub(crate) fn spawn_scanner(
    paths: Vec<PathBuf>,
    excludes: Excludes,
    counters: Arc<Counters>,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut stack: Vec<PathBuf> = paths
            .iter()
            .filter_map(|p| std::path::absolute(p).ok())
            .collect();
        while let Some(path) = stack.pop() {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            if excludes.matches_path(&path) {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_file() {
                counters.total_files.fetch_add(1, Ordering::Relaxed);
                counters
                    .total_bytes
                    .fetch_add(meta.len(), Ordering::Relaxed);
            } else if meta.is_dir() && !excludes.excludes_dir_contents(&path) {
                if let Ok(entries) = std::fs::read_dir(&path) {
                    stack.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrangement_follows_restic() {
        let (t, paths) = arrange_targets(&["/var/lib/pg".into(), "/var/log".into()]).unwrap();
        assert_eq!(
            paths,
            vec!["/var/lib/pg".to_string(), "/var/log".to_string()]
        );
        let Target::Below(top) = t else {
            panic!("expected targets below the root")
        };
        let TargetNode::Dir { real, children } = &top[&b"var".to_vec()] else {
            panic!("var is a dir")
        };
        assert_eq!(real, &PathBuf::from("/var"));
        assert!(matches!(children[&b"log".to_vec()], TargetNode::Path(_)));
        let (t, _) = arrange_targets(&[".".into()]).unwrap();
        assert!(matches!(t, Target::Whole(_)));
        let (t, _) = arrange_targets(&["/".into()]).unwrap();
        assert!(matches!(t, Target::Whole(_)));
        assert!(arrange_targets(&[".".into(), "x".into()]).is_err());
        assert!(arrange_targets(&[]).is_err());
        // A path inside another target is already covered.
        let (t, _) = arrange_targets(&["/a".into(), "/a/b".into()]).unwrap();
        let Target::Below(top) = t else { panic!() };
        assert!(matches!(top[&b"a".to_vec()], TargetNode::Path(_)));
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("./a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(clean(Path::new("/a/../..")), PathBuf::from("/"));
        assert!(clean(Path::new("../x")).starts_with(".."));
    }
}
