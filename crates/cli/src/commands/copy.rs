//! `cairn copy --from-repo SRC [SNAPSHOT...]`: copies snapshots from SRC into the repository
//! given by `-r` (restic's direction), skipping those already copied.

use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::Outcome;
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::{FromRepo, Globals, Source};
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
    let source = args.from.open_source(globals).await?;
    let dest = globals.open().await?;
    let options = CopyOptions {
        ids: args.snapshots,
        filter: args.filter.filter(),
        ..Default::default()
    };
    let source = match source {
        Source::Cairn(repo) => *repo,
        Source::Restic(restic) => return import(globals, &dest, restic, &options).await,
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

/// `copy --from-repo` of a restic repository: its snapshots imported (re-chunked), those
/// imported before skipped.
async fn import(
    globals: &Globals,
    dest: &cairn_repo::Repository,
    restic: std::sync::Arc<cairn_repo::restic::ResticRepo>,
    options: &CopyOptions,
) -> anyhow::Result<Outcome> {
    let report = dest.import_restic(restic, options).await?;
    if globals.json {
        json_line(&json!({
            "message_type": "summary",
            "copied": report.imported.iter().map(|i| json!({"source": i.source, "snapshot_id": i.snapshot})).collect::<Vec<_>>(),
            "skipped": report.skipped,
            "rechunked": true,
            "blobs_read": report.totals.blobs_read,
            "blobs_added": report.totals.blobs_added,
            "data_added": report.totals.data_added,
        }));
    } else if !globals.quiet {
        for id in &report.skipped {
            println!(
                "skipping restic snapshot {}: imported before",
                &id[..8.min(id.len())]
            );
        }
        for imported in &report.imported {
            println!(
                "restic snapshot {} imported as {}",
                &imported.source[..8.min(imported.source.len())],
                imported.snapshot.short()
            );
        }
        println!(
            "imported {} snapshots from restic ({} blobs, {} bytes added)",
            report.imported.len(),
            report.totals.blobs_added,
            report.totals.data_added
        );
    }
    Ok(Outcome::Success)
}
