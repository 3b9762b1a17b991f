//! `dump` of a directory, or of a whole snapshot, as a tar stream (restic's behaviour), so
//! `cairn dump latest /var/lib/app | tar -x` works without a scratch restore.

use std::cell::RefCell;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_pack::BlobId;
use tar::{EntryType, Header};

use crate::blobs::ReadAhead;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::content::content_reader;
use crate::tree::{Node, NodeKind};
use crate::Repository;

impl Repository {
    /// Writes tree `tree` and everything below it to `writer` as a tar archive (GNU format,
    /// so long and non-UTF-8 names survive), entries named under `prefix` (empty: at the
    /// archive's root). Directories, regular files with their content, symlinks, devices and
    /// FIFOs keep mode, owner and modification time; a hard-linked file is stored once per
    /// name. Returns the bytes of file content written.
    pub async fn dump_tar<W: Write + Send + 'static>(
        &self,
        index: Arc<Index>,
        tree: BlobId,
        prefix: PathBuf,
        writer: W,
    ) -> Result<u64> {
        let blobs = ReadAhead::start(self.clone(), index, self.reads_in_flight());
        tokio::task::spawn_blocking(move || {
            let mut archive = tar::Builder::new(writer);
            archive.follow_symlinks(false);
            let mut written = 0;
            let tarring = TarWriter { blobs: &blobs };
            tarring.tree(&tree, &prefix, &mut archive, &mut written)?;
            let mut writer = archive
                .into_inner()
                .map_err(|e| RepoError::io("<output>", e))?;
            writer.flush().map_err(|e| RepoError::io("<output>", e))?;
            Ok(written)
        })
        .await
        .map_err(RepoError::task("tar task"))?
    }
}

struct TarWriter<'a> {
    blobs: &'a ReadAhead,
}

impl TarWriter<'_> {
    /// Writes every entry below tree `id`, depth first. Iterative (a stack of open trees and
    /// one path grown and shrunk a component at a time), so a snapshot thousands of levels
    /// deep costs memory in proportion to its depth, never the thread's stack.
    fn tree<W: Write>(
        &self,
        id: &BlobId,
        prefix: &Path,
        archive: &mut tar::Builder<W>,
        written: &mut u64,
    ) -> Result<()> {
        let mut path = prefix.to_path_buf();
        // Each level: the directory being listed, read a part at a time.
        let mut stack = vec![self.blobs.read_dir(id)?];
        while let Some(dir) = stack.last_mut() {
            let Some(node) = dir.next_blocking()? else {
                stack.pop();
                // Back in the parent: drop the directory's name (the root has none).
                if !stack.is_empty() {
                    path.pop();
                }
                continue;
            };
            path.push(OsStr::from_bytes(&node.name.0));
            self.node(&node, &path, archive, written)?;
            let subtree = node.subtree.filter(|_| node.kind == NodeKind::Dir);
            match subtree {
                Some(subtree) => stack.push(self.blobs.read_dir(&subtree)?),
                None => {
                    path.pop();
                }
            }
        }
        Ok(())
    }

    fn node<W: Write>(
        &self,
        node: &Node,
        path: &Path,
        archive: &mut tar::Builder<W>,
        written: &mut u64,
    ) -> Result<()> {
        let output = |e: std::io::Error| RepoError::io(path, e);
        let mut header = Header::new_gnu();
        header.set_mode(node.mode & 0o7777);
        header.set_uid(u64::from(node.uid));
        header.set_gid(u64::from(node.gid));
        header.set_mtime(u64::try_from(node.mtime_ns.div_euclid(1_000_000_000)).unwrap_or(0));
        // Names that do not fit the header are left out; the numeric ids remain.
        let _ = header.set_username(&node.user);
        let _ = header.set_groupname(&node.group);
        header.set_size(0);
        match node.kind {
            NodeKind::Dir => {
                header.set_entry_type(EntryType::Directory);
                archive
                    .append_data(&mut header, path, std::io::empty())
                    .map_err(output)
            }
            NodeKind::Symlink => {
                header.set_entry_type(EntryType::Symlink);
                let target = node
                    .link_target
                    .as_ref()
                    .map(|t| t.0.clone())
                    .unwrap_or_default();
                archive
                    .append_link(&mut header, path, OsStr::from_bytes(&target))
                    .map_err(output)
            }
            NodeKind::Fifo | NodeKind::Dev | NodeKind::Chardev => {
                header.set_entry_type(match node.kind {
                    NodeKind::Fifo => EntryType::Fifo,
                    NodeKind::Dev => EntryType::Block,
                    _ => EntryType::Char,
                });
                if let Some(rdev) = node.rdev {
                    let _ = header.set_device_major(nix::sys::stat::major(rdev) as u32);
                    let _ = header.set_device_minor(nix::sys::stat::minor(rdev) as u32);
                }
                archive
                    .append_data(&mut header, path, std::io::empty())
                    .map_err(output)
            }
            NodeKind::File => {
                header.set_entry_type(EntryType::Regular);
                header.set_size(node.size);
                let failure = RefCell::new(None);
                let content = content_reader(self.blobs, &node.content, &failure);
                // The header promised `size` bytes: a shorter or longer content would
                // corrupt every entry after it, so it is an error.
                let mut exact = ExactReader {
                    inner: content,
                    left: node.size,
                };
                let appended = archive.append_data(&mut header, path, &mut exact);
                if let Some(e) = failure.borrow_mut().take() {
                    return Err(e);
                }
                appended.map_err(output)?;
                if exact.left != 0 || exact.inner.read(&mut [0u8; 1]).map_err(output)? != 0 {
                    return Err(RepoError::corrupt(
                        path.display().to_string(),
                        format!("content does not add up to the recorded size {}", node.size),
                    ));
                }
                *written += node.size;
                Ok(())
            }
        }
    }
}

/// Yields at most `left` bytes of `inner`.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}
