//! Restore: recreate a snapshot (or part of it) under a target directory; `dump` one file.
//!
//! Files are created at their final size first (unwritten ranges are holes), then each
//! needed pack is read once, with ranged reads of just the blobs needed (adjacent ones
//! coalesced), and each blob is written at every offset that uses it. All-zero blobs are not
//! written at all, so sparse files stay sparse. Metadata comes last: files, then directories
//! deepest first, so writing content never disturbs a directory's times.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_pack::{decode_blob, BlobId, BlobType, PackEntry, PackId};
use futures::{StreamExt, TryStreamExt};
use globset::GlobSet;

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::progress::{CancelToken, Counters, ProgressFn, Reporter};
use crate::snapshot::Snapshot;
use crate::storage::FileType;
use crate::tree::{Node, NodeKind};
use crate::Repository;

/// Blobs closer than this in a pack are fetched with one ranged read.
const COALESCE_GAP: u64 = 256 * 1024;

/// How to restore.
#[derive(Clone, Default)]
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
    /// Progress callback.
    pub progress: Option<ProgressFn>,
    /// Cancellation.
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
    /// Problems with single items (metadata that could not be set, verify mismatches).
    pub errors: Vec<(PathBuf, String)>,
}

struct Item {
    /// Path relative to the target (and, with a leading `/`, the path in the snapshot).
    rel: PathBuf,
    node: Node,
}

fn matches_self_or_ancestor(set: &GlobSet, rel: &Path) -> bool {
    let absolute = Path::new("/").join(rel);
    absolute
        .ancestors()
        .any(|p| p != Path::new("/") && set.is_match(p))
}

