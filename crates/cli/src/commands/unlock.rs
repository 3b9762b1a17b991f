//! `cairn unlock [--remove-all]`: removes stale locks, or every lock.

use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove every lock, even live ones: only when no other cairn process uses the
    /// repository.
    #[arg(long)]
    remove_all: bool,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<u8> {
    let repo = globals.open().await?;
    let removed = repo.unlock(args.remove_all).await?;
    if globals.json {
        crate::output::json_line(
            &serde_json::json!({"message_type": "summary", "removed": removed}),
        );
    } else if !globals.quiet {
        if globals.verbose > 0 {
            for name in &removed {
                println!("removed locks/{name}");
            }
        }
        // restic says nothing when there was nothing to remove.
        if !removed.is_empty() {
            println!("successfully removed {} locks", removed.len());
        }
    }
    Ok(0)
}
