//! `cairn list snapshots|index|packs|keys|locks|blobs`: one id per line, as restic prints it
//! (also with `--json`: restic's `list` has no JSON form, and K8up counts the lines of
//! `list locks --json --no-lock`).

use cairn_repo::FileType;
use cairn_repo::Outcome;

use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to list.
    #[arg(value_enum)]
    kind: Kind,
}

/// The listable object types (restic's names).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Kind {
    /// Snapshot ids.
    Snapshots,
    /// Index file ids.
    Index,
    /// Pack ids.
    Packs,
    /// Key ids.
    Keys,
    /// Lock names: backup markers' ids and "maintenance".
    Locks,
    /// Every indexed blob, as "data ID" or "tree ID".
    Blobs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let file_type = match args.kind {
        Kind::Snapshots => FileType::Snapshot,
        Kind::Index => FileType::Index,
        Kind::Packs => FileType::Pack,
        Kind::Keys => FileType::Key,
        Kind::Locks => FileType::Lock,
        Kind::Blobs => {
            let index = repo.load_index().await?;
            for location in index.iter() {
                println!("{} {}", location.entry.blob_type, location.entry.id);
            }
            return Ok(Outcome::Success);
        }
    };
    for listed in repo.storage().list(file_type).await? {
        println!("{}", listed.name);
    }
    Ok(Outcome::Success)
}
