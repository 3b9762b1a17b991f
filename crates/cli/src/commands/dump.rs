//! `cairn dump SNAPSHOT PATH`: one file to standard output, or a directory (`/` for the
//! whole snapshot) as a tar archive, as restic does.

use cairn_repo::Outcome;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use cairn_repo::NodeKind;

use super::snapshots::FilterArgs;
use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot: "latest", an id or a unique id prefix.
    snapshot: String,
    /// Path of the file in the snapshot (a stream's file sits at the root: `db.sql`); a
    /// directory, or `/` for everything, is written as a tar archive.
    path: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let entry = repo
        .find_snapshot(&args.snapshot, &args.filter.filter())
        .await?;
    let index = repo.load_index().await?;
    // Not `stdout.lock()`: the lock guard is not `Send` across the await points.
    let writer = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
    let is_root = args.path.split('/').all(|c| c.is_empty() || c == ".");
    if is_root {
        repo.dump_tar(index, entry.snapshot.tree, PathBuf::new(), writer)
            .await?;
        return Ok(Outcome::Success);
    }
    let node = repo.find_node(&index, &entry.snapshot, &args.path).await?;
    match node.subtree {
        Some(tree) if node.kind == NodeKind::Dir => {
            let name = PathBuf::from(std::ffi::OsStr::from_bytes(&node.name.0));
            repo.dump_tar(index, tree, name, writer).await?;
        }
        _ => {
            repo.dump(&index, &node, writer).await?;
        }
    }
    Ok(Outcome::Success)
}
