//! `cairn copy --from-repo SRC [SNAPSHOT...]`: copies snapshots from SRC into the repository
//! given by `-r` (restic's direction), skipping those already copied.

use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::Outcome;
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::{FromRepo, Globals};
use crate::output::json_line;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to copy (ids, prefixes, `latest`); all when none is given.
    snapshots: Vec<String>,
    #[command(flatten)]
    from: FromRepo,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let source = args.from.open(globals).await?;
    let dest = globals.open().await?;
    let options = CopyOptions {
        ids: args.snapshots,
        filter: args.filter.filter(),
        ..Default::default()
    };
    let report = source.copy_snapshots(&dest, &options).await?;
    if globals.json {
        json_line(&json!({
            "message_type": "summary",
            "copied": report.copied.iter().map(|(from, to)| json!({"source": from, "snapshot_id": to})).collect::<Vec<_>>(),
            "skipped": report.skipped,
            "rechunked": report.rechunked,
            "blobs_read": report.blobs_read,
            "blobs_added": report.blobs_added,
            "data_added": report.data_added,
        }));
    } else if !globals.quiet {
        for id in &report.skipped {
            println!(
                "skipping snapshot {}: already in the destination",
                id.short()
            );
        }
        for (from, to) in &report.copied {
            println!("snapshot {} copied as {}", from.short(), to.short());
        }
        println!(
            "copied {} snapshots ({} blobs, {} bytes added{})",
            report.copied.len(),
            report.blobs_added,
            report.data_added,
            if report.rechunked {
                "; re-chunked: the repositories chunk differently"
            } else {
                ""
            }
        );
    }
    Ok(Outcome::Success)
}
