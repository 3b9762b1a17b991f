//! `cairn prune [--max-unused 5%] [--max-repack-size SIZE] [--dry-run]`: removes data no
//! snapshot uses. Exits 11 when another maintenance run holds the repository's lock.

use anyhow::{bail, Context};
use cairn_repo::ops::prune::{MaxUnused, PruneOptions, PruneReport};
use cairn_repo::Outcome;
use serde_json::Value;

use crate::context::Globals;
use crate::output::{human_bytes, json_line};

/// The prune flags `forget --prune` shares.
#[derive(clap::Args, Debug, Clone)]
pub struct PruneFlags {
    /// Unused data the repository may keep after prune (as restic): a percentage of its
    /// size ("5%"), a size ("0", "500M": binary suffixes k, m, g, t) or "unlimited" (never
    /// repack, only drop packs nothing uses). Partly used packs are repacked, most unused
    /// first, until what is left is within it.
    #[arg(long, default_value = "5%", value_name = "LIMIT")]
    max_unused: String,
    /// Read at most this much for repacking: bytes, or with a suffix k, m, g, t (binary).
    #[arg(long, value_name = "SIZE")]
    max_repack_size: Option<String>,
}

impl PruneFlags {
    /// The library options these flags ask for.
    pub fn options(&self, dry_run: bool) -> anyhow::Result<PruneOptions> {
        Ok(PruneOptions {
            max_unused: parse_max_unused(&self.max_unused)?,
            max_repack_bytes: self
                .max_repack_size
                .as_deref()
                .map(parse_size)
                .transpose()
                .context("invalid --max-repack-size")?,
            dry_run,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    flags: PruneFlags,
    /// Change nothing (and take no lock); print what would be done.
    #[arg(short = 'n', long)]
    dry_run: bool,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let options = args.flags.options(args.dry_run)?;
    let repo = globals.open().await?;
    let report = repo.prune(&options).await?;
    print_report(globals, &report);
    Ok(Outcome::Success)
}

/// Prints a prune report: one `summary` JSON line with `--json`, else text (nothing with
/// `--quiet`).
pub fn print_report(globals: &Globals, report: &PruneReport) {
    if globals.json {
        json_line(&summary_json(report));
    } else if !globals.quiet {
        print!("{}", report_text(report));
    }
}

/// `{"message_type":"summary", ...every PruneReport field}`.
fn summary_json(report: &PruneReport) -> Value {
    let mut value = serde_json::to_value(report).expect("prune reports serialize");
    if let Value::Object(map) = &mut value {
        map.insert("message_type".into(), Value::from("summary"));
    }
    value
}

/// The human-readable report, in restic's order: what was found, what is (or would be)
/// removed and repacked, what was done.
fn report_text(r: &PruneReport) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    if r.dry_run {
        line("Would have made the following changes:".into());
    }
    line(format!("snapshots:        {:>10}", r.snapshots));
    line(format!("used:             {:>10} blobs", r.blobs_used));
    line(format!("unused:           {:>10} blobs", r.blobs_unused));
    line(format!(
        "total:            {:>10} packs / {}",
        r.packs_total,
        human_bytes(r.bytes_total)
    ));
    line(String::new());
    line(format!(
        "to repack:        {:>10} packs / {}",
        r.packs_repacked,
        human_bytes(r.bytes_repacked)
    ));
    line(format!(
        "to delete:        {:>10} unused packs",
        r.packs_unused
    ));
    if r.packs_unindexed > 0 {
        line(format!(
            "to delete:        {:>10} unindexed packs (left by interrupted runs)",
            r.packs_unindexed
        ));
    }
    if r.packs_protected > 0 {
        line(format!(
            "left alone:       {:>10} recent packs (a running backup may use them)",
            r.packs_protected
        ));
    }
    line(format!(
        "{:<18}{:>10}",
        if r.dry_run { "would free:" } else { "frees:" },
        human_bytes(r.bytes_removed)
    ));
    if !r.dry_run {
        line(String::new());
        if r.packs_written > 0 {
            line(format!(
                "repacked:         {:>10} new packs / {}",
                r.packs_written,
                human_bytes(r.bytes_written)
            ));
        }
        if r.index_files_removed > 0 || r.index_files_written > 0 {
            line(format!(
                "index:            {:>10} files replaced by {}",
                r.index_files_removed, r.index_files_written
            ));
        }
        line(format!(
            "deleted:          {:>10} packs / {}",
            r.packs_deleted,
            human_bytes(r.bytes_deleted)
        ));
    }
    if r.packs_restored > 0 {
        line(format!(
            "restored:         {:>10} packs a backup that ran meanwhile uses",
            r.packs_restored
        ));
    }
    if r.packs_awaiting_backups > 0 {
        line(format!(
            "awaiting backups: {:>10} packs (deleted by a later prune once running backups end)",
            r.packs_awaiting_backups
        ));
    }
    out
}

/// `--max-unused`, restic's grammar: a percentage of the repository (`5%`), a size (`0`,
/// `500M`) or `unlimited` ([`MaxUnused`]).
fn parse_max_unused(text: &str) -> anyhow::Result<MaxUnused> {
    Ok(text.parse::<MaxUnused>()?)
}

/// A size as restic writes it: a number of bytes with an optional suffix b, k, m, g or t
/// (either case; binary units: 1k = 1024).
pub fn parse_size(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => {
            let shift = match c.to_ascii_lowercase() {
                'b' => 0,
                'k' => 10,
                'm' => 20,
                'g' => 30,
                't' => 40,
                _ => bail!("invalid size {text:?}: the suffix must be one of b, k, m, g, t"),
            };
            (&text[..at], 1u64 << shift)
        }
        Some(_) => (text, 1),
        None => bail!("expected a size, got an empty string"),
    };
    let number: u64 = number
        .parse()
        .with_context(|| format!("invalid size {text:?}"))?;
    number
        .checked_mul(unit)
        .with_context(|| format!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1T").unwrap(), 1 << 40);
        assert_eq!(parse_size("7b").unwrap(), 7);
        for bad in ["", "M", "5X", "-1", "1.5G", "99999999999T"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn max_unused_takes_restics_grammar() {
        assert_eq!(parse_max_unused("5%").unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(parse_max_unused("0").unwrap(), MaxUnused::Bytes(0));
        assert_eq!(parse_max_unused("1G").unwrap(), MaxUnused::Bytes(1 << 30));
        assert_eq!(parse_max_unused("unlimited").unwrap(), MaxUnused::Unlimited);
        for bad in ["", "101%", "lots", "-1"] {
            assert!(parse_max_unused(bad).is_err(), "{bad}");
        }
    }
}
