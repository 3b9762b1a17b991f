//! Builds a synthetic repository of N million blobs, quickly and through the library, for
//! benches/scale.sh: the memory of every operation is then measured against a repository
//! far larger than any test data set.
//!
//! `scale_repo <directory> <million blobs>` (password: `$RESTIC_PASSWORD`) writes:
//! - snapshot `big` (tag `big`): one directory per 100 000 blobs, each of 100 files of
//!   1 000 data blobs of 48–111 bytes (distinct, incompressible), so every blob is
//!   reachable and check and prune have real trees and packs to walk;
//! - snapshot `small` (tag `small`): one file of 3 blobs, for restore and copy.
//!
//! The blobs go through `backup_built_tree`, so packs, index files and snapshots are the
//! ones a backup writes.

use std::path::PathBuf;

use cairn_repo::{
    ops::backup::BackupOptions, BlobId, BlobType, InitOptions, Node, NodeKind, Repository, Storage,
    Tree,
};

const BLOBS_PER_FILE: u64 = 1_000;
const FILES_PER_DIR: u64 = 100;

/// The `n`th blob's bytes: 48–111 bytes, unique to `n`, incompressible.
fn blob(n: u64) -> Vec<u8> {
    let len = 48 + (n % 64) as usize;
    let mut bytes = vec![0u8; len];
    blake3::Hasher::new()
        .update(&n.to_le_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

fn file(name: String, content: Vec<BlobId>, size: u64) -> Node {
    let mut node = Node::new(name, NodeKind::File);
    node.mode = 0o644;
    node.size = size;
    node.content = content;
    node
}

fn dir(name: String, subtree: BlobId) -> Node {
    let mut node = Node::new(name, NodeKind::Dir);
    node.mode = 0o755;
    node.subtree = Some(subtree);
    node
}

fn store_tree(
    store: &mut cairn_repo::ops::backup::StoreBlob<'_>,
    mut nodes: Vec<Node>,
) -> cairn_repo::Result<BlobId> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let bytes = Tree { nodes }.encode()?;
    store(BlobType::Tree, &bytes)
}

fn options(tag: &str) -> BackupOptions {
    BackupOptions {
        tags: vec![tag.into()],
        hostname: Some("scale".into()),
        ..Default::default()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(millions)) = (args.next(), args.next()) else {
        return Err("usage: scale_repo <directory> <million blobs>".into());
    };
    let blobs = (millions.parse::<f64>()? * 1e6) as u64;
    let password = std::env::var("RESTIC_PASSWORD")?;
    let path = PathBuf::from(path);
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let storage = Storage::open_or_create(path.to_str().ok_or("path is not UTF-8")?)?;
        let repo = Repository::init(storage, password.as_bytes(), InitOptions::default()).await?;
        let started = std::time::Instant::now();
        repo.backup_built_tree(vec!["/scale".into()], options("big"), move |store| {
            let mut dirs = Vec::new();
            let mut files = Vec::new();
            let mut n = 0;
            while n < blobs {
                let count = BLOBS_PER_FILE.min(blobs - n);
                let mut content = Vec::with_capacity(count as usize);
                let mut size = 0;
                for k in n..n + count {
                    let bytes = blob(k);
                    size += bytes.len() as u64;
                    content.push(store(BlobType::Data, &bytes)?);
                }
                files.push(file(format!("f{n:012}"), content, size));
                n += count;
                if files.len() as u64 == FILES_PER_DIR || n == blobs {
                    let subtree = store_tree(store, std::mem::take(&mut files))?;
                    dirs.push(dir(format!("d{:08}", dirs.len()), subtree));
                }
            }
            store_tree(store, dirs)
        })
        .await?;
        eprintln!("big: {blobs} blobs in {:.1?}", started.elapsed());
        repo.backup_built_tree(vec!["/small".into()], options("small"), |store| {
            let content = (0..3u64)
                .map(|k| store(BlobType::Data, &blob(u64::MAX - k)))
                .collect::<cairn_repo::Result<Vec<_>>>()?;
            let small = file("small.bin".into(), content, 3 * 111);
            store_tree(store, vec![small])
        })
        .await?;
        Ok(())
    })
}
