//! `cairn rpo --max-age D [--max-verified-age D]`: is every group's recovery point recent
//! enough? Exit 0 when it is, EXIT_RPO_BREACHED when any group breaches, 1 on error.

use cairn_repo::ops::forget::GroupBy;
use cairn_repo::ops::rpo::{parse_duration, RpoOptions};
use cairn_repo::Outcome;

use super::snapshots::FilterArgs;
use crate::context::Globals;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The newest complete snapshot of every group must be younger than this (e.g. 26h).
    #[arg(long, value_name = "DURATION")]
    max_age: String,
    /// The newest snapshot with a passing drill must be younger than this (e.g. 8d).
    #[arg(long, value_name = "DURATION")]
    max_verified_age: Option<String>,
    /// Group snapshots by host, paths and/or tags, comma-separated ("" for one group).
    #[arg(short = 'g', long, default_value = "host,paths", value_name = "GROUP")]
    group_by: String,
    #[command(flatten)]
    filter: FilterArgs,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    // Every input is validated before the repository is touched.
    let options = RpoOptions {
        max_age: parse_duration(&args.max_age, "--max-age")?,
        max_verified_age: args
            .max_verified_age
            .as_deref()
            .map(|d| parse_duration(d, "--max-verified-age"))
            .transpose()?,
        group_by: GroupBy::parse(&args.group_by)?,
        filter: args.filter.filter(),
        now: chrono::Utc::now(),
    };
    let repo = globals.open().await?;
    let report = repo.rpo(&options).await?;
    if globals.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !globals.quiet || !report.ok {
        for breach in &report.breaches {
            println!("BREACH: {breach}");
        }
        for group in &report.groups {
            let verified = group
                .newest_verified
                .as_ref()
                .map(|p| format!("{} ({}s old)", p.short_id, p.age_seconds))
                .unwrap_or_else(|| "none".into());
            println!(
                "{} {}: newest {} ({}s old{}), verified {}",
                if group.ok { "ok    " } else { "BREACH" },
                group.key,
                group.newest.short_id,
                group.newest.age_seconds,
                if group.newest.complete {
                    ""
                } else {
                    ", incomplete"
                },
                verified
            );
            for breach in &group.breaches {
                println!("         {breach}");
            }
        }
    }
    Ok(report.outcome())
}
