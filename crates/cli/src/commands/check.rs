//! `cairn check [--read-data] [--read-data-subset n/m|x%]`: exits 1 when anything is damaged.

use cairn_repo::ops::check::{CheckOptions, ReadData};
use cairn_repo::Outcome;
use serde_json::json;

use crate::context::Globals;
use crate::output::{json_line, terminal};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Download every pack and verify every blob.
    #[arg(long)]
    read_data: bool,
    /// Verify a subset of packs: "n/m" (slice n of m, by pack id) or "x%" (random share).
    #[arg(long)]
    read_data_subset: Option<String>,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(subset), _) => ReadData::parse_subset(subset)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = globals.open().await?;
    let (report, recorded) = repo.check_and_record(&CheckOptions { read_data }).await?;
    if let Err(e) = recorded {
        eprintln!("warning: the check's result could not be recorded in the repository: {e}");
    }
    if globals.json {
        for finding in &report.findings {
            json_line(&json!({
                "message_type": if finding.is_error() { "error" } else { "warning" },
                "message": finding.to_string(),
            }));
        }
        json_line(&json!({
            "message_type": "summary",
            "ok": report.is_ok(),
            "errors": report.findings.iter().filter(|f| f.is_error()).count(),
            "packs_indexed": report.packs_indexed,
            "packs_read": report.packs_read,
            "snapshots_checked": report.snapshots_checked,
            "trees_checked": report.trees_checked,
        }));
    } else {
        for finding in &report.findings {
            if finding.is_error() {
                eprintln!("error: {}", terminal(&finding.to_string()));
            } else if !globals.quiet {
                eprintln!("warning: {}", terminal(&finding.to_string()));
            }
        }
        if !globals.quiet {
            println!(
                "checked {} snapshots, {} trees, {} packs ({} read in full): {}",
                report.snapshots_checked,
                report.trees_checked,
                report.packs_indexed,
                report.packs_read,
                if report.is_ok() {
                    "no errors were found"
                } else {
                    "ERRORS FOUND"
                }
            );
        }
    }
    Ok(report.outcome())
}
