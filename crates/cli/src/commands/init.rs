//! `cairn init`.

use cairn_repo::Outcome;
use cairn_repo::{InitOptions, Repository};
use serde_json::json;

use crate::context::{FromRepo, Globals};
use crate::output::json_line;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// zstd level for new blobs (1-22), or "off".
    #[arg(long, default_value = "3")]
    compression: String,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16)]
    pack_size: usize,
    /// Chunk exactly like this repository (its chunk sizes and chunker secret), so `copy`
    /// between the two moves chunks one to one and they deduplicate with each other.
    #[arg(long, value_name = "REPO")]
    copy_chunker_params_from: Option<String>,
    /// restic's spelling: take the chunker parameters from `--from-repo`.
    #[arg(long)]
    copy_chunker_params: bool,
    #[command(flatten)]
    from: FromRepo,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let compression =
        match args.compression.as_str() {
            "off" | "none" => None,
            "auto" | "" => Some(3),
            "max" => Some(19),
            level => Some(level.parse().map_err(|_| {
                anyhow::anyhow!("invalid --compression {level:?}: use 1-22 or off")
            })?),
        };
    let options = InitOptions {
        compression,
        pack_size: args.pack_size.saturating_mul(1 << 20),
        ..InitOptions::default()
    };
    let storage = globals.storage(true)?;
    let location = storage.location().to_string();
    let password = globals.password()?;
    let mut from = args.from.clone();
    if let Some(location) = &args.copy_chunker_params_from {
        from.repo = Some(location.clone());
    }
    let repo = if args.copy_chunker_params || args.copy_chunker_params_from.is_some() {
        let like = from.open(globals).await?;
        Repository::init_chunking_like(storage, &password, options, &like).await?
    } else {
        Repository::init(storage, &password, options).await?
    };
    if globals.json {
        json_line(
            &json!({"message_type": "initialized", "id": repo.config().id, "repository": location}),
        );
    } else if !globals.quiet {
        println!(
            "created cairn repository {} at {location}",
            &repo.config().id[..10]
        );
        println!(
            "Please note that knowledge of your password is required to access the repository."
        );
        println!("Losing your password means that your data is irrecoverably lost.");
    }
    Ok(Outcome::Success)
}
