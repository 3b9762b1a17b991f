//! Recovery-point status: per group of snapshots, how old the newest restorable point is,
//! and how old the newest one a drill proved restorable is.
//!
//! A snapshot counts as fresh only when it is complete (every source item was read); an
//! incomplete one is reported but never satisfies `max_age`. A snapshot counts as verified
//! when a passing drill of it is recorded in the repository.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::object::SnapshotId;
use crate::ops::forget::{GroupBy, GroupKey};
use crate::records::DrillRecord;
use crate::snapshot::{SnapshotEntry, SnapshotFilter};
use crate::Repository;

/// Parses a duration such as `26h`, `90min`, `7d`, `1w`, `2mo`, `1h 30min` (humantime's
/// syntax, plus `mo` for months). A bare `m` is refused as ambiguous: `forget --keep-within`
/// follows restic, where `m` is months, and humantime reads it as minutes, so cairn asks for
/// `min` or `mo` instead of guessing. Errors name the input.
pub fn parse_duration(text: &str, what: &str) -> Result<Duration> {
    let mut spelled = String::with_capacity(text.len() + 8);
    let mut rest = text.trim();
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic()) {
        spelled.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len() - start);
        match &rest[start..start + len] {
            "m" => {
                return Err(RepoError::InvalidInput(format!(
                    "{what}: duration {text:?} is ambiguous: write min for minutes or mo for \
                     months (forget --keep-within follows restic, where m is months)"
                )))
            }
            "mo" => spelled.push_str("months"),
            unit => spelled.push_str(unit),
        }
        rest = &rest[start + len..];
    }
    spelled.push_str(rest);
    let duration = humantime::parse_duration(&spelled).map_err(|e| {
        RepoError::InvalidInput(format!(
            "{what}: invalid duration {text:?}: {e} (expected e.g. 30min, 26h, 7d)"
        ))
    })?;
    if duration.is_zero() {
        return Err(RepoError::InvalidInput(format!(
            "{what}: duration {text:?} must be longer than zero"
        )));
    }
    Ok(duration)
}

/// What to measure. Deserializes from its JSON form ([`crate::ops::wire::RpoWire`]).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(try_from = "crate::ops::wire::RpoWire")]
pub struct RpoOptions {
    /// The newest complete snapshot of every group must be younger than this.
    pub max_age: Duration,
    /// If set, the newest snapshot with a passing drill must be younger than this.
    pub max_verified_age: Option<Duration>,
    /// How snapshots are grouped (one recovery point per group).
    pub group_by: GroupBy,
    /// Only snapshots passing this filter are considered.
    pub filter: SnapshotFilter,
    /// The time ages are measured from (normally now).
    pub now: DateTime<Utc>,
}

/// A snapshot as RPO reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointInTime {
    /// Snapshot id.
    pub id: SnapshotId,
    /// First 8 hex digits.
    pub short_id: String,
    /// When it was taken (RFC 3339).
    pub time: String,
    /// Seconds between `time` and the measurement (0 for a snapshot from the future).
    pub age_seconds: u64,
    /// False when some source data could not be read.
    pub complete: bool,
    /// When the newest passing drill of it ran, for verified points.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drilled_at: Option<String>,
}

/// One group's recovery points.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RpoGroup {
    /// Host, paths and tags of the group (those grouped by).
    #[serde(flatten)]
    pub key: GroupKey,
    /// The newest snapshot, complete or not.
    pub newest: PointInTime,
    /// The newest complete snapshot: the recovery point.
    pub newest_complete: Option<PointInTime>,
    /// The newest snapshot with a passing drill.
    pub newest_verified: Option<PointInTime>,
    /// True when the group meets every limit.
    pub ok: bool,
    /// Each limit breached, in words.
    pub breaches: Vec<String>,
}

/// RPO status of a repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RpoReport {
    /// When it was measured (RFC 3339).
    pub time: String,
    /// The freshness limit, in seconds.
    pub max_age_seconds: u64,
    /// The verified-freshness limit, in seconds.
    pub max_verified_age_seconds: Option<u64>,
    /// How groups were formed (`host,paths`, ...).
    pub group_by: String,
    /// One entry per group, ordered by key.
    pub groups: Vec<RpoGroup>,
    /// True when snapshots matched and every group meets its limits.
    pub ok: bool,
    /// Breaches not tied to a group (no snapshot matched at all).
    pub breaches: Vec<String>,
}

impl RpoReport {
    /// [`crate::Outcome::RpoBreached`] unless every group meets its limits.
    pub fn outcome(&self) -> crate::Outcome {
        if self.ok {
            crate::Outcome::Success
        } else {
            crate::Outcome::RpoBreached
        }
    }
}

