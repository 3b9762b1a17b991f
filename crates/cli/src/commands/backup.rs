//! `cairn backup`: paths or standard input, restic's flags and JSON lines.

use cairn_repo::Outcome;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use cairn_repo::ops::backup::{BackupOptions, BackupReport, ParentSelection};
use cairn_repo::ops::progress::{CancelToken, Progress};
use chrono::DateTime;
use serde_json::json;

use crate::context::Globals;
use crate::output::{human_bytes, json_line, terminal, terminal_path};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Read the data to back up from standard input.
    #[arg(long)]
    stdin: bool,
    /// File name for the data read from standard input.
    #[arg(long, default_value = "stdin")]
    stdin_filename: String,
    /// Host name to record (default: this machine's).
    #[arg(long, visible_alias = "hostname")]
    host: Option<String>,
    /// Tag for the snapshot (repeatable; "a,b" adds two).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Exclude paths matching a pattern (repeatable).
    #[arg(short = 'e', long = "exclude")]
    excludes: Vec<String>,
    /// Read exclude patterns from a file (repeatable).
    #[arg(long)]
    exclude_file: Vec<PathBuf>,
    /// Exclude directories containing a valid CACHEDIR.TAG.
    #[arg(long)]
    exclude_caches: bool,
    /// Exclude directories containing a file of this name (repeatable).
    #[arg(long)]
    exclude_if_present: Vec<String>,
    /// Do not cross file system boundaries.
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Read the paths to back up from a file, one per line.
    #[arg(long)]
    files_from: Vec<PathBuf>,
    /// Time to record, "YYYY-MM-DD HH:MM:SS" (local time).
    #[arg(long)]
    time: Option<String>,
    /// Parent snapshot to compare against.
    #[arg(long)]
    parent: Option<String>,
    /// Re-read every file (no parent).
    #[arg(short, long)]
    force: bool,
    /// Memory the backup may hold in flight, e.g. 256m or 1g (default 512m): sets how many
    /// files are read at once (cairn's own flag; restic has none).
    #[arg(long, env = "CAIRN_MEMORY_BUDGET", value_parser = super::prune::parse_size)]
    memory_budget: Option<u64>,
}

fn parse_time(text: &str) -> anyhow::Result<DateTime<chrono::FixedOffset>> {
    let naive = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S")
        .with_context(|| format!("invalid --time {text:?}: expected \"YYYY-MM-DD HH:MM:SS\""))?;
    naive
        .and_local_timezone(chrono::Local)
        .single()
        .map(|t| t.fixed_offset())
        .ok_or_else(|| anyhow::anyhow!("--time {text:?} is ambiguous in the local time zone"))
}

fn status_line(p: &Progress) -> serde_json::Value {
    let percent = if p.total_bytes > 0 {
        p.bytes_done as f64 / p.total_bytes as f64
    } else {
        0.0
    };
    json!({
        "message_type": "status",
        "percent_done": percent.min(1.0),
        "total_files": p.total_files,
        "files_done": p.files_done,
        "total_bytes": p.total_bytes,
        "bytes_done": p.bytes_done,
        "error_count": p.error_count,
        "current_files": if p.current_path.is_empty() { vec![] } else { vec![p.current_path.clone()] },
        "seconds_elapsed": p.elapsed.as_secs(),
        "seconds_remaining": p.remaining.map(|r| r.as_secs()).unwrap_or(0),
    })
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let paths = source_paths(&args)?;
    if args.stdin && !paths.is_empty() {
        bail!("--stdin and paths cannot be combined");
    }
    if !args.stdin && paths.is_empty() {
        bail!("nothing to back up: give paths or --stdin");
    }
    let repo = globals.open().await?;
    let cancel = CancelToken::new();
    {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
            }
        });
    }
    let bar = globals.progress_bars().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    });
    let progress = progress_fn(globals, bar.clone());
    let tags = args
        .tags
        .iter()
        .flat_map(|t| t.split(','))
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect();
    let options = BackupOptions {
        hostname: args.host.clone(),
        tags,
        time: args.time.as_deref().map(parse_time).transpose()?,
        parent: match &args.parent {
            Some(id) => ParentSelection::Id(id.clone()),
            None => ParentSelection::Latest,
        },
        force: args.force,
        excludes: args.excludes.clone(),
        exclude_files: args.exclude_file.clone(),
        exclude_caches: args.exclude_caches,
        exclude_if_present: args.exclude_if_present.clone(),
        one_file_system: args.one_file_system,
        memory_budget: args.memory_budget,
        progress,
        cancel,
    };
    let started = std::time::Instant::now();
    let report = if args.stdin {
        repo.backup_stream(std::io::stdin(), &args.stdin_filename, options)
            .await?
    } else {
        repo.backup(&paths, options).await?
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    print_report(globals, &report, started.elapsed());
    Ok(report.outcome())
}