/// Removes entries of restored directories that the snapshot does not have.
fn delete_extraneous(
    items: &[Item],
    target: &Path,
    include: Option<&GlobSet>,
    exclude: Option<&GlobSet>,
    report: &Mutex<RestoreReport>,
) -> Result<()> {
    let present: std::collections::HashSet<&Path> =
        items.iter().map(|item| item.rel.as_path()).collect();
    let dirs = std::iter::once(Path::new("")).chain(
        items
            .iter()
            .filter(|item| item.node.kind == NodeKind::Dir)
            .map(|item| item.rel.as_path()),
    );
    let mut deleted = 0;
    for dir in dirs {
        let on_disk = target.join(dir);
        // Never list (and delete) through a symlink: only real directories restore created.
        if !std::fs::symlink_metadata(&on_disk).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let entries = match std::fs::read_dir(&on_disk) {
            Ok(entries) => entries,
            Err(e) => return Err(RepoError::io(&on_disk, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| RepoError::io(&on_disk, e))?;
            let rel = dir.join(entry.file_name());
            if present.contains(rel.as_path())
                || exclude.is_some_and(|set| matches_self_or_ancestor(set, &rel))
                || include.is_some_and(|set| !matches_self_or_ancestor(set, &rel))
            {
                continue;
            }
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if remove_unless_excluded(&entry.path(), &rel, is_dir, exclude)? {
                deleted += 1;
            }
        }
    }
    report.lock().expect("report lock").deleted = deleted;
    Ok(())
}

/// Removes `path` (a directory with what it holds), sparing anything `exclude` matches and
/// the directories leading to it. True when `path` itself is gone.
fn remove_unless_excluded(
    path: &Path,
    rel: &Path,
    is_dir: bool,
    exclude: Option<&GlobSet>,
) -> Result<bool> {
    if !is_dir {
        std::fs::remove_file(path).map_err(|e| RepoError::io(path, e))?;
        return Ok(true);
    }
    let Some(exclude) = exclude else {
        std::fs::remove_dir_all(path).map_err(|e| RepoError::io(path, e))?;
        return Ok(true);
    };
    let mut spared = false;
    for entry in std::fs::read_dir(path).map_err(|e| RepoError::io(path, e))? {
        let entry = entry.map_err(|e| RepoError::io(path, e))?;
        let child_rel = rel.join(entry.file_name());
        if matches_self_or_ancestor(exclude, &child_rel) {
            spared = true;
            continue;
        }
        let child_is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        spared |= !remove_unless_excluded(&entry.path(), &child_rel, child_is_dir, Some(exclude))?;
    }
    if spared {
        return Ok(false);
    }
    std::fs::remove_dir(path).map_err(|e| RepoError::io(path, e))?;
    Ok(true)
}

/// A hard link to make: (item index, index of the item it links to).
type HardLink = (usize, usize);

/// One use of a blob: file index and offset in it.
type Use = (usize, u64);

impl Repository {
    /// Lists every node of a snapshot below the root, directories before their contents.
    async fn collect_items(&self, index: &Index, root: &BlobId) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut stack = vec![(PathBuf::new(), *root)];
        while let Some((dir, tree_id)) = stack.pop() {
            let tree = self.read_tree(index, &tree_id).await?;
            for node in tree.nodes {
                let rel = dir.join(node.name.to_os());
                if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
                    stack.push((rel.clone(), subtree));
                }
                items.push(Item { rel, node });
            }
        }
        // Parents before children, siblings in name order.
        items.sort_by(|a, b| a.rel.cmp(&b.rel));
        Ok(items)
    }

    /// Finds the node at `path` (components separated by `/`) in a snapshot.
    pub async fn find_node(&self, index: &Index, snapshot: &Snapshot, path: &str) -> Result<Node> {
        let mut tree_id = snapshot.tree;
        let components: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if components.is_empty() {
            return Err(RepoError::InvalidInput(
                "path names the snapshot root, not a file".into(),
            ));
        }
        for (i, component) in components.iter().enumerate() {
            let tree = self.read_tree(index, &tree_id).await?;
            let node = tree
                .nodes
                .into_iter()
                .find(|n| n.name.0 == component.as_bytes())
                .ok_or_else(|| {
                    RepoError::InvalidInput(format!("{path}: no such file in the snapshot"))
                })?;
            if i + 1 == components.len() {
                return Ok(node);
            }
            tree_id = node.subtree.ok_or_else(|| {
                RepoError::InvalidInput(format!("{path}: {component} is not a directory"))
            })?;
        }
        unreachable!("loop returns on the last component")
    }

    /// Writes one file's content to `writer`, in order, reading a few blobs ahead.
    pub async fn dump<W: Write + Send>(
        &self,
        index: &Index,
        node: &Node,
        mut writer: W,
    ) -> Result<u64> {
        if node.kind != NodeKind::File {
            return Err(RepoError::InvalidInput(format!(
                "{} is not a regular file",
                node.name.display()
            )));
        }
        let mut blobs = futures::stream::iter(node.content.iter())
            .map(|id| self.read_blob(index, BlobType::Data, id))
            .buffered(4);
        let mut written = 0u64;
        while let Some(blob) = blobs.try_next().await? {
            writer
                .write_all(&blob)
                .map_err(|e| RepoError::io("<output>", e))?;
            written += blob.len() as u64;
        }
        writer.flush().map_err(|e| RepoError::io("<output>", e))?;
        Ok(written)
    }

    /// Restores `snapshot` (or the parts `options` select) under `target`.
    pub async fn restore(
        &self,
        index: Arc<Index>,
        snapshot: &Snapshot,
        target: &Path,
        options: RestoreOptions,
    ) -> Result<RestoreReport> {
        let include = crate::ops::patterns::compile(&options.include, "include")?;
        let exclude = crate::ops::patterns::compile(&options.exclude, "exclude")?;
        let mut items = self.collect_items(&index, &snapshot.tree).await?;
        items.retain(|item| {
            !exclude
                .as_ref()
                .is_some_and(|set| matches_self_or_ancestor(set, &item.rel))
        });
        if let Some(include) = &include {
            let selected: Vec<bool> = items
                .iter()
                .map(|i| matches_self_or_ancestor(include, &i.rel))
                .collect();
            // Keep selected items and the directories leading to them.
            let mut needed_dirs = std::collections::HashSet::new();
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
        std::fs::create_dir_all(target).map_err(|e| RepoError::io(target, e))?;
        let target = target.to_path_buf();
        let counters = Arc::new(Counters::default());
        for item in &items {
            if item.node.kind == NodeKind::File {
                counters.total_files.fetch_add(1, Ordering::Relaxed);
                counters
                    .total_bytes
                    .fetch_add(item.node.size, Ordering::Relaxed);
            }
        }
        let reporter = Reporter::start(
            options.progress.clone(),
            Arc::clone(&counters),
            Duration::from_secs(1),
        );
        let report = Arc::new(Mutex::new(RestoreReport::default()));

        // 1. The namespace: directories, files at full size, links, special files.
        let items = Arc::new(items);
        let (files, hardlinks) = {
            let (items, target, report) = (Arc::clone(&items), target.clone(), Arc::clone(&report));
            tokio::task::spawn_blocking(move || create_entries(&items, &target, &report))
                .await
                .map_err(|e| RepoError::InvalidInput(format!("restore task failed: {e}")))??
        };

        // 2. Content: plan per pack, fetch, decode, write.
        let mut plan: HashMap<PackId, BTreeMap<u32, (PackEntry, Vec<Use>)>> = HashMap::new();
        for &file in &files {
            let node = &items[file].node;
            let mut offset = 0u64;
            for id in &node.content {
                let location = index
                    .get(id)
                    .filter(|l| l.entry.blob_type == BlobType::Data)
                    .ok_or_else(|| RepoError::MissingObject {
                        object: format!("data blob {id} of {}", items[file].rel.display()),
                    })?;
                plan.entry(location.pack)
                    .or_default()
                    .entry(location.entry.offset)
                    .or_insert_with(|| (location.entry, Vec::new()))
                    .1
                    .push((file, offset));
                offset += location.entry.plain_len as u64;
            }
        }
        let problems = Arc::new(Mutex::new(Vec::new()));
        futures::stream::iter(plan)
            .map(|(pack, blobs)| {
                let (items, target, counters, problems) = (
                    Arc::clone(&items),
                    target.clone(),
                    Arc::clone(&counters),
                    Arc::clone(&problems),
                );
                let cancel = options.cancel.clone();
                async move {
                    if cancel.is_cancelled() {
                        return Err(RepoError::Cancelled);
                    }
                    self.restore_pack(pack, blobs, items, target, counters, problems)
                        .await
                }
            })
            .buffer_unordered(self.storage.transfer_concurrency().max(2))
            .try_collect::<Vec<()>>()
            .await?;
        report
            .lock()
            .expect("report lock")
            .errors
            .extend(std::mem::take(
                &mut *problems.lock().expect("problems lock"),
            ));

        // Removing entries changes directories' times, so it comes before metadata.
        if options.delete {
            let (items, target, report) = (Arc::clone(&items), target.clone(), Arc::clone(&report));
            let (include, exclude) = (include.clone(), exclude.clone());
            tokio::task::spawn_blocking(move || {
                delete_extraneous(&items, &target, include.as_ref(), exclude.as_ref(), &report)
            })
            .await
            .map_err(|e| RepoError::InvalidInput(format!("restore task failed: {e}")))??;
        }
        // 3. Hard links, then metadata (files before their directories, deepest first).
        {
            let (items, target, report) = (Arc::clone(&items), target.clone(), Arc::clone(&report));
            tokio::task::spawn_blocking(move || {
                finish_entries(&items, &target, &hardlinks, &report)
            })
            .await
            .map_err(|e| RepoError::InvalidInput(format!("restore task failed: {e}")))??;
        }
        if options.verify {
            let (items, target, report) = (Arc::clone(&items), target.clone(), Arc::clone(&report));
            let keys = Arc::clone(&self.keys);
            let index = Arc::clone(&index);
            let files = files.clone();
            tokio::task::spawn_blocking(move || {
                verify_files(&keys, &index, &items, &files, &target, &report)
            })
            .await
            .map_err(|e| RepoError::InvalidInput(format!("verify task failed: {e}")))??;
        }
        drop(reporter);
        let mut report = std::mem::take(&mut *report.lock().expect("report lock"));
        report.bytes_restored = items
            .iter()
            .filter(|i| i.node.kind == NodeKind::File)
            .map(|i| i.node.size)
            .sum();
        Ok(report)
    }

    async fn restore_pack(
        &self,
        pack: PackId,
        blobs: BTreeMap<u32, (PackEntry, Vec<Use>)>,
        items: Arc<Vec<Item>>,
        target: PathBuf,
        counters: Arc<Counters>,
        problems: Arc<Mutex<Vec<(PathBuf, String)>>>,
    ) -> Result<()> {
        let is_root = nix::unistd::geteuid().is_root();
        let name = pack.to_hex();
        // Coalesce blobs that sit close together into one ranged read.
        let mut groups: Vec<Vec<(PackEntry, Vec<Use>)>> = Vec::new();
        for (_, blob) in blobs {
            match groups.last_mut() {
                Some(group)
                    if blob.0.offset as u64
                        <= group.last().map(|(e, _)| e.range().end).unwrap_or(0) + COALESCE_GAP =>
                {
                    group.push(blob)
                }
                _ => groups.push(vec![blob]),
            }
        }
        for group in groups {
            let start = group[0].0.offset as u64;
            let end = group.last().map(|(e, _)| e.range().end).unwrap_or(start);
            let bytes = self
                .storage
                .get_range(FileType::Pack, &name, start..end)
                .await?;
            let keys = Arc::clone(&self.keys);
            let (items, target, counters, problems, name) = (
                Arc::clone(&items),
                target.clone(),
                Arc::clone(&counters),
                Arc::clone(&problems),
                name.clone(),
            );
            tokio::task::spawn_blocking(move || -> Result<()> {
                use rayon::prelude::*;
                // Decode (decrypt, decompress, hash) the group's blobs on every core.
                group
                    .into_par_iter()
                    .try_for_each(|(entry, uses)| -> Result<()> {
                        let local = (entry.offset as u64 - start) as usize
                            ..(entry.range().end - start) as usize;
                        let plain =
                            decode_blob(&keys, &entry, &bytes[local]).map_err(|source| {
                                RepoError::Pack {
                                    object: format!("data blob {} in pack {name}", entry.id),
                                    source,
                                }
                            })?;
                        let zero = plain.iter().all(|&b| b == 0);
                        for (file, offset) in uses {
                            let path = target.join(&items[file].rel);
                            let node = &items[file].node;
                            if one_shot(node) {
                                if let Some(problem) =
                                    write_one_shot(&path, node, &plain, zero, is_root)?
                                {
                                    problems
                                        .lock()
                                        .expect("problems lock")
                                        .push((path, problem));
                                }
                            } else if !zero {
                                let handle = std::fs::OpenOptions::new()
                                    .write(true)
                                    .custom_flags(nix::libc::O_NOFOLLOW)
                                    .open(&path)
                                    .map_err(|e| RepoError::io(&path, e))?;
                                handle
                                    .write_all_at(&plain, offset)
                                    .map_err(|e| RepoError::io(&path, e))?;
                            }
                            counters
                                .bytes_done
                                .fetch_add(plain.len() as u64, Ordering::Relaxed);
                        }
                        Ok(())
                    })
            })
            .await
            .map_err(|e| RepoError::InvalidInput(format!("restore task failed: {e}")))??;
        }
        Ok(())
    }
}