fn point(entry: &SnapshotEntry, now: DateTime<Utc>, drilled_at: Option<String>) -> PointInTime {
    let age = now.signed_duration_since(entry.snapshot.time.with_timezone(&Utc));
    PointInTime {
        id: entry.id.clone(),
        short_id: entry.short_id().to_string(),
        time: entry
            .snapshot
            .time
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        age_seconds: age.num_seconds().max(0) as u64,
        complete: !entry.snapshot.incomplete,
        drilled_at,
    }
}

fn words(duration: Duration) -> String {
    humantime::format_duration(Duration::from_secs(duration.as_secs())).to_string()
}

/// Computes RPO status from snapshots and drill records (no storage access): the function
/// an embedding sidecar calls with what it already holds.
pub fn evaluate(
    snapshots: &[SnapshotEntry],
    drills: &[DrillRecord],
    options: &RpoOptions,
) -> RpoReport {
    // Newest passing drill per snapshot.
    let mut passed: HashMap<&str, &str> = HashMap::new();
    for drill in drills.iter().filter(|d| d.passed()) {
        let newest = passed.entry(drill.snapshot.as_str()).or_insert("");
        if drill.time.as_str() > *newest {
            *newest = drill.time.as_str();
        }
    }
    let mut groups: BTreeMap<GroupKey, Vec<&SnapshotEntry>> = BTreeMap::new();
    for entry in snapshots
        .iter()
        .filter(|e| options.filter.matches(&e.snapshot))
    {
        groups
            .entry(options.group_by.key(&entry.snapshot))
            .or_default()
            .push(entry);
    }
    let now = options.now;
    let mut report = RpoReport {
        time: now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        max_age_seconds: options.max_age.as_secs(),
        max_verified_age_seconds: options.max_verified_age.map(|d| d.as_secs()),
        group_by: options.group_by.to_string(),
        groups: Vec::new(),
        ok: true,
        breaches: Vec::new(),
    };
    if groups.is_empty() {
        report.ok = false;
        report
            .breaches
            .push("no snapshot matches: nothing is protected".to_string());
        return report;
    }
    for (key, mut entries) in groups {
        // Newest first; ties broken by id so the result does not depend on listing order.
        entries.sort_by(|a, b| (b.snapshot.time, &b.id).cmp(&(a.snapshot.time, &a.id)));
        let newest = point(entries[0], now, None);
        let newest_complete = entries
            .iter()
            .find(|e| !e.snapshot.incomplete)
            .map(|e| point(e, now, None));
        let newest_verified = entries.iter().find_map(|e| {
            passed
                .get(e.id.as_str())
                .map(|at| point(e, now, Some(at.to_string())))
        });
        let breaches = breaches(newest_complete.as_ref(), newest_verified.as_ref(), options);
        let ok = breaches.is_empty();
        report.ok &= ok;
        report.groups.push(RpoGroup {
            key,
            newest,
            newest_complete,
            newest_verified,
            ok,
            breaches,
        });
    }
    report
}

/// What a group's recovery points breach: the newest complete snapshot against
/// `max_age`, and (when asked) the newest verified one against `max_verified_age`.
fn breaches(
    newest_complete: Option<&PointInTime>,
    newest_verified: Option<&PointInTime>,
    options: &RpoOptions,
) -> Vec<String> {
    let mut breaches = Vec::new();
    match newest_complete {
        None => breaches.push("no complete snapshot".to_string()),
        Some(p) if p.age_seconds > options.max_age.as_secs() => breaches.push(format!(
            "newest complete snapshot {} is {} old (limit {})",
            p.short_id,
            words(Duration::from_secs(p.age_seconds)),
            words(options.max_age)
        )),
        Some(_) => {}
    }
    if let Some(limit) = options.max_verified_age {
        match newest_verified {
            None => breaches.push("no snapshot has a passing drill".to_string()),
            Some(p) if p.age_seconds > limit.as_secs() => breaches.push(format!(
                "newest verified snapshot {} is {} old (limit {})",
                p.short_id,
                words(Duration::from_secs(p.age_seconds)),
                words(limit)
            )),
            Some(_) => {}
        }
    }
    breaches
}

