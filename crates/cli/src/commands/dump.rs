//! `cairn dump SNAPSHOT PATH`: one file to standard output.

use super::snapshots::FilterArgs;
use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot: "latest", an id or a unique id prefix.
    snapshot: String,
    /// Path of the file in the snapshot (a stream's file sits at the root: `db.sql`).
    path: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<u8> {
    let repo = globals.open().await?;
    let entry = repo
        .find_snapshot(&args.snapshot, &args.filter.filter())
        .await?;
    let index = repo.load_index().await?;
    let node = repo.find_node(&index, &entry.snapshot, &args.path).await?;
    let stdout = std::io::stdout();
    // Not `stdout.lock()`: the lock guard is not `Send` across the await points.
    let writer = std::io::BufWriter::with_capacity(1 << 20, stdout);
    repo.dump(&index, &node, writer).await?;
    Ok(0)
}