/// Makes room for a new entry at `path`: an existing non-directory is removed (so nothing is
/// ever written through a symlink that was there before).
fn clear_for(path: &Path, want_dir: bool) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() && want_dir => Ok(()),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates every entry; returns the indices of files whose content must be written and the
/// hard links to make. Directories are made first (in order, parents before children), then
/// everything else in parallel.
fn create_entries(
    items: &[Item],
    target: &Path,
    report: &Mutex<RestoreReport>,
) -> Result<(Vec<usize>, Vec<HardLink>)> {
    use rayon::prelude::*;
    let mut hardlinks = Vec::new();
    let mut first_link: HashMap<(u64, u64), usize> = HashMap::new();
    let mut to_create = Vec::new();
    let mut dirs = 0;
    for (i, item) in items.iter().enumerate() {
        let node = &item.node;
        match node.kind {
            NodeKind::Dir => {
                let path = target.join(&item.rel);
                let io = |e| RepoError::io(&path, e);
                // Writable while we fill it; the real mode is set at the end.
                let mut builder = std::fs::DirBuilder::new();
                builder.mode(0o700);
                match builder.create(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Something is there: keep a directory, replace anything else.
                        clear_for(&path, true).map_err(io)?;
                        match builder.create(&path) {
                            Ok(()) => {}
                            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                                std::fs::set_permissions(
                                    &path,
                                    std::fs::Permissions::from_mode(0o700),
                                )
                                .map_err(io)?
                            }
                            Err(e) => return Err(io(e)),
                        }
                    }
                    Err(e) => return Err(io(e)),
                }
                dirs += 1;
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
    let created: Vec<(usize, Result<Created>)> = to_create
        .par_iter()
        .map(|&i| (i, create_one(&items[i], &target.join(&items[i].rel))))
        .collect();
    let mut files = Vec::new();
    let mut report = report.lock().expect("report lock");
    report.dirs_restored += dirs;
    report.files_restored += hardlinks.len() as u64;
    for (i, outcome) in created {
        match outcome? {
            Created::File => {
                files.push(i);
                report.files_restored += 1;
            }
            Created::Other => report.others_restored += 1,
            Created::Failed(message) => report.errors.push((target.join(&items[i].rel), message)),
        }
    }
    files.sort_unstable();
    Ok((files, hardlinks))
}

/// What creating one entry did.
enum Created {
    /// A regular file, now at its full size, to be filled.
    File,
    /// A symlink or special file.
    Other,
    /// Could not be created, not fatal (a device node without privileges).
    Failed(String),
}

/// Creates one non-directory entry.
fn create_one(item: &Item, path: &Path) -> Result<Created> {
    let node = &item.node;
    let io = |e| RepoError::io(path, e);
    if one_shot(node) {
        // Created, written and finished in one go when its only blob arrives.
        return Ok(Created::File);
    }
    // Regular files clear their way in `create_file`; others only when something is there.
    if node.kind != NodeKind::File && std::fs::symlink_metadata(path).is_ok() {
        clear_for(path, false).map_err(io)?;
    }
    match node.kind {
        NodeKind::File => {
            let file = create_file(path).map_err(io)?;
            file.set_len(node.size).map_err(io)?;
            Ok(Created::File)
        }
        NodeKind::Symlink => {
            let target_name = node
                .link_target
                .as_ref()
                .map(|t| t.to_os())
                .unwrap_or_default();
            std::os::unix::fs::symlink(target_name, path).map_err(io)?;
            Ok(Created::Other)
        }
        NodeKind::Fifo | NodeKind::Dev | NodeKind::Chardev => {
            let kind = match node.kind {
                NodeKind::Fifo => nix::sys::stat::SFlag::S_IFIFO,
                NodeKind::Dev => nix::sys::stat::SFlag::S_IFBLK,
                _ => nix::sys::stat::SFlag::S_IFCHR,
            };
            let perm = nix::sys::stat::Mode::from_bits_truncate(node.mode & 0o7777);
            match nix::sys::stat::mknod(
                path,
                kind,
                perm,
                node.rdev.unwrap_or(0) as nix::libc::dev_t,
            ) {
                Ok(()) => Ok(Created::Other),
                Err(e) => Ok(Created::Failed(format!(
                    "cannot create {:?}: {e}",
                    node.kind
                ))),
            }
        }
        NodeKind::Dir => Ok(Created::Other),
    }
}

fn finish_entries(
    items: &[Item],
    target: &Path,
    hardlinks: &[HardLink],
    report: &Mutex<RestoreReport>,
) -> Result<()> {
    use rayon::prelude::*;
    for &(link, first) in hardlinks {
        let path = target.join(&items[link].rel);
        let existing = target.join(&items[first].rel);
        clear_for(&path, false).map_err(|e| RepoError::io(&path, e))?;
        std::fs::hard_link(&existing, &path).map_err(|e| RepoError::io(&path, e))?;
    }
    let is_root = nix::unistd::geteuid().is_root();
    // Everything but directories in parallel; then directories deepest first, so setting a
    // directory's times comes after everything inside it changed.
    let mut errors: Vec<(PathBuf, String)> = items
        .par_iter()
        .filter(|item| item.node.kind != NodeKind::Dir && !one_shot(&item.node))
        .filter_map(|item| {
            let path = target.join(&item.rel);
            apply_metadata(&path, &item.node, is_root)
                .err()
                .map(|e| (path, format!("metadata: {e}")))
        })
        .collect();
    for item in items
        .iter()
        .rev()
        .filter(|item| item.node.kind == NodeKind::Dir)
    {
        let path = target.join(&item.rel);
        if let Err(e) = apply_metadata(&path, &item.node, is_root) {
            errors.push((path, format!("metadata: {e}")));
        }
    }
    report.lock().expect("report lock").errors.extend(errors);
    Ok(())
}

/// A regular file with exactly one content blob: the common small file, restored by one task
/// from open to metadata (about half the system calls of the general path).
fn one_shot(node: &Node) -> bool {
    node.kind == NodeKind::File && node.content.len() == 1
}

/// Creates a file that must not exist yet; anything in the way (a file, a symlink) is removed
/// first, so nothing is ever written through an existing symlink.
fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            clear_for(path, false)?;
            open()
        }
        other => other,
    }
}

