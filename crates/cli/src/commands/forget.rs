//! `cairn forget [ID...] --keep-* ... [--prune]`: removes snapshots by retention policy or
//! by id, as restic does. Exits 3 when some snapshots could not be removed.

use anyhow::{bail, Context};
use cairn_repo::ops::forget::{
    Decision, ForgetOptions, ForgetReport, GroupBy, GroupDecision, KeepPolicy, TagSet, Within,
};
use cairn_repo::Outcome;
use chrono::{FixedOffset, Offset, Utc};
use serde_json::{json, Value};

use super::prune::{print_report, PruneFlags};
use super::snapshots::{snapshot_json, FilterArgs};
use crate::context::Globals;

/// restic's message when there is nothing to decide by.
const NO_POLICY: &str = "no policy was specified, no snapshots will be removed";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshots to remove (ids, unique prefixes or "latest"); no policy is applied then.
    #[arg(value_name = "SNAPSHOT_ID")]
    ids: Vec<String>,
    /// Keep the last N snapshots ("unlimited" or -1: all).
    #[arg(short = 'l', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_last: Option<i64>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(short = 'H', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_hourly: Option<i64>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(short = 'd', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_daily: Option<i64>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(short = 'w', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_weekly: Option<i64>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(short = 'm', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_monthly: Option<i64>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(short = 'y', long, value_name = "N", value_parser = parse_count, allow_negative_numbers = true)]
    keep_yearly: Option<i64>,
    /// Keep snapshots newer than DURATION (e.g. 1y5m7d2h) before the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<Within>,
    /// Keep hourly snapshots within DURATION of the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_hourly: Option<Within>,
    /// Keep daily snapshots within DURATION of the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_daily: Option<Within>,
    /// Keep weekly snapshots within DURATION of the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_weekly: Option<Within>,
    /// Keep monthly snapshots within DURATION of the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_monthly: Option<Within>,
    /// Keep yearly snapshots within DURATION of the group's newest.
    #[arg(long, value_name = "DURATION")]
    keep_within_yearly: Option<Within>,
    /// Keep snapshots with these tags (repeatable; "a,b" needs both a and b).
    #[arg(long = "keep-tag", value_name = "TAGS")]
    keep_tags: Vec<String>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Group snapshots by host, paths and/or tags, comma-separated ("" for one group).
    #[arg(short = 'g', long, default_value = "host,paths", value_name = "GROUP")]
    group_by: String,
    /// Reckon hours, days, weeks, months and years in this offset (e.g. +05:00; default UTC).
    #[arg(long, value_name = "OFFSET", value_parser = parse_offset, allow_hyphen_values = true)]
    utc_offset: Option<FixedOffset>,
    /// Let the newest snapshot of a group go when no rule keeps it.
    #[arg(long)]
    allow_remove_latest: bool,
    /// Remove nothing; print what would be removed.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Run prune afterwards if snapshots were removed.
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    prune_flags: PruneFlags,
}

impl Args {
    fn policy(&self) -> KeepPolicy {
        KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
            within_hourly: self.keep_within_hourly,
            within_daily: self.keep_within_daily,
            within_weekly: self.keep_within_weekly,
            within_monthly: self.keep_within_monthly,
            within_yearly: self.keep_within_yearly,
            tags: self.keep_tags.iter().map(|t| TagSet::parse(t)).collect(),
            allow_remove_latest: self.allow_remove_latest,
            utc_offset: self.utc_offset,
        }
    }
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let policy = args.policy();
    // Check every flag before touching the repository.
    let group_by = GroupBy::parse(&args.group_by)?;
    let prune_options = args.prune_flags.options(args.dry_run)?;
    if args.ids.is_empty() && policy.is_empty() {
        if globals.json {
            eprintln!("{NO_POLICY}");
        } else if !globals.quiet {
            println!("{NO_POLICY}");
        }
        return Ok(Outcome::Success);
    }
    let repo = globals.open().await?;
    let report = repo
        .forget(&ForgetOptions {
            ids: args.ids.clone(),
            policy: policy.clone(),
            group_by,
            filter: args.filter.filter(),
            dry_run: args.dry_run,
        })
        .await?;

    let text = !globals.json && !globals.quiet;
    if globals.json {
        // restic prints the groups only when a policy made some, nothing for ids.
        if !report.groups.is_empty() {
            println!(
                "{}",
                Value::Array(report.groups.iter().map(group_json).collect())
            );
        }
    } else if text {
        print_groups(&policy, &args, &report);
    }
    for (id, why) in &report.failed {
        eprintln!("unable to remove snapshots/{id} from the repository: {why}");
    }
    if !report.failed.is_empty() {
        return Ok(report.outcome());
    }
    if report.removed.is_empty() {
        return Ok(Outcome::Success);
    }
    if text {
        let count = report.removed.len();
        match (args.dry_run, args.prune) {
            (true, true) => println!("{count} snapshots would be removed, running prune dry run"),
            (false, true) => println!("{count} snapshots have been removed, running prune"),
            (false, false) => println!("{count} snapshots have been removed"),
            (true, false) => {}
        }
    }
    if args.prune {
        if args.dry_run && text {
            // The library's prune cannot leave out snapshots that are still there.
            println!("(the prune dry run still counts the snapshots above as present)");
        }
        let prune = repo.prune(&prune_options).await?;
        print_report(globals, &prune);
    }
    Ok(Outcome::Success)
}

