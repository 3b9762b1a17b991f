//! `cairn restore SNAPSHOT[:PATH] --target DIR [--delete]`.

use cairn_repo::Outcome;
use std::path::PathBuf;
use std::sync::Arc;

use cairn_repo::ops::progress::Progress;
use cairn_repo::ops::restore::{RestoreOptions, RestoreReport};
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::Globals;
use crate::output::{human_bytes, json_line, terminal, terminal_path};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot: "latest", an id or a unique id prefix; `SNAPSHOT:PATH` restores the
    /// contents of that directory of the snapshot directly into the target (restic's form).
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(short, long)]
    target: PathBuf,
    /// Only restore paths matching this pattern (repeatable).
    #[arg(short, long = "include")]
    include: Vec<String>,
    /// Do not restore paths matching this pattern (repeatable).
    #[arg(short, long = "exclude")]
    exclude: Vec<String>,
    /// Re-read restored files and check them against the repository.
    #[arg(long)]
    verify: bool,
    /// Delete what the target holds in restored directories but the snapshot does not.
    #[arg(long)]
    delete: bool,
    /// Do not restore owners: everything belongs to the user running the restore (without
    /// it, root restores the snapshot's numeric uid and gid).
    #[arg(long)]
    no_owner: bool,
    /// Clear setuid and setgid bits.
    #[arg(long)]
    no_setid: bool,
    /// Do not create block or character device nodes.
    #[arg(long)]
    no_devices: bool,
    /// Restore only extended attributes whose names match this glob, e.g. 'user.*'
    /// (repeatable; default: all).
    #[arg(long = "include-xattr", value_name = "PATTERN")]
    include_xattr: Vec<String>,
    /// Do not restore extended attributes whose names match this glob, e.g.
    /// 'security.*' (repeatable).
    #[arg(long = "exclude-xattr", value_name = "PATTERN")]
    exclude_xattr: Vec<String>,
    /// Refuse a snapshot that expands to more entries than this (shared subtrees are
    /// restored at every path that refers to them; default 16777216).
    #[arg(long, value_name = "N")]
    max_entries: Option<u64>,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let index = repo.load_index().await?;
    let (entry, snapshot) = repo
        .resolve_restore_source(&index, &args.snapshot, &args.filter.filter())
        .await?;
    let progress = (globals.json && !globals.quiet).then(json_progress);
    if !globals.json && !globals.quiet {
        eprintln!(
            "restoring snapshot {} to {}",
            entry.short_id(),
            terminal_path(&args.target)
        );
    }
    let started = std::time::Instant::now();
    let options = RestoreOptions {
        include: args.include,
        exclude: args.exclude,
        verify: args.verify,
        delete: args.delete,
        no_owner: args.no_owner,
        no_setid: args.no_setid,
        no_devices: args.no_devices,
        include_xattr: args.include_xattr,
        exclude_xattr: args.exclude_xattr,
        max_entries: args.max_entries,
        progress,
        ..Default::default()
    };
    let report = repo
        .restore(index, &snapshot, &args.target, options)
        .await?;
    for (path, message) in &report.errors {
        if globals.json {
            json_line(
                &json!({"message_type": "error", "error": {"message": message}, "during": "restore", "item": path.to_string_lossy()}),
            );
        } else {
            eprintln!("error: {}: {}", terminal_path(path), terminal(message));
        }
    }
    let shown = (args.verify, args.delete);
    print_summary(
        globals,
        shown,
        &report,
        entry.id.as_str(),
        started.elapsed(),
    );
    Ok(report.outcome())
}

/// restic's `status` lines for `--json`.
fn json_progress() -> cairn_repo::ops::progress::ProgressFn {
    Arc::new(|p: &Progress| {
        let percent = if p.total_bytes > 0 {
            p.bytes_done as f64 / p.total_bytes as f64
        } else {
            0.0
        };
        json_line(&json!({
            "message_type": "status",
            "seconds_elapsed": p.elapsed.as_secs(),
            "percent_done": percent.min(1.0),
            "total_files": p.total_files,
            "files_restored": p.files_done,
            "total_bytes": p.total_bytes,
            "bytes_restored": p.bytes_done,
        }))
    })
}

/// restic's `summary` line for `--json`, or one line for people.
fn print_summary(
    globals: &Globals,
    (verify, delete): (bool, bool),
    report: &RestoreReport,
    snapshot_id: &str,
    elapsed: std::time::Duration,
) {
    if globals.json {
        json_line(&json!({
            "message_type": "summary",
            "seconds_elapsed": elapsed.as_secs(),
            "total_files": report.files_restored + report.dirs_restored + report.others_restored,
            "files_restored": report.files_restored + report.dirs_restored + report.others_restored,
            "total_bytes": report.bytes_restored,
            "bytes_restored": report.bytes_restored,
            "files_verified": report.files_verified,
            "files_deleted": report.deleted,
            "files_skipped": report.skipped,
            "snapshot_id": snapshot_id,
        }));
    } else if !globals.quiet {
        println!(
            "restored {} files, {} directories, {} other entries, {} in {:.2}s{}{}{}",
            report.files_restored,
            report.dirs_restored,
            report.others_restored,
            human_bytes(report.bytes_restored),
            elapsed.as_secs_f64(),
            if verify {
                format!("; verified {} files", report.files_verified)
            } else {
                String::new()
            },
            if delete {
                format!("; deleted {} entries", report.deleted)
            } else {
                String::new()
            },
            if report.skipped > 0 {
                format!("; skipped {} device nodes", report.skipped)
            } else {
                String::new()
            }
        );
    }
}