/// Restores a one-blob file completely. Returns a metadata problem to report, if any.
fn write_one_shot(
    path: &Path,
    node: &Node,
    plain: &[u8],
    zero: bool,
    is_root: bool,
) -> Result<Option<String>> {
    use std::os::fd::AsFd;
    let io = |e| RepoError::io(path, e);
    let file = create_file(path).map_err(io)?;
    if zero {
        file.set_len(plain.len() as u64).map_err(io)?;
    } else {
        file.write_all_at(plain, 0).map_err(io)?;
    }
    let metadata = (|| -> std::io::Result<()> {
        if is_root {
            nix::unistd::fchown(file.as_fd(), Some(node.uid.into()), Some(node.gid.into()))
                .map_err(std::io::Error::from)?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(node.mode & 0o7777))?;
        set_xattrs(path, node)?;
        let ts = |ns: i64| {
            nix::sys::time::TimeSpec::new(
                ns.div_euclid(1_000_000_000),
                ns.rem_euclid(1_000_000_000),
            )
        };
        nix::sys::stat::futimens(file.as_fd(), &ts(node.mtime_ns), &ts(node.mtime_ns))
            .map_err(std::io::Error::from)
    })();
    Ok(metadata.err().map(|e| format!("metadata: {e}")))
}

fn set_xattrs(path: &Path, node: &Node) -> std::io::Result<()> {
    for xattr in &node.xattrs {
        // Restoring an attribute the file system or our privileges refuse is not fatal.
        if let Err(e) = xattr::set(path, xattr.name.to_os(), &xattr.value.0) {
            if e.raw_os_error() != Some(nix::libc::ENOTSUP)
                && e.raw_os_error() != Some(nix::libc::EPERM)
            {
                return Err(e);
            }
        }
    }
    Ok(())
}

