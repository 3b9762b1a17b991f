//! `cairn ls SNAPSHOT [PATH]`.

use cairn_repo::Outcome;
use std::path::PathBuf;

use cairn_repo::blobs::ReadAhead;
use cairn_repo::{Node, NodeKind};
use chrono::{DateTime, SecondsFormat};
use serde_json::json;

use super::snapshots::{snapshot_json, FilterArgs};
use crate::context::Globals;
use crate::output::{json_line, terminal_path};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot: "latest", an id or a unique id prefix.
    snapshot: String,
    /// Only list below this directory of the snapshot.
    path: Option<String>,
    #[command(flatten)]
    filter: FilterArgs,
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Dev => "dev",
        NodeKind::Chardev => "chardev",
        NodeKind::Fifo => "fifo",
    }
}

fn time(ns: i64) -> String {
    DateTime::from_timestamp(
        ns.div_euclid(1_000_000_000),
        ns.rem_euclid(1_000_000_000) as u32,
    )
    .map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
    .unwrap_or_default()
}

fn node_json(node: &Node, path: &str) -> serde_json::Value {
    json!({
        "name": node.name.display(),
        "type": kind_name(node.kind),
        "path": path,
        "uid": node.uid,
        "gid": node.gid,
        "size": node.size,
        "mode": node.mode,
        "mtime": time(node.mtime_ns),
        "ctime": time(node.ctime_ns),
        "message_type": "node",
        "struct_type": "node",
    })
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let entry = repo
        .find_snapshot(&args.snapshot, &args.filter.filter())
        .await?;
    let index = repo.load_index().await?;
    if globals.json {
        let mut value = snapshot_json(&entry);
        value["message_type"] = "snapshot".into();
        value["struct_type"] = "snapshot".into();
        json_line(&value);
    }
    let mut start = entry.snapshot.tree;
    let mut prefix = PathBuf::from("/");
    if let Some(path) = args
        .path
        .as_deref()
        .filter(|p| !p.trim_matches('/').is_empty())
    {
        let node = repo.find_node(&index, &entry.snapshot, path).await?;
        prefix = PathBuf::from("/").join(path.trim_matches('/'));
        match node.subtree {
            Some(subtree) => start = subtree,
            None => {
                print_node(globals, &node, &prefix);
                return Ok(Outcome::Success);
            }
        }
    }
    // Depth first in name order, as restic prints (a directory, then what it holds); each
    // directory is read a part at a time with its subtrees read ahead, so a remote store is
    // not paid one round trip per directory and a huge directory is never held whole.
    let trees = ReadAhead::start(repo.clone(), index, repo.reads_in_flight());
    let mut stack = vec![(prefix, trees.read_dir_async(&start).await?)];
    while let Some((dir, reader)) = stack.last_mut() {
        let Some(node) = reader.next_async().await? else {
            stack.pop();
            continue;
        };
        let path = dir.join(node.name.to_os());
        print_node(globals, &node, &path);
        if let Some(subtree) = node.subtree {
            stack.push((path, trees.read_dir_async(&subtree).await?));
        }
    }
    Ok(Outcome::Success)
}

fn print_node(globals: &Globals, node: &Node, path: &std::path::Path) {
    if globals.json {
        // JSON carries the name as it is (serde escapes what JSON must).
        json_line(&node_json(node, &path.to_string_lossy()));
    } else {
        // A name is any bytes: escape control characters before they reach a terminal.
        println!("{}", terminal_path(path));
    }
}