/// The paths to back up: the arguments and the lines of every `--files-from` file (blank
/// lines and `#` comments skipped).
fn source_paths(args: &Args) -> anyhow::Result<Vec<PathBuf>> {
    let mut paths = args.paths.clone();
    for file in &args.files_from {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        paths.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(PathBuf::from),
        );
    }
    Ok(paths)
}

/// restic's `status` lines with `--json`, else a spinner line on a terminal.
fn progress_fn(
    globals: &Globals,
    bar: Option<indicatif::ProgressBar>,
) -> Option<cairn_repo::ops::progress::ProgressFn> {
    if globals.json && !globals.quiet {
        Some(Arc::new(|p: &Progress| json_line(&status_line(p))))
    } else {
        bar.map(|bar| {
            Arc::new(move |p: &Progress| {
                bar.set_message(format!(
                    "{} files, {} [{}s] {}",
                    p.files_done,
                    human_bytes(p.bytes_done),
                    p.elapsed.as_secs(),
                    terminal(&p.current_path)
                ))
            }) as cairn_repo::ops::progress::ProgressFn
        })
    }
}

fn print_report(globals: &Globals, report: &BackupReport, duration: std::time::Duration) {
    let summary = report.snapshot.summary.clone().unwrap_or_default();
    if globals.json {
        for issue in &report.issues {
            json_line(&json!({
                "message_type": "error",
                "error": {"message": issue.message},
                "during": issue.during,
                "item": issue.path.to_string_lossy(),
            }));
        }
        json_line(&json!({
            "message_type": "summary",
            "files_new": summary.files_new,
            "files_changed": summary.files_changed,
            "files_unmodified": summary.files_unmodified,
            "dirs_new": summary.dirs_new,
            "dirs_changed": summary.dirs_changed,
            "dirs_unmodified": summary.dirs_unmodified,
            "data_blobs": summary.data_blobs,
            "tree_blobs": summary.tree_blobs,
            "data_added": summary.data_added,
            "data_added_packed": summary.data_added_packed,
            "total_files_processed": summary.total_files_processed,
            "total_bytes_processed": summary.total_bytes_processed,
            "total_duration": duration.as_secs_f64(),
            "backup_start": summary.backup_start,
            "backup_end": summary.backup_end,
            "snapshot_id": report.snapshot_id,
        }));
        return;
    }
    for issue in &report.issues {
        eprintln!(
            "error: {}: {}",
            terminal_path(&issue.path),
            terminal(&issue.message)
        );
    }
    if globals.verbose > 0 {
        for note in &report.notes {
            eprintln!("note: {note}");
        }
    }
    if globals.quiet {
        return;
    }
    println!(
        "Files:       {:>6} new, {:>6} changed, {:>6} unmodified",
        summary.files_new, summary.files_changed, summary.files_unmodified
    );
    println!(
        "Dirs:        {:>6} new, {:>6} changed, {:>6} unmodified",
        summary.dirs_new, summary.dirs_changed, summary.dirs_unmodified
    );
    println!(
        "Added to the repository: {} ({} stored)",
        human_bytes(summary.data_added),
        human_bytes(summary.data_added_packed)
    );
    println!(
        "processed {} files, {} in {:.2}s",
        summary.total_files_processed,
        human_bytes(summary.total_bytes_processed),
        duration.as_secs_f64()
    );
    println!("snapshot {} saved", report.snapshot_id.short());
    if report.snapshot.incomplete {
        eprintln!("Warning: at least one source file could not be read");
    }
}
