//! `cairn snapshots`.

use cairn_repo::Outcome;
use cairn_repo::{SnapshotEntry, SnapshotFilter};
use serde_json::Value;

use crate::context::Globals;
use crate::output::terminal;

/// Filters shared by commands that select snapshots.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FilterArgs {
    /// Only snapshots of this host (repeatable).
    #[arg(long = "host", visible_alias = "hostname")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable; "a,b" needs both).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots including this path (repeatable).
    #[arg(long = "path")]
    pub paths: Vec<String>,
}

impl FilterArgs {
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self
                .tags
                .iter()
                .flat_map(|t| t.split(','))
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
            paths: self.paths.clone(),
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
    /// Only the latest N snapshots of each host and path set.
    #[arg(long)]
    latest: Option<usize>,
}

/// A snapshot as restic's `snapshots --json` prints it.
pub fn snapshot_json(entry: &SnapshotEntry) -> Value {
    entry.to_json()
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let mut list = repo.list_snapshots(&args.filter.filter()).await?;
    if let Some(n) = args.latest {
        let mut kept = Vec::new();
        let mut groups: std::collections::HashMap<(String, Vec<String>), usize> =
            Default::default();
        for entry in list.into_iter().rev() {
            let mut paths = entry.snapshot.paths.clone();
            paths.sort();
            let count = groups
                .entry((entry.snapshot.hostname.clone(), paths))
                .or_default();
            if *count < n {
                *count += 1;
                kept.push(entry);
            }
        }
        kept.reverse();
        list = kept;
    }
    if globals.json {
        println!("{}", Value::Array(list.iter().map(snapshot_json).collect()));
        return Ok(Outcome::Success);
    }
    println!(
        "{:<8}  {:<25}  {:<15}  {:<15}  Paths",
        "ID", "Time", "Host", "Tags"
    );
    println!("{}", "-".repeat(80));
    for entry in &list {
        let s = &entry.snapshot;
        println!(
            "{:<8}  {:<25}  {:<15}  {:<15}  {}{}",
            entry.short_id(),
            s.time.format("%Y-%m-%d %H:%M:%S"),
            // Written by whichever host made the snapshot: escaped like file names.
            terminal(&s.hostname),
            terminal(&s.tags.join(",")),
            terminal(&s.paths.join(", ")),
            if s.incomplete { "  (incomplete)" } else { "" }
        );
    }
    println!("{}", "-".repeat(80));
    println!("{} snapshots", list.len());
    Ok(Outcome::Success)
}
