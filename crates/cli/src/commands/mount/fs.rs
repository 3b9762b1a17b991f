//! The mounted file system: the layout's virtual directories above the snapshots, and each
//! snapshot's trees and files read lazily through the repository's blob reader.
//!
//! Inodes are numbered as entries are first looked up or listed, and kept for the life of
//! the mount (the kernel may ask for any inode it has seen), so memory grows with the
//! entries visited, not with the repository. A directory's entries are read when it is first
//! listed or looked into (a split directory part by part). File content is fetched a chunk
//! at a time when read, through a bounded blob cache; a sequential reader gets the next
//! chunks read ahead, a random one only the chunks it touches.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cairn_repo::blobs::ReadAhead;
use cairn_repo::{BlobId, BlobType, Index, Node, NodeKind, Repository, SnapshotFilter};
use fuser::{
    FileAttr, FileType, Filesystem, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyLseek,
    ReplyOpen, ReplyXattr, Request, FUSE_ROOT_ID,
};
use libc::{EINVAL, EIO, ENODATA, ENOENT, ENXIO, ERANGE};
use tokio::runtime::Handle;

use super::blob_cache::BlobCache;
use super::layout::Layout;

/// How long the kernel may keep what the layout shows (it changes as snapshots come).
const LAYOUT_TTL: Duration = Duration::from_secs(1);
/// How long it may keep a snapshot's entries (they never change).
const SNAPSHOT_TTL: Duration = Duration::from_secs(300);
/// Chunks read ahead of a sequential reader.
const READ_AHEAD_CHUNKS: usize = 4;

/// Settings of a mount.
pub struct Settings {
    /// Bytes of decoded blobs kept.
    pub blob_cache_bytes: usize,
    /// Least time between two listings of the repository's snapshots.
    pub refresh: Duration,
    /// Show every entry as owned by root.
    pub owner_root: bool,
    /// Which snapshots to show.
    pub filter: SnapshotFilter,
}

/// The directories the layout makes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Virtual {
    Root,
    Snapshots,
    Ids,
    Hosts,
    Host(String),
    Tags,
    Tag(String),
}

/// What a virtual directory holds.
enum Child {
    Dir(Virtual),
    Snapshot { tree: BlobId, time_ns: i64 },
    Link(String),
}

enum Kind {
    Virtual(Virtual),
    Link(Vec<u8>),
    /// A directory of a snapshot (its root included): entries once read.
    Tree {
        tree: BlobId,
        root: u64,
        entries: Option<Vec<(Vec<u8>, u64)>>,
    },
    /// Any other entry of a snapshot; a file's chunk layout once opened.
    Entry {
        node: Box<Node>,
        chunks: Option<Arc<Chunks>>,
    },
}

struct Inode {
    parent: u64,
    kind: Kind,
    attr: FileAttr,
}

/// Where each chunk of a file starts, and which are holes (all-zero chunks).
struct Chunks {
    ids: Vec<BlobId>,
    starts: Vec<u64>,
    lens: Vec<u64>,
    zero: Vec<bool>,
    size: u64,
}

impl Chunks {
    /// The chunk holding byte `offset`, if any.
    fn at(&self, offset: u64) -> Option<usize> {
        let i = self
            .starts
            .partition_point(|&s| s <= offset)
            .checked_sub(1)?;
        (offset < self.starts[i] + self.lens[i]).then_some(i)
    }
}

/// An open file: its inode, where the last read ended and where the current run of
/// sequential reads started (to tell sequential readers from random ones).
struct OpenFile {
    ino: u64,
    next: u64,
    run_start: u64,
}

/// The repository as the mount reads it; replaced when new snapshots bring new blobs.
struct Source {
    index: Arc<Index>,
    blobs: ReadAhead,
}

/// The file system.
pub struct MountedFs {
    repo: Repository,
    runtime: Handle,
    settings: Settings,
    source: Source,
    layout: Layout,
    listed: Instant,
    inodes: Vec<Inode>,
    /// Inodes of layout entries by (parent, name), stable across refreshes.
    named: HashMap<(u64, String), u64>,
    /// Inodes of hard-linked files by (snapshot root, device, inode).
    links: HashMap<(u64, u64, u64), u64>,
    open: HashMap<u64, OpenFile>,
    next_fh: u64,
    cache: BlobCache,
    /// The id of an all-zero chunk of the chunker's maximum size: long runs of zeros are
    /// cut into those, so they are the holes of a sparse file.
    zero_chunk: (BlobId, u64),
    started: SystemTime,
}

