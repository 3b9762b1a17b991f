//! `cairn repair index` and `cairn repair snapshots [--forget] [--dry-run]`.

use cairn_repo::ops::repair::RepairSnapshotsOptions;
use cairn_repo::Outcome;
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::Globals;
use crate::output::json_line;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Rebuild the index from the packs' own headers (takes the maintenance lock).
    Index,
    /// Rewrite snapshots that reference lost data: damaged files are truncated before their
    /// first missing blob, unreadable directories emptied; every cut is listed and the new
    /// snapshot is tagged "repaired".
    Snapshots {
        /// Only report what would be cut.
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Remove the damaged originals after writing their repaired versions.
        #[arg(long)]
        forget: bool,
        #[command(flatten)]
        filter: FilterArgs,
    },
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    match args.what {
        What::Index => {
            let report = repo.repair_index().await?;
            if globals.json {
                json_line(&json!({"message_type": "summary", "report": report}));
            } else if !globals.quiet {
                for (pack, reason) in &report.packs_unreadable {
                    eprintln!("warning: pack {pack} skipped: {reason}");
                }
                println!(
                    "indexed {} packs into {} index files (replaced {})",
                    report.packs_indexed, report.index_files_written, report.index_files_removed
                );
            }
            // Packs that could not be read are damage the index could not cover.
            Ok(if report.packs_unreadable.is_empty() {
                Outcome::Success
            } else {
                Outcome::Damaged
            })
        }
        What::Snapshots {
            dry_run,
            forget,
            filter,
        } => {
            let filter = filter.filter();
            let repaired = repo
                .repair_snapshots(&filter, &RepairSnapshotsOptions { dry_run, forget })
                .await?;
            if globals.json {
                json_line(
                    &json!({"message_type": "summary", "dry_run": dry_run, "snapshots": repaired}),
                );
            } else if !globals.quiet {
                for snapshot in &repaired {
                    println!("snapshot {}:", snapshot.original.short());
                    for cut in &snapshot.damage {
                        println!("  {cut}");
                    }
                    match &snapshot.repaired {
                        Some(id) => println!("  saved as {}", id.short()),
                        None => println!("  (dry run: nothing written)"),
                    }
                }
                if repaired.is_empty() {
                    println!("no snapshot needs repair");
                }
            }
            Ok(Outcome::Success)
        }
    }
}