fn apply_metadata(path: &Path, node: &Node, is_root: bool) -> std::io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    let symlink = node.kind == NodeKind::Symlink;
    if is_root {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(node.uid.into()),
            Some(node.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(std::io::Error::from)?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode & 0o7777))?;
    }
    set_xattrs(path, node)?;
    let ts = |ns: i64| TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        // Access times are not stored (they change on every read and would make every
        // directory's tree differ between backups): restore sets them to the mtime.
        &ts(node.mtime_ns),
        &ts(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    )
    .map_err(std::io::Error::from)
}

fn verify_files(
    keys: &cairn_pack::MasterKeys,
    index: &Index,
    items: &[Item],
    files: &[usize],
    target: &Path,
    report: &Mutex<RestoreReport>,
) -> Result<()> {
    let mut verified = 0;
    let mut errors = Vec::new();
    for &i in files {
        let path = target.join(&items[i].rel);
        match verify_file(keys, index, &items[i].node, &path) {
            Ok(()) => verified += 1,
            Err(message) => errors.push((path, message)),
        }
    }
    let mut report = report.lock().expect("report lock");
    report.files_verified += verified;
    report.errors.extend(errors);
    Ok(())
}

fn verify_file(
    keys: &cairn_pack::MasterKeys,
    index: &Index,
    node: &Node,
    path: &Path,
) -> std::result::Result<(), String> {
    let mut file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buffer = Vec::new();
    for (n, id) in node.content.iter().enumerate() {
        let len = index
            .get(id)
            .map(|l| l.entry.plain_len as usize)
            .ok_or_else(|| format!("blob {id} not indexed"))?;
        buffer.resize(len, 0);
        file.read_exact(&mut buffer)
            .map_err(|e| format!("chunk {n}: {e}"))?;
        if keys.blob_id(&buffer) != *id {
            return Err(format!("chunk {n} does not match blob {id}"));
        }
    }
    let mut rest = [0u8; 1];
    if file.read(&mut rest).map_err(|e| e.to_string())? != 0 {
        return Err("file is longer than its content".into());
    }
    Ok(())
}
