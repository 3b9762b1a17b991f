//! `cairn stats`: logical size of the snapshots, what is stored, and the ratios.

use cairn_repo::Outcome;
use std::collections::HashSet;

use cairn_repo::{BlobId, FileType, NodeKind};
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::Globals;
use crate::output::{human_bytes, json_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let snapshots = repo.list_snapshots(&args.filter.filter()).await?;
    let index = repo.load_index().await?;
    // Restore size: every file of every snapshot; trees shared between snapshots are walked
    // once per snapshot only through their sizes, cached by tree id.
    let mut tree_sizes: std::collections::HashMap<BlobId, (u64, u64)> = Default::default();
    let mut logical = 0u64;
    let mut files = 0u64;
    let mut referenced: HashSet<BlobId> = HashSet::new();
    for entry in &snapshots {
        let (bytes, count) = tree_size(
            &repo,
            &index,
            entry.snapshot.tree,
            &mut tree_sizes,
            &mut referenced,
        )
        .await?;
        logical += bytes;
        files += count;
    }
    let unique: u64 = referenced
        .iter()
        .filter_map(|id| index.get(id))
        .map(|l| l.entry.plain_len as u64)
        .sum();
    let stored_blobs: u64 = referenced
        .iter()
        .filter_map(|id| index.get(id))
        .map(|l| l.entry.stored_len as u64)
        .sum();
    let packs = repo.storage().list(FileType::Pack).await?;
    let repository_size: u64 = packs.iter().map(|p| p.size).sum();
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    if globals.json {
        json_line(&json!({
            "total_size": logical,
            "total_file_count": files,
            "snapshots_count": snapshots.len(),
            "total_blob_count": referenced.len(),
            "total_uncompressed_size": unique,
            "total_stored_size": stored_blobs,
            "repository_size": repository_size,
            "pack_count": packs.len(),
            "dedup_ratio": ratio(logical, unique),
            "compression_ratio": ratio(unique, stored_blobs),
            "compression_space_saving": if unique == 0 { 0.0 } else { 100.0 * (1.0 - stored_blobs as f64 / unique as f64) },
        }));
    } else {
        println!("Snapshots:                  {}", snapshots.len());
        println!("Files (all snapshots):      {files}");
        println!("Logical size:               {}", human_bytes(logical));
        println!("Unique data (uncompressed): {}", human_bytes(unique));
        println!("Stored (compressed):        {}", human_bytes(stored_blobs));
        println!(
            "Repository packs:           {} in {} packs",
            human_bytes(repository_size),
            packs.len()
        );
        println!("Deduplication ratio:        {:.2}x", ratio(logical, unique));
        println!(
            "Compression ratio:          {:.2}x",
            ratio(unique, stored_blobs)
        );
    }
    Ok(Outcome::Success)
}

async fn tree_size(
    repo: &cairn_repo::Repository,
    index: &cairn_repo::Index,
    root: BlobId,
    cache: &mut std::collections::HashMap<BlobId, (u64, u64)>,
    referenced: &mut HashSet<BlobId>,
) -> anyhow::Result<(u64, u64)> {
    // Post-order over the trees, iteratively, so deep trees do not recurse.
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if cache.contains_key(&id) {
            continue;
        }
        let tree = repo.read_tree(index, &id).await?;
        if !expanded {
            stack.push((id, true));
            for node in &tree.nodes {
                if let Some(sub) = node.subtree {
                    if !cache.contains_key(&sub) {
                        stack.push((sub, false));
                    }
                }
            }
            continue;
        }
        referenced.insert(id);
        let (mut bytes, mut count) = (0, 0);
        for node in &tree.nodes {
            if node.kind == NodeKind::File {
                bytes += node.size;
                count += 1;
                referenced.extend(node.content.iter().copied());
            }
            if let Some(sub) = node.subtree {
                let (b, c) = cache.get(&sub).copied().unwrap_or_default();
                bytes += b;
                count += c;
            }
        }
        cache.insert(id, (bytes, count));
    }
    Ok(cache.get(&root).copied().unwrap_or_default())
}