fn time_of(ns: i64) -> SystemTime {
    if ns >= 0 {
        UNIX_EPOCH + Duration::from_nanos(ns as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(ns.unsigned_abs())
    }
}

fn dir_attr(ino: u64, time: SystemTime) -> FileAttr {
    FileAttr {
        ino,
        size: 0,
        blocks: 0,
        atime: time,
        mtime: time,
        ctime: time,
        crtime: time,
        kind: FileType::Directory,
        perm: 0o555,
        nlink: 2,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
        flags: 0,
    }
}

fn file_type(kind: NodeKind) -> FileType {
    match kind {
        NodeKind::File => FileType::RegularFile,
        NodeKind::Dir => FileType::Directory,
        NodeKind::Symlink => FileType::Symlink,
        NodeKind::Dev => FileType::BlockDevice,
        NodeKind::Chardev => FileType::CharDevice,
        NodeKind::Fifo => FileType::NamedPipe,
    }
}

impl MountedFs {
    /// A file system over `repo` showing `layout`, reading through `index`.
    pub fn new(
        repo: Repository,
        runtime: Handle,
        settings: Settings,
        index: Arc<Index>,
        layout: Layout,
    ) -> MountedFs {
        let max = u64::from(repo.config().chunker.max);
        let zero_chunk = (repo.blob_id(&vec![0; max as usize]), max);
        let source = Self::source(&repo, &runtime, index);
        let started = SystemTime::now();
        let root = Inode {
            parent: FUSE_ROOT_ID,
            kind: Kind::Virtual(Virtual::Root),
            attr: dir_attr(FUSE_ROOT_ID, started),
        };
        MountedFs {
            cache: BlobCache::new(settings.blob_cache_bytes),
            repo,
            runtime,
            settings,
            source,
            layout,
            listed: Instant::now(),
            // Inode n is at n - 1; FUSE_ROOT_ID is 1.
            inodes: vec![root],
            named: HashMap::new(),
            links: HashMap::new(),
            open: HashMap::new(),
            next_fh: 1,
            zero_chunk,
            started,
        }
    }

    fn source(repo: &Repository, runtime: &Handle, index: Arc<Index>) -> Source {
        // The reader's task runs on the runtime; this thread is not one of its workers.
        let _entered = runtime.enter();
        let blobs = ReadAhead::start(repo.clone(), Arc::clone(&index), repo.reads_in_flight());
        Source { index, blobs }
    }

    fn inode(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    fn inode_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes
            .get_mut(usize::try_from(ino).ok()?.checked_sub(1)?)
    }

    fn add(&mut self, parent: u64, kind: Kind, mut attr: FileAttr) -> u64 {
        let ino = self.inodes.len() as u64 + 1;
        attr.ino = ino;
        self.inodes.push(Inode { parent, kind, attr });
        ino
    }

    /// Lists the snapshots again if the last listing is older than the refresh interval;
    /// new snapshots' blobs are found through a reloaded index.
    fn refresh(&mut self) {
        if self.listed.elapsed() < self.settings.refresh {
            return;
        }
        self.listed = Instant::now();
        let repo = self.repo.clone();
        let filter = self.settings.filter.clone();
        let listed = self.runtime.block_on(async move {
            let entries = repo.list_snapshots(&filter).await?;
            let layout = Layout::of(&entries);
            Ok::<_, cairn_repo::RepoError>(layout)
        });
        match listed {
            Ok(layout) if layout != self.layout => {
                let repo = self.repo.clone();
                match self
                    .runtime
                    .block_on(async move { repo.load_index().await })
                {
                    Ok(index) => {
                        self.source = Self::source(&self.repo, &self.runtime, index);
                        self.layout = layout;
                    }
                    Err(e) => report(&format!("reloading the index: {e}")),
                }
            }
            Ok(_) => {}
            Err(e) => report(&format!("listing snapshots: {e}")),
        }
    }

    fn virtual_children(&self, dir: &Virtual) -> Vec<(String, Child)> {
        let snapshot = |name: &String| {
            self.layout.find(name).map(|s| Child::Snapshot {
                tree: s.tree,
                time_ns: s.time_ns,
            })
        };
        let with_latest = |names: &[String]| {
            let mut out: Vec<(String, Child)> = names
                .iter()
                .filter_map(|n| Some((n.clone(), snapshot(n)?)))
                .collect();
            if let Some(last) = names.last() {
                out.push(("latest".into(), Child::Link(last.clone())));
            }
            out
        };
        match dir {
            Virtual::Root => vec![
                ("hosts".into(), Child::Dir(Virtual::Hosts)),
                ("ids".into(), Child::Dir(Virtual::Ids)),
                ("snapshots".into(), Child::Dir(Virtual::Snapshots)),
                ("tags".into(), Child::Dir(Virtual::Tags)),
            ],
            Virtual::Snapshots => {
                let names: Vec<String> = self
                    .layout
                    .snapshots
                    .iter()
                    .map(|s| s.name.clone())
                    .collect();
                with_latest(&names)
            }
            Virtual::Ids => self
                .layout
                .snapshots
                .iter()
                .map(|s| {
                    (
                        s.short_id.clone(),
                        Child::Snapshot {
                            tree: s.tree,
                            time_ns: s.time_ns,
                        },
                    )
                })
                .collect(),
            Virtual::Hosts => self
                .layout
                .hosts
                .keys()
                .map(|h| (h.clone(), Child::Dir(Virtual::Host(h.clone()))))
                .collect(),
            Virtual::Host(host) => with_latest(self.layout.hosts.get(host).map_or(&[][..], |v| v)),
            Virtual::Tags => self
                .layout
                .tags
                .keys()
                .map(|t| (t.clone(), Child::Dir(Virtual::Tag(t.clone()))))
                .collect(),
            Virtual::Tag(tag) => with_latest(self.layout.tags.get(tag).map_or(&[][..], |v| v)),
        }
    }

    /// The inode of a layout entry, made on first sight; a name that now means something
    /// else (`latest` moved, a snapshot forgotten and another made at the same time) gets
    /// a new inode.
    fn virtual_inode(&mut self, parent: u64, name: &str, child: Child) -> u64 {
        let key = (parent, name.to_string());
        if let Some(&ino) = self.named.get(&key) {
            let same = match (&self.inode(ino).expect("named inodes exist").kind, &child) {
                (Kind::Virtual(a), Child::Dir(b)) => a == b,
                (Kind::Tree { tree: a, .. }, Child::Snapshot { tree: b, .. }) => a == b,
                (Kind::Link(a), Child::Link(b)) => a == b.as_bytes(),
                _ => false,
            };
            if same {
                return ino;
            }
        }
        let ino = match child {
            Child::Dir(dir) => self.add(parent, Kind::Virtual(dir), dir_attr(0, self.started)),
            Child::Snapshot { tree, time_ns } => {
                let ino = self.inodes.len() as u64 + 1;
                self.add(
                    parent,
                    Kind::Tree {
                        tree,
                        root: ino,
                        entries: None,
                    },
                    dir_attr(0, time_of(time_ns)),
                )
            }
            Child::Link(target) => {
                let mut attr = dir_attr(0, self.started);
                attr.kind = FileType::Symlink;
                attr.perm = 0o777;
                attr.nlink = 1;
                attr.size = target.len() as u64;
                self.add(parent, Kind::Link(target.into_bytes()), attr)
            }
        };
        self.named.insert(key, ino);
        ino
    }

    /// A directory's entries as (name, inode), reading a snapshot directory on first use.
    fn entries(&mut self, ino: u64) -> Result<Vec<(Vec<u8>, u64)>, i32> {
        let kind = &self.inode(ino).ok_or(ENOENT)?.kind;
        match kind {
            Kind::Virtual(dir) => {
                let dir = dir.clone();
                self.refresh();
                let children = self.virtual_children(&dir);
                Ok(children
                    .into_iter()
                    .map(|(name, child)| {
                        let child_ino = self.virtual_inode(ino, &name, child);
                        (name.into_bytes(), child_ino)
                    })
                    .collect())
            }
            Kind::Tree {
                entries: Some(entries),
                ..
            } => Ok(entries.clone()),
            Kind::Tree { tree, root, .. } => {
                let (tree, root) = (*tree, *root);
                let entries = self.read_tree(ino, root, &tree)?;
                if let Some(Inode {
                    kind: Kind::Tree { entries: slot, .. },
                    ..
                }) = self.inode_mut(ino)
                {
                    *slot = Some(entries.clone());
                }
                Ok(entries)
            }
            _ => Err(libc::ENOTDIR),
        }
    }

    /// Reads snapshot directory `tree` (a part at a time if split) and makes its inodes.
    fn read_tree(
        &mut self,
        parent: u64,
        root: u64,
        tree: &BlobId,
    ) -> Result<Vec<(Vec<u8>, u64)>, i32> {
        let mut reader = self.source.blobs.read_dir(tree).map_err(|e| {
            report(&format!("reading tree {tree}: {e}"));
            EIO
        })?;
        let mut entries = Vec::new();
        loop {
            let node = match reader.next_blocking() {
                Ok(Some(node)) => node,
                Ok(None) => break,
                Err(e) => {
                    report(&format!("reading tree {tree}: {e}"));
                    return Err(EIO);
                }
            };
            let name = node.name.0.clone();
            let ino = self.node_inode(parent, root, node);
            entries.push((name, ino));
        }
        Ok(entries)
    }

    fn node_inode(&mut self, parent: u64, root: u64, node: Node) -> u64 {
        let linked = (node.kind == NodeKind::File && node.links > 1).then_some((
            root,
            node.device,
            node.inode,
        ));
        if let Some(&ino) = linked.as_ref().and_then(|key| self.links.get(key)) {
            return ino;
        }
        let attr = self.node_attr(&node);
        let kind = match (node.kind, node.subtree) {
            (NodeKind::Dir, Some(tree)) => Kind::Tree {
                tree,
                root,
                entries: None,
            },
            _ => Kind::Entry {
                node: Box::new(node),
                chunks: None,
            },
        };
        let ino = self.add(parent, kind, attr);
        if let Some(key) = linked {
            self.links.insert(key, ino);
        }
        ino
    }

    fn node_attr(&self, node: &Node) -> FileAttr {
        let size = match node.kind {
            NodeKind::File => node.size,
            NodeKind::Symlink => node.link_target.as_ref().map_or(0, |t| t.0.len() as u64),
            _ => 0,
        };
        // Blocks: what is not a hole.
        let holes = node
            .content
            .iter()
            .filter(|id| **id == self.zero_chunk.0)
            .count() as u64
            * self.zero_chunk.1;
        let (uid, gid) = if self.settings.owner_root {
            (0, 0)
        } else {
            (node.uid, node.gid)
        };
        FileAttr {
            ino: 0,
            size,
            blocks: size.saturating_sub(holes).div_ceil(512),
            atime: time_of(node.mtime_ns),
            mtime: time_of(node.mtime_ns),
            ctime: time_of(node.ctime_ns),
            crtime: time_of(node.mtime_ns),
            kind: file_type(node.kind),
            perm: (node.mode & 0o7777) as u16,
            nlink: if node.kind == NodeKind::Dir {
                2
            } else {
                u32::try_from(node.links.max(1)).unwrap_or(u32::MAX)
            },
            uid,
            gid,
            rdev: node.rdev.map_or(0, |r| r as u32),
            blksize: 4096,
            flags: 0,
        }
    }

    fn ttl(&self, ino: u64) -> Duration {
        match self.inode(ino).map(|i| &i.kind) {
            Some(Kind::Virtual(_) | Kind::Link(_)) => LAYOUT_TTL,
            _ => SNAPSHOT_TTL,
        }
    }

    /// A file's chunk layout, made on first use from the index.
    fn chunks(&mut self, ino: u64) -> Result<Arc<Chunks>, i32> {
        let zero = self.zero_chunk.0;
        let index = Arc::clone(&self.source.index);
        let Some(Inode {
            kind: Kind::Entry { node, chunks },
            ..
        }) = self.inode_mut(ino)
        else {
            return Err(EINVAL);
        };
        if let Some(chunks) = chunks {
            return Ok(Arc::clone(chunks));
        }
        let mut made = Chunks {
            ids: Vec::with_capacity(node.content.len()),
            starts: Vec::with_capacity(node.content.len()),
            lens: Vec::with_capacity(node.content.len()),
            zero: Vec::with_capacity(node.content.len()),
            size: 0,
        };
        for id in &node.content {
            let Some(location) = index.get(id) else {
                report(&format!(
                    "data blob {id} of {} is not in the index",
                    crate::output::terminal_path(std::path::Path::new(node.name.to_os()))
                ));
                return Err(EIO);
            };
            made.ids.push(*id);
            made.starts.push(made.size);
            made.lens.push(u64::from(location.entry.plain_len));
            made.zero.push(*id == zero);
            made.size += u64::from(location.entry.plain_len);
        }
        let made = Arc::new(made);
        *chunks = Some(Arc::clone(&made));
        Ok(made)
    }

    /// One chunk's bytes: from the cache, or fetched (and kept).
    fn chunk(&mut self, id: &BlobId, len: u64) -> Result<Arc<Vec<u8>>, i32> {
        if let Some(bytes) = self.cache.get(id) {
            return Ok(bytes);
        }
        let bytes = self.source.blobs.read(BlobType::Data, id).map_err(|e| {
            report(&format!("reading data blob {id}: {e}"));
            EIO
        })?;
        if bytes.len() as u64 != len {
            report(&format!(
                "data blob {id} decodes to {} bytes, the index says {len}",
                bytes.len()
            ));
            return Err(EIO);
        }
        let bytes = Arc::new(bytes);
        self.cache.insert(*id, Arc::clone(&bytes));
        Ok(bytes)
    }

    fn read_range(&mut self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, i32> {
        let (ino, run_start) = {
            let open = self.open.get_mut(&fh).ok_or(libc::EBADF)?;
            if open.next != offset {
                open.run_start = offset;
            }
            (open.ino, open.run_start)
        };
        let chunks = self.chunks(ino)?;
        let end = (offset + u64::from(size)).min(chunks.size);
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        let mut last = None;
        while at < end {
            let i = chunks.at(at).ok_or(EIO)?;
            let (start, len) = (chunks.starts[i], chunks.lens[i]);
            let (from, to) = (
                (at - start) as usize,
                (end.min(start + len) - start) as usize,
            );
            if chunks.zero[i] {
                out.resize(out.len() + (to - from), 0);
            } else {
                let bytes = self.chunk(&chunks.ids[i], len)?;
                out.extend_from_slice(&bytes[from..to]);
            }
            at = start + to as u64;
            last = Some(i);
        }
        // A sequential reader (from the start, or across two chunk boundaries: not one
        // random read the kernel splits into pieces) wants the next chunks soon: fetch them
        // while it copies. A random reader gets only the chunks it touches.
        let sequential =
            |i: usize| run_start == 0 || chunks.at(run_start).is_some_and(|r| i >= r + 2);
        if let Some(i) = last.filter(|&i| sequential(i)) {
            let ahead = (i + 1..chunks.ids.len())
                .filter(|&j| !chunks.zero[j])
                .take(READ_AHEAD_CHUNKS)
                .map(|j| (BlobType::Data, chunks.ids[j]));
            self.source.blobs.prefetch(ahead);
        }
        if let Some(open) = self.open.get_mut(&fh) {
            open.next = at;
        }
        Ok(out)
    }

    fn xattrs(&self, ino: u64) -> &[cairn_repo::tree::Xattr] {
        match self.inode(ino).map(|i| &i.kind) {
            Some(Kind::Entry { node, .. }) => &node.xattrs,
            _ => &[],
        }
    }
}

/// Problems reach the mount's stderr (the kernel only sees an errno), names escaped.
fn report(message: &str) {
    eprintln!(
        "cairn mount: {}",
        crate::output::terminal_path(std::path::Path::new(message))
    );
}

impl Filesystem for MountedFs {
    fn lookup(&mut self, _req: &Request<'_>, parent: u64, name: &OsStr, reply: ReplyEntry) {
        match self.entries(parent) {
            Ok(entries) => match entries
                .iter()
                .find(|(n, _)| n.as_slice() == name.as_bytes())
            {
                Some(&(_, ino)) => {
                    let attr = self.inode(ino).expect("listed inodes exist").attr;
                    reply.entry(&self.ttl(ino), &attr, 0);
                }
                None => reply.error(ENOENT),
            },
            Err(errno) => reply.error(errno),
        }
    }

    fn getattr(&mut self, _req: &Request<'_>, ino: u64, _fh: Option<u64>, reply: ReplyAttr) {
        match self.inode(ino) {
            Some(inode) => {
                let attr = inode.attr;
                reply.attr(&self.ttl(ino), &attr);
            }
            None => reply.error(ENOENT),
        }
    }

    fn readlink(&mut self, _req: &Request<'_>, ino: u64, reply: ReplyData) {
        match self.inode(ino).map(|i| &i.kind) {
            Some(Kind::Link(target)) => reply.data(target),
            Some(Kind::Entry { node, .. }) if node.kind == NodeKind::Symlink => {
                reply.data(node.link_target.as_ref().map_or(&[][..], |t| &t.0));
            }
            _ => reply.error(EINVAL),
        }
    }

    fn open(&mut self, _req: &Request<'_>, ino: u64, flags: i32, reply: ReplyOpen) {
        if flags & libc::O_ACCMODE != libc::O_RDONLY {
            reply.error(libc::EROFS);
            return;
        }
        match self.inode(ino).map(|i| &i.kind) {
            Some(Kind::Entry { node, .. }) if node.kind == NodeKind::File => {
                let fh = self.next_fh;
                self.next_fh += 1;
                self.open.insert(
                    fh,
                    OpenFile {
                        ino,
                        next: 0,
                        run_start: 0,
                    },
                );
                // Content never changes: the kernel may keep its page cache across opens.
                reply.opened(fh, fuser::consts::FOPEN_KEEP_CACHE);
            }
            Some(_) => reply.error(EINVAL),
            None => reply.error(ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn read(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        offset: i64,
        size: u32,
        _flags: i32,
        _lock: Option<u64>,
        reply: ReplyData,
    ) {
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(EINVAL);
            return;
        };
        match self.read_range(fh, offset, size) {
            Ok(bytes) => reply.data(&bytes),
            Err(errno) => reply.error(errno),
        }
    }

    fn release(
        &mut self,
        _req: &Request<'_>,
        _ino: u64,
        fh: u64,
        _flags: i32,
        _lock_owner: Option<u64>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.open.remove(&fh);
        reply.ok();
    }

    fn readdir(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        mut reply: ReplyDirectory,
    ) {
        let entries = match self.entries(ino) {
            Ok(entries) => entries,
            Err(errno) => {
                reply.error(errno);
                return;
            }
        };
        let parent = self.inode(ino).map_or(FUSE_ROOT_ID, |i| i.parent);
        let dots = [(b".".to_vec(), ino), (b"..".to_vec(), parent)];
        let all = dots.into_iter().chain(entries);
        for (i, (name, child)) in all.enumerate().skip(usize::try_from(offset).unwrap_or(0)) {
            let kind = self
                .inode(child)
                .map_or(FileType::Directory, |inode| inode.attr.kind);
            if reply.add(child, i as i64 + 1, kind, OsStr::from_bytes(&name)) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        name: &OsStr,
        size: u32,
        reply: ReplyXattr,
    ) {
        let found = self
            .xattrs(ino)
            .iter()
            .find(|x| x.name.0 == name.as_bytes())
            .map(|x| x.value.0.clone());
        match found {
            None => reply.error(ENODATA),
            Some(value) if size == 0 => reply.size(value.len() as u32),
            Some(value) if value.len() > size as usize => reply.error(ERANGE),
            Some(value) => reply.data(&value),
        }
    }

    fn listxattr(&mut self, _req: &Request<'_>, ino: u64, size: u32, reply: ReplyXattr) {
        let mut names = Vec::new();
        for xattr in self.xattrs(ino) {
            names.extend_from_slice(&xattr.name.0);
            names.push(0);
        }
        if size == 0 {
            reply.size(names.len() as u32);
        } else if names.len() > size as usize {
            reply.error(ERANGE);
        } else {
            reply.data(&names);
        }
    }

    fn lseek(
        &mut self,
        _req: &Request<'_>,
        ino: u64,
        _fh: u64,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let chunks = match self.chunks(ino) {
            Ok(chunks) => chunks,
            Err(errno) => {
                reply.error(errno);
                return;
            }
        };
        let Ok(offset) = u64::try_from(offset) else {
            reply.error(EINVAL);
            return;
        };
        if offset >= chunks.size {
            reply.error(ENXIO);
            return;
        }
        let want_hole = match whence {
            libc::SEEK_DATA => false,
            libc::SEEK_HOLE => true,
            _ => {
                reply.error(EINVAL);
                return;
            }
        };
        let first = chunks.at(offset).unwrap_or(chunks.ids.len());
        let found = (first..chunks.ids.len()).find(|&i| chunks.zero[i] == want_hole);
        match (found, want_hole) {
            (Some(i), _) => reply.offset(chunks.starts[i].max(offset) as i64),
            // Past the last hole is the end of the file (the implicit hole there).
            (None, true) => reply.offset(chunks.size as i64),
            (None, false) => reply.error(ENXIO),
        }
    }
}