impl Repository {
    /// RPO status of this repository (see [`evaluate`]).
    pub async fn rpo(&self, options: &RpoOptions) -> Result<RpoReport> {
        let snapshots = self.list_snapshots(&options.filter).await?;
        let drills: Vec<DrillRecord> = self.drills().await?.into_iter().map(|d| d.1).collect();
        Ok(evaluate(&snapshots, &drills, options))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::DrillOutcome;
    use crate::Snapshot;

    fn entry(id: u8, time: &str, host: &str, incomplete: bool) -> SnapshotEntry {
        SnapshotEntry {
            id: format!("{id:02x}").repeat(32).parse().expect("a full id"),
            snapshot: Snapshot {
                time: DateTime::parse_from_rfc3339(time).unwrap(),
                parent: None,
                tree: crate::BlobId([0; 32]),
                paths: vec!["/data".into()],
                hostname: host.into(),
                username: String::new(),
                uid: 0,
                gid: 0,
                excludes: vec![],
                tags: vec![],
                program_version: String::new(),
                summary: None,
                incomplete,
                original: None,
            },
        }
    }

    fn drill(id: u8, outcome: DrillOutcome) -> DrillRecord {
        DrillRecord {
            snapshot: format!("{id:02x}").repeat(32),
            path: None,
            time: "2026-12-01T11:00:00Z".into(),
            command: "true".into(),
            outcome,
            exit_code: None,
            error: None,
            duration_seconds: 1.0,
            files_restored: 1,
            bytes_restored: 1,
            hostname: "h".into(),
        }
    }

    fn options(max_age_h: u64, verified_h: Option<u64>) -> RpoOptions {
        RpoOptions {
            max_age: Duration::from_secs(max_age_h * 3600),
            max_verified_age: verified_h.map(|h| Duration::from_secs(h * 3600)),
            group_by: GroupBy::default(),
            filter: SnapshotFilter::default(),
            now: DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn fresh_groups_pass_and_stale_ones_breach() {
        let snaps = [
            entry(1, "2026-12-01T10:00:00Z", "a", false),
            entry(2, "2026-11-30T10:00:00Z", "b", false),
        ];
        let report = evaluate(&snaps, &[], &options(6, None));
        assert!(!report.ok);
        assert_eq!(report.groups.len(), 2);
        assert!(report.groups[0].ok, "{:?}", report.groups[0]);
        assert_eq!(report.groups[0].newest.age_seconds, 7200);
        assert!(!report.groups[1].ok);
        assert!(
            report.groups[1].breaches[0].contains("1day 2h old"),
            "{:?}",
            report.groups[1]
        );
        assert!(evaluate(&snaps, &[], &options(27, None)).ok);
    }

    #[test]
    fn an_incomplete_snapshot_is_never_fresh() {
        let snaps = [
            entry(1, "2026-12-01T11:00:00Z", "a", true),
            entry(2, "2026-11-30T11:00:00Z", "a", false),
        ];
        let report = evaluate(&snaps, &[], &options(6, None));
        let group = &report.groups[0];
        assert_eq!(group.newest.id, snaps[0].id);
        assert!(!group.newest.complete);
        assert_eq!(group.newest_complete.as_ref().unwrap().id, snaps[1].id);
        assert!(!report.ok);
        let only_incomplete = evaluate(&snaps[..1], &[], &options(6, None));
        assert_eq!(only_incomplete.groups[0].breaches, ["no complete snapshot"]);
    }

    #[test]
    fn only_passing_drills_verify() {
        let snaps = [
            entry(1, "2026-12-01T11:00:00Z", "a", false),
            entry(2, "2026-11-28T11:00:00Z", "a", false),
        ];
        let drills = [
            drill(1, DrillOutcome::CommandFailed),
            drill(2, DrillOutcome::Passed),
        ];
        let report = evaluate(&snaps, &drills, &options(6, Some(24)));
        let verified = report.groups[0].newest_verified.as_ref().unwrap();
        assert_eq!(verified.id, snaps[1].id);
        assert_eq!(verified.drilled_at.as_deref(), Some("2026-12-01T11:00:00Z"));
        assert!(!report.ok);
        assert!(evaluate(&snaps, &drills, &options(6, Some(100))).ok);
        let none = evaluate(&snaps, &drills[..1], &options(6, Some(100)));
        assert_eq!(none.groups[0].breaches, ["no snapshot has a passing drill"]);
    }

    #[test]
    fn no_snapshots_is_a_breach() {
        let report = evaluate(&[], &[], &options(6, None));
        assert!(!report.ok);
        assert!(report.breaches[0].contains("no snapshot"));
    }

    #[test]
    fn durations_parse_and_bad_ones_name_the_input() {
        assert_eq!(parse_duration("26h", "x").unwrap().as_secs(), 26 * 3600);
        assert_eq!(parse_duration("1h30min", "x").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("1h 30min", "x").unwrap().as_secs(), 5400);
        assert_eq!(parse_duration("7d", "x").unwrap().as_secs(), 7 * 86400);
        // Months as forget spells them (`mo`), the same as humantime's `months`.
        assert_eq!(
            parse_duration("2mo", "x").unwrap(),
            parse_duration("2months", "x").unwrap()
        );
        // A bare `m` means months to forget (restic) and minutes to humantime: refused.
        for ambiguous in ["30m", "1h30m", "1m 2d"] {
            let err = parse_duration(ambiguous, "--max-age")
                .unwrap_err()
                .to_string();
            assert!(err.contains("ambiguous") && err.contains("min"), "{err}");
        }
        for bad in ["", "abc", "5", "0s", "-1h"] {
            let err = parse_duration(bad, "--max-age").unwrap_err().to_string();
            assert!(
                err.contains("--max-age") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
    }
}
