//! `cairn unlock [--remove-all]`: removes dead locks (stale by the store's clock, taken on
//! this host by a process that is gone, or not authenticating), or every lock.

use crate::context::Globals;
use cairn_repo::Outcome;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove every lock, even live ones: only when no other cairn process uses the
    /// repository.
    #[arg(long)]
    remove_all: bool,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let removed = repo.unlock(args.remove_all).await?;
    if globals.json {
        let names: Vec<&str> = removed.iter().map(|(name, _)| name.as_str()).collect();
        let reasons: Vec<&str> = removed.iter().map(|(_, why)| why.as_str()).collect();
        crate::output::json_line(&serde_json::json!({
            "message_type": "summary", "removed": names, "reasons": reasons,
        }));
    } else if !globals.quiet {
        if globals.verbose > 0 {
            for (name, why) in &removed {
                println!("removed locks/{name}: {why}");
            }
        }
        // restic says nothing when there was nothing to remove.
        if !removed.is_empty() {
            println!("successfully removed {} locks", removed.len());
        }
    }
    Ok(Outcome::Success)
}