/// Text output: the policy, then per group the snapshots kept (with reasons) and removed.
fn print_groups(policy: &KeepPolicy, args: &Args, report: &ForgetReport) {
    if args.ids.is_empty() {
        println!("Applying Policy: {policy}");
    }
    for group in &report.groups {
        let key = group.key.to_string();
        if !key.is_empty() {
            println!("snapshots for ({key}):");
        }
        if !group.keep.is_empty() {
            println!("keep {} snapshots:", group.keep.len());
            print_table(&group.keep, true);
            println!();
        }
        if !group.remove.is_empty() {
            println!("remove {} snapshots:", group.remove.len());
            print_table(&group.remove, false);
            println!();
        }
    }
    if args.dry_run && !report.removed.is_empty() {
        let short: Vec<&str> = report.removed.iter().map(|id| id.short()).collect();
        println!(
            "Would have removed the following snapshots:\n{{{}}}\n",
            short.join(" ")
        );
    }
}

/// restic's snapshot table, oldest first; reasons and paths take one line each.
fn print_table(decisions: &[Decision], with_reasons: bool) {
    fn width(min: usize, cells: impl Iterator<Item = usize>) -> usize {
        cells.fold(min, usize::max)
    }
    let snapshots = || decisions.iter().map(|d| &d.entry.snapshot);
    let host_w = width(10, snapshots().map(|s| s.hostname.len()));
    let tags_w = width(10, snapshots().map(|s| s.tags.join(",").len()));
    let reasons_w = width(
        "Reasons".len(),
        decisions
            .iter()
            .flat_map(|d| d.reasons.iter().map(String::len)),
    );
    let row = |id: &str, time: &str, host: &str, tags: &str, reason: &str, path: &str| {
        let mut line = format!("{id:<8}  {time:<19}  {host:<host_w$}  {tags:<tags_w$}  ");
        if with_reasons {
            line.push_str(&format!("{reason:<reasons_w$}  "));
        }
        line.push_str(path);
        line.trim_end().to_string()
    };
    let header = row("ID", "Time", "Host", "Tags", "Reasons", "Paths");
    let rule = "-".repeat(header.len().max(80));
    println!("{header}\n{rule}");
    for decision in decisions.iter().rev() {
        let s = &decision.entry.snapshot;
        let reasons: &[String] = if with_reasons { &decision.reasons } else { &[] };
        let lines = reasons.len().max(s.paths.len()).max(1);
        for i in 0..lines {
            let cell = |items: &[String]| items.get(i).cloned().unwrap_or_default();
            let (id, time, host, tags) = if i == 0 {
                (
                    decision.entry.short_id().to_string(),
                    s.time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    s.hostname.clone(),
                    s.tags.join(","),
                )
            } else {
                Default::default()
            };
            println!(
                "{}",
                row(&id, &time, &host, &tags, &cell(reasons), &cell(&s.paths))
            );
        }
    }
    println!("{rule}\n{} snapshots", decisions.len());
}

/// One group as restic's `forget --json` prints it: `host` is "" and `paths`/`tags` null
/// when not grouped by them; empty lists are null, as Go encodes nil slices.
fn group_json(group: &GroupDecision) -> Value {
    let snapshots = |list: &[Decision]| -> Value {
        if list.is_empty() {
            Value::Null
        } else {
            list.iter().map(|d| snapshot_json(&d.entry)).collect()
        }
    };
    let reasons: Value = if group.keep.is_empty() {
        Value::Null
    } else {
        group
            .keep
            .iter()
            .map(|d| json!({"snapshot": snapshot_json(&d.entry), "matches": d.reasons}))
            .collect()
    };
    json!({
        "host": group.key.hostname.clone().unwrap_or_default(),
        "paths": group.key.paths,
        "tags": group.key.tags,
        "keep": snapshots(&group.keep),
        "remove": snapshots(&group.remove),
        "reasons": reasons,
    })
}

/// A `--keep-*` count: a number ≥ -1 (-1 is unlimited) or "unlimited".
fn parse_count(text: &str) -> anyhow::Result<i64> {
    if text == "unlimited" {
        return Ok(-1);
    }
    let n: i64 = text
        .parse()
        .with_context(|| format!("{text:?} is not a count"))?;
    if n < -1 {
        bail!("{n} is not a count (use a number >= 0, or \"unlimited\" / -1 for all)");
    }
    Ok(n)
}

/// `--utc-offset`: "+05:00", "-0330", "Z" or "UTC".
fn parse_offset(text: &str) -> anyhow::Result<FixedOffset> {
    if matches!(text, "Z" | "z" | "UTC" | "utc") {
        return Ok(Utc.fix());
    }
    text.parse()
        .map_err(|e| anyhow::anyhow!("invalid offset {text:?} ({e}): use e.g. +05:00 or -03:30"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_offsets() {
        assert_eq!(parse_count("7").unwrap(), 7);
        assert_eq!(parse_count("-1").unwrap(), -1);
        assert_eq!(parse_count("unlimited").unwrap(), -1);
        assert!(parse_count("-2").is_err());
        assert!(parse_count("x").is_err());
        assert_eq!(
            parse_offset("+05:00").unwrap(),
            FixedOffset::east_opt(5 * 3600).unwrap()
        );
        assert_eq!(
            parse_offset("-0330").unwrap(),
            FixedOffset::west_opt(3 * 3600 + 1800).unwrap()
        );
        assert_eq!(parse_offset("UTC").unwrap(), Utc.fix());
        assert!(parse_offset("5").is_err());
        assert!(parse_offset("+25:00").is_err());
    }
}
