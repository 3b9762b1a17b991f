//! `cairn metrics [--textfile PATH]`: Prometheus text exposition on stdout, or written
//! atomically for node_exporter's textfile collector.

use cairn_repo::Outcome;
use std::path::PathBuf;

use cairn_repo::ops::forget::GroupBy;
use cairn_repo::ops::metrics::write_textfile;

use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write to this file (through a temporary file and a rename) instead of stdout.
    #[arg(long, value_name = "PATH")]
    textfile: Option<PathBuf>,
    /// Group snapshots by host, paths and/or tags, comma-separated ("" for one group).
    #[arg(short = 'g', long, default_value = "host,paths", value_name = "GROUP")]
    group_by: String,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let group_by = GroupBy::parse(&args.group_by)?;
    let repo = globals.open().await?;
    let metrics = repo.metrics(group_by, chrono::Utc::now()).await?;
    if globals.json {
        println!("{}", serde_json::to_string(&metrics)?);
        return Ok(Outcome::Success);
    }
    let text = metrics.to_prometheus();
    match &args.textfile {
        Some(path) => write_textfile(path, &text)?,
        None => print!("{text}"),
    }
    Ok(Outcome::Success)
}
