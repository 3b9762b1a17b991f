//! `cairn stats`: logical size of the snapshots, what is stored, and the ratios (the library's
//! `Repository::stats`, which the C ABI's `cairn_stats` also reports).

use cairn_repo::Outcome;

use super::snapshots::FilterArgs;
use crate::context::Globals;
use crate::output::{human_bytes, json_line};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let stats = repo.stats(&args.filter.filter()).await?;
    if globals.json {
        json_line(&serde_json::to_value(&stats)?);
    } else {
        println!("Snapshots:                  {}", stats.snapshots_count);
        println!("Files (all snapshots):      {}", stats.total_file_count);
        println!(
            "Logical size:               {}",
            human_bytes(stats.total_size)
        );
        println!(
            "Unique data (uncompressed): {}",
            human_bytes(stats.total_uncompressed_size)
        );
        println!(
            "Stored (compressed):        {}",
            human_bytes(stats.total_stored_size)
        );
        println!(
            "Repository packs:           {} in {} packs",
            human_bytes(stats.repository_size),
            stats.pack_count
        );
        println!("Deduplication ratio:        {:.2}x", stats.dedup_ratio);
        println!(
            "Compression ratio:          {:.2}x",
            stats.compression_ratio
        );
    }
    Ok(Outcome::Success)
}
