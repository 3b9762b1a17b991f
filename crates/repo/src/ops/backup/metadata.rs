//! Turning `lstat` results into tree nodes, and owner names into a small cache.

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Mutex;

use crate::tree::{HexBytes, Name, Node, NodeKind, Xattr};

/// uid/gid → name, looked up once each.
#[derive(Debug, Default)]
pub(crate) struct OwnerNames {
    users: Mutex<HashMap<u32, String>>,
    groups: Mutex<HashMap<u32, String>>,
}

impl OwnerNames {
    fn user(&self, uid: u32) -> String {
        let mut cache = self.users.lock().expect("user cache");
        cache
            .entry(uid)
            .or_insert_with(|| {
                nix::unistd::User::from_uid(uid.into())
                    .ok()
                    .flatten()
                    .map(|u| u.name)
                    .unwrap_or_default()
            })
            .clone()
    }

    fn group(&self, gid: u32) -> String {
        let mut cache = self.groups.lock().expect("group cache");
        cache
            .entry(gid)
            .or_insert_with(|| {
                nix::unistd::Group::from_gid(gid.into())
                    .ok()
                    .flatten()
                    .map(|g| g.name)
                    .unwrap_or_default()
            })
            .clone()
    }
}

pub(crate) fn kind_of(meta: &Metadata) -> Option<NodeKind> {
    let t = meta.file_type();
    Some(if t.is_file() {
        NodeKind::File
    } else if t.is_dir() {
        NodeKind::Dir
    } else if t.is_symlink() {
        NodeKind::Symlink
    } else if t.is_block_device() {
        NodeKind::Dev
    } else if t.is_char_device() {
        NodeKind::Chardev
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else {
        return None; // sockets
    })
}

fn ns(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// A node with everything but content, subtree and link target filled in.
pub(crate) fn node_for(name: Name, kind: NodeKind, meta: &Metadata, owners: &OwnerNames) -> Node {
    Node {
        name,
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        user: owners.user(meta.uid()),
        group: owners.group(meta.gid()),
        mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
        ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        size: if kind == NodeKind::File {
            meta.len()
        } else {
            0
        },
        inode: meta.ino(),
        device: meta.dev(),
        links: meta.nlink(),
        rdev: matches!(kind, NodeKind::Dev | NodeKind::Chardev).then(|| meta.rdev()),
        link_target: None,
        content: Vec::new(),
        subtree: None,
        xattrs: Vec::new(),
    }
}

/// Extended attributes of `path` itself (not following symlinks), sorted by name. File
/// systems without xattr support yield none.
pub(crate) fn read_xattrs(path: &Path) -> std::io::Result<Vec<Xattr>> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for name in names {
        if let Some(value) = xattr::get(path, &name)? {
            out.push(Xattr {
                name: Name::from_os(&name),
                value: HexBytes(value),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
