//! Retention policies for `forget`, compatible with restic's `--keep-*` options
//! (restic `internal/data/snapshot_policy.go`, doc/060_forget.rst).
//!
//! Snapshots are split into groups ([`GroupBy`]); the policy is applied to each group on
//! its own, newest snapshot first. A snapshot is kept if any rule keeps it, and every
//! rule that does is listed as a reason, with restic's reason texts.
//!
//! Where cairn differs from restic, on purpose:
//! - Calendar buckets (hour, day, ISO week, month, year) are computed in one fixed
//!   offset for every snapshot ([`KeepPolicy::utc_offset`], UTC by default); restic uses
//!   each snapshot's own recorded zone, so one restic run can mix zones.
//! - Durations are measured back from the newest snapshot of the group, also when it is
//!   dated in the future; restic measures from the newest snapshot not after "now",
//!   which would make [`apply`] depend on the clock.
//! - Month arithmetic clamps to the end of the month (chrono `checked_sub_months`:
//!   2024-02-29 minus 1y is 2023-02-28), where Go's `AddDate` overflows into the next
//!   month (2023-03-01). cairn's cutoff is at most three days earlier, so it keeps more.
//! - The newest snapshot of a group is kept ("latest snapshot") unless
//!   [`KeepPolicy::allow_remove_latest`]; restic only refuses when a group would lose all.
//! - A duration naming the same unit twice ("1d2d") is rejected; restic keeps the last.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Days, FixedOffset, Months, Offset, TimeDelta, Timelike, Utc};
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::snapshot::{Snapshot, SnapshotEntry};

/// A calendar duration in restic's `1y2m3d4h` syntax (each unit optional).
///
/// It is calendar arithmetic, not a fixed number of seconds: see [`Within::cutoff`].
/// An all-zero `Within` means the rule is unused, as in restic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Within {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl Within {
    /// Parses `[Ny][Nm][Nd][Nh]` with at least one part, surrounding blanks ignored.
    ///
    /// Units may come in any order (restic accepts "1d1y"), each at most once. Errors
    /// with [`RepoError::InvalidInput`] naming the text for an empty text, a missing
    /// number or unit, an unknown unit, a sign, a repeated unit or a number over `u32`.
    pub fn parse(text: &str) -> Result<Within> {
        let bad = |why: &str| {
            RepoError::InvalidInput(format!(
                "invalid duration {text:?}: {why} (expected e.g. 7d, 36h or 1y2m3d4h)"
            ))
        };
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(bad("it is empty"));
        }
        let mut within = Within::default();
        let mut seen = [false; 4];
        while !rest.is_empty() {
            if rest.starts_with(['-', '+']) {
                return Err(bad("durations cannot have a sign"));
            }
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(bad("a unit must follow a number"));
            }
            let number: u32 = rest[..digits]
                .parse()
                .map_err(|_| bad("the number is too large"))?;
            let unit = &rest[digits..];
            // Months are restic's `m`, or `mo` as in cairn's other durations (where a bare
            // `m` is refused as ambiguous); `min` is minutes there and has no place here.
            let (slot, index, unit_len) = if unit.starts_with("min") {
                return Err(bad(
                    "keep-within counts whole hours; minutes (min) are not a unit here",
                ));
            } else if unit.starts_with("mo") {
                (&mut within.months, 1, 2)
            } else {
                match unit.chars().next() {
                    Some('y') => (&mut within.years, 0, 1),
                    Some('m') => (&mut within.months, 1, 1),
                    Some('d') => (&mut within.days, 2, 1),
                    Some('h') => (&mut within.hours, 3, 1),
                    Some(_) => return Err(bad("units are y, m (or mo), d and h")),
                    None => return Err(bad("the last number has no unit")),
                }
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(bad("a unit is given twice"));
            }
            *slot = number;
            // Units are ASCII.
            rest = &rest[digits + unit_len..];
        }
        Ok(within)
    }

    /// True when every part is zero; such a rule is unused.
    pub fn is_zero(&self) -> bool {
        *self == Within::default()
    }

    /// `from` minus this duration: years and months first (clamped to the month's end),
    /// then days, then hours, in `from`'s offset. `None` when the result would be
    /// before the earliest representable time, i.e. there is no lower bound.
    pub fn cutoff(&self, from: DateTime<FixedOffset>) -> Option<DateTime<FixedOffset>> {
        let months = self.years.checked_mul(12)?.checked_add(self.months)?;
        from.checked_sub_months(Months::new(months))?
            .checked_sub_days(Days::new(u64::from(self.days)))?
            .checked_sub_signed(TimeDelta::try_hours(i64::from(self.hours))?)
    }
}

impl fmt::Display for Within {
    /// Canonical text, units in y-m-d-h order, zero parts left out ("0h" when all are).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

impl FromStr for Within {
    type Err = RepoError;

    /// Same as [`Within::parse`].
    fn from_str(text: &str) -> Result<Within> {
        Within::parse(text)
    }
}

/// Tags a snapshot must all have (restic's `--keep-tag a,b`).
///
/// The empty set matches only snapshots without tags, like restic's `--keep-tag ''`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TagSet(pub Vec<String>);

impl TagSet {
    /// Splits on commas, trimming blanks and dropping empty items; never fails.
    pub fn parse(text: &str) -> TagSet {
        TagSet(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    /// True if `snapshot` has every tag of the set (or has no tags, for the empty set).
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        if self.0.is_empty() {
            snapshot.tags.is_empty()
        } else {
            snapshot.has_tags(&self.0)
        }
    }
}

impl fmt::Display for TagSet {
    /// `[a, b]`, as restic prints a tag list.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.0.join(", "))
    }
}

/// Which snapshots `forget` keeps. Rules are ORed: a snapshot stays if any rule keeps it.
///
/// Counts: `Some(n)` with n ≥ 1 keeps n, `Some(-1)` is unlimited, `None` and `Some(0)`
/// leave the rule unused; other negatives are rejected by [`apply`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeepPolicy {
    /// Keep the n newest snapshots.
    pub last: Option<i64>,
    /// Keep the newest snapshot of each of the n newest hours that have one.
    pub hourly: Option<i64>,
    /// Same per day.
    pub daily: Option<i64>,
    /// Same per ISO 8601 week (Monday to Sunday; Dec 31 may be in week 1 of next year).
    pub weekly: Option<i64>,
    /// Same per month.
    pub monthly: Option<i64>,
    /// Same per year.
    pub yearly: Option<i64>,
    /// Keep snapshots strictly newer than the group's newest minus this.
    pub within: Option<Within>,
    /// Keep the newest snapshot of every hour, among those within the duration.
    pub within_hourly: Option<Within>,
    /// Same per day.
    pub within_daily: Option<Within>,
    /// Same per ISO week.
    pub within_weekly: Option<Within>,
    /// Same per month.
    pub within_monthly: Option<Within>,
    /// Same per year.
    pub within_yearly: Option<Within>,
    /// Keep snapshots matching any one of these sets.
    pub tags: Vec<TagSet>,
    /// Let the newest snapshot of a group go when no rule keeps it.
    pub allow_remove_latest: bool,
    /// Offset in which hours, days, weeks, months and years are reckoned, and in which
    /// durations are subtracted; `None` means UTC.
    pub utc_offset: Option<FixedOffset>,
}

impl KeepPolicy {
    /// True when no rule is set (all counts unused, all durations unused, no tag sets).
    /// `allow_remove_latest` and `utc_offset` are not rules.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(n, _)| n.unwrap_or(0) == 0)
            && self
                .withins()
                .iter()
                .map(|(w, _)| w)
                .chain([&self.within])
                .all(|w| w.is_none_or(|w| w.is_zero()))
            && self.tags.is_empty()
    }

    fn counts(&self) -> [(Option<i64>, Option<Period>); 6] {
        [
            (self.last, None),
            (self.hourly, Some(Period::Hour)),
            (self.daily, Some(Period::Day)),
            (self.weekly, Some(Period::Week)),
            (self.monthly, Some(Period::Month)),
            (self.yearly, Some(Period::Year)),
        ]
    }

    fn withins(&self) -> [(Option<Within>, Period); 5] {
        [
            (self.within_hourly, Period::Hour),
            (self.within_daily, Period::Day),
            (self.within_weekly, Period::Week),
            (self.within_monthly, Period::Month),
            (self.within_yearly, Period::Year),
        ]
    }

    fn check(&self) -> Result<()> {
        for (n, period) in self.counts() {
            if let Some(n @ ..=-2) = n {
                let name = period.map_or("last", Period::adjective);
                return Err(RepoError::InvalidInput(format!(
                    "keep-{name}: {n} is not a count (use a number >= 1, or -1 for unlimited)"
                )));
            }
        }
        if self.is_empty() {
            return Err(RepoError::InvalidInput(
                "no policy was specified, no snapshots will be removed".into(),
            ));
        }
        Ok(())
    }
}

impl fmt::Display for KeepPolicy {
    /// restic's summary, e.g. "keep 7 daily, all weekly snapshots and all snapshots
    /// within 1y of the newest"; "remove" for an empty policy.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let counts: Vec<String> = self
            .counts()
            .iter()
            .filter_map(|&(n, period)| {
                let name = period.map_or("latest", Period::adjective);
                match n? {
                    -1 => Some(format!("all {name}")),
                    n if n > 0 => Some(format!("{n} {name}")),
                    _ => None,
                }
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for (w, period) in self.withins() {
            if let Some(w) = w.filter(|w| !w.is_zero()) {
                parts.push(format!("{} snapshots within {w}", period.adjective()));
            }
        }
        let mut text = parts.join(", ");
        let mut and = |extra: String| {
            if !text.is_empty() {
                text.push_str(" and ");
            }
            text.push_str(&extra);
        };
        if !self.tags.is_empty() {
            let sets: Vec<String> = self.tags.iter().map(TagSet::to_string).collect();
            and(format!("all snapshots with tags [{}]", sets.join(" ")));
        }
        if let Some(w) = self.within.filter(|w| !w.is_zero()) {
            and(format!("all snapshots within {w} of the newest"));
        }
        if text.is_empty() {
            f.write_str("remove")
        } else {
            write!(f, "keep {text}")
        }
    }
}

/// What snapshots are grouped by before the policy is applied to each group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Host name.
    pub host: bool,
    /// Set of paths (order-insensitive).
    pub paths: bool,
    /// Set of tags (order-insensitive).
    pub tags: bool,
}

impl Default for GroupBy {
    /// Host and paths, restic's default.
    fn default() -> GroupBy {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl GroupBy {
    /// Parses a comma list of `host`, `paths`, `tags` (singulars accepted); "" means one
    /// group for everything. Errors with [`RepoError::InvalidInput`] on any other word.
    pub fn parse(text: &str) -> Result<GroupBy> {
        let (mut host, mut paths, mut tags) = (false, false, false);
        for word in text.split(',').map(str::trim) {
            match word {
                "host" | "hosts" => host = true,
                "path" | "paths" => paths = true,
                "tag" | "tags" => tags = true,
                "" => {}
                _ => {
                    return Err(RepoError::InvalidInput(format!(
                        "unknown grouping option {word:?} (use host, paths and/or tags)"
                    )))
                }
            }
        }
        Ok(GroupBy { host, paths, tags })
    }

    /// The group `snapshot` belongs to: chosen fields set, paths and tags sorted.
    pub fn key(&self, snapshot: &Snapshot) -> GroupKey {
        let sorted = |items: &[String]| {
            let mut items = items.to_vec();
            items.sort();
            items
        };
        GroupKey {
            hostname: self.host.then(|| snapshot.hostname.clone()),
            paths: self.paths.then(|| sorted(&snapshot.paths)),
            tags: self.tags.then(|| sorted(&snapshot.tags)),
        }
    }
}

impl fmt::Display for GroupBy {
    /// The canonical comma list, "" for no grouping.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ];
        let chosen: Vec<&str> = words.iter().filter(|w| w.0).map(|w| w.1).collect();
        f.write_str(&chosen.join(","))
    }
}

/// Identity of a group; a field is `None` when not grouped by it. Ordered field by field.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// Host name.
    pub hostname: Option<String>,
    /// Sorted paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags.
    pub tags: Option<Vec<String>>,
}

impl fmt::Display for GroupKey {
    /// restic's group header, e.g. `host h, paths [/a], tags [t]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.hostname {
            parts.push(format!("host {host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths [{}]", paths.join(", ")));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags [{}]", tags.join(", ")));
        }
        f.write_str(&parts.join(", "))
    }
}

/// One snapshot and why it is kept (empty `reasons` for removed snapshots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The snapshot.
    pub entry: SnapshotEntry,
    /// Every rule that keeps it, in restic's order (tags, within, last, hourly … yearly,
    /// within-hourly … within-yearly), then "latest snapshot" if none did.
    pub reasons: Vec<String>,
}

/// The outcome for one group: every snapshot of the group is in exactly one list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDecision {
    /// The group.
    pub key: GroupKey,
    /// Snapshots to keep, newest first.
    pub keep: Vec<Decision>,
    /// Snapshots to remove, newest first.
    pub remove: Vec<Decision>,
}

/// Splits `snapshots` into groups and decides, per group, what `policy` keeps.
///
/// Groups come ordered by [`GroupKey`]. Within a group "newest first" orders by time, and
/// equal times by id, the larger id counting as newer (as `snapshot::resolve("latest")`
/// picks), so the result does not depend on the input's order. Errors with
/// [`RepoError::InvalidInput`] if the policy is empty (restic refuses to forget then) or
/// has a count below -1. No snapshots gives no groups.
pub fn apply(
    snapshots: &[SnapshotEntry],
    policy: &KeepPolicy,
    group_by: &GroupBy,
) -> Result<Vec<GroupDecision>> {
    policy.check()?;
    let mut groups: BTreeMap<GroupKey, Vec<&SnapshotEntry>> = BTreeMap::new();
    for entry in snapshots {
        groups
            .entry(group_by.key(&entry.snapshot))
            .or_default()
            .push(entry);
    }
    let zone = policy.utc_offset.unwrap_or_else(|| Utc.fix());
    Ok(groups
        .into_iter()
        .map(|(key, mut group)| {
            group.sort_by(|a, b| (b.snapshot.time, &b.id).cmp(&(a.snapshot.time, &a.id)));
            decide(key, &group, policy, zone)
        })
        .collect())
}

/// A calendar bucket, as restic's `ymdh`, `ymd`, `yw`, `ym` and `y`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    /// A number equal for two times exactly when they fall in the same bucket, in the
    /// offset `time` carries (callers convert to the policy's offset first).
    fn key(self, time: &DateTime<FixedOffset>) -> i64 {
        let ymd = i64::from(time.year()) * 10_000 + i64::from(time.month() * 100 + time.day());
        match self {
            Period::Hour => ymd * 100 + i64::from(time.hour()),
            Period::Day => ymd,
            // ISO week-numbering year, which differs from the calendar year around Jan 1.
            Period::Week => {
                let week = time.iso_week();
                i64::from(week.year()) * 100 + i64::from(week.week())
            }
            Period::Month => i64::from(time.year()) * 100 + i64::from(time.month()),
            Period::Year => i64::from(time.year()),
        }
    }

    fn adjective(self) -> &'static str {
        match self {
            Period::Hour => "hourly",
            Period::Day => "daily",
            Period::Week => "weekly",
            Period::Month => "monthly",
            Period::Year => "yearly",
        }
    }
}

/// How far a bucket rule reaches.
enum Limit {
    /// Snapshots still to keep; -1 is unlimited, 0 means the rule has run out.
    Count(i64),
    /// Only snapshots strictly after `cutoff` (`None`: no lower bound).
    Since {
        cutoff: Option<DateTime<FixedOffset>>,
        span: Within,
    },
}

/// A rule's state while walking a group newest to oldest.
struct BucketRule {
    /// `None` for keep-last, whose every snapshot is a bucket of its own.
    period: Option<Period>,
    limit: Limit,
    /// Bucket of the snapshot this rule last kept.
    last: Option<i64>,
}

impl BucketRule {
    /// restic's test: keep when the bucket differs from the one last kept, or, while the
    /// rule has not run out, when this is the oldest snapshot (so the history reaches as
    /// far back as it can). The second case is reported as "oldest …".
    fn visit(&mut self, local: &DateTime<FixedOffset>, oldest: bool) -> Option<String> {
        let bucket = self.period.map(|p| p.key(local));
        let fresh = bucket.is_none() || bucket != self.last;
        if !(fresh || oldest) {
            return None;
        }
        let tail = match &mut self.limit {
            Limit::Count(0) => return None,
            Limit::Count(n) => {
                if *n > 0 {
                    *n -= 1;
                }
                "snapshot".to_string()
            }
            Limit::Since { cutoff, span } => {
                if !after(local, *cutoff) {
                    return None;
                }
                format!("within {span}")
            }
        };
        self.last = bucket;
        let prefix = if fresh { "" } else { "oldest " };
        Some(match self.period {
            None => "last snapshot".to_string(),
            Some(p) => format!("{prefix}{} {tail}", p.adjective()),
        })
    }
}

/// restic's `cur.Time.After(t)`: strictly later; no cutoff means everything is.
fn after(time: &DateTime<FixedOffset>, cutoff: Option<DateTime<FixedOffset>>) -> bool {
    cutoff.is_none_or(|c| *time > c)
}

/// Applies `policy` to one group sorted newest first (non-empty).
fn decide(
    key: GroupKey,
    group: &[&SnapshotEntry],
    policy: &KeepPolicy,
    zone: FixedOffset,
) -> GroupDecision {
    let newest = group.first().map(|e| e.snapshot.time.with_timezone(&zone));
    // Durations are subtracted in the policy's offset so month ends agree with buckets.
    let cutoff = |w: Within| newest.and_then(|t| w.cutoff(t));
    let within = policy.within.filter(|w| !w.is_zero());
    let mut rules: Vec<BucketRule> = policy
        .counts()
        .into_iter()
        .filter_map(|(n, period)| {
            let n = n.filter(|&n| n != 0)?;
            Some(BucketRule {
                period,
                limit: Limit::Count(n),
                last: None,
            })
        })
        .collect();
    rules.extend(policy.withins().into_iter().filter_map(|(w, period)| {
        let w = w.filter(|w| !w.is_zero())?;
        Some(BucketRule {
            period: Some(period),
            limit: Limit::Since {
                cutoff: cutoff(w),
                span: w,
            },
            last: None,
        })
    }));

    let mut out = GroupDecision {
        key,
        keep: Vec::new(),
        remove: Vec::new(),
    };
    for (nr, entry) in group.iter().enumerate() {
        let local = entry.snapshot.time.with_timezone(&zone);
        let oldest = nr + 1 == group.len();
        let mut reasons: Vec<String> = policy
            .tags
            .iter()
            .filter(|set| set.matches(&entry.snapshot))
            .map(|set| format!("has tags {set}"))
            .collect();
        if let Some(w) = within {
            if after(&local, cutoff(w)) {
                reasons.push(format!("within {w}"));
            }
        }
        // Every rule sees every snapshot: their states are independent.
        reasons.extend(rules.iter_mut().filter_map(|r| r.visit(&local, oldest)));
        if nr == 0 && reasons.is_empty() && !policy.allow_remove_latest {
            reasons.push("latest snapshot".to_string());
        }
        let decision = Decision {
            entry: (*entry).clone(),
            reasons,
        };
        if decision.reasons.is_empty() {
            out.remove.push(decision);
        } else {
            out.keep.push(decision);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::SnapshotId;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// "2024-01-02" or "2024-01-02T10" or "2024-01-02T10:29" as UTC; full RFC 3339 as is.
    fn date(short: &str) -> DateTime<FixedOffset> {
        let full = match short.len() {
            10 => format!("{short}T00:00:00Z"),
            13 => format!("{short}:00:00Z"),
            16 => format!("{short}:00Z"),
            _ => short.to_string(),
        };
        DateTime::parse_from_rfc3339(&full).expect("valid date")
    }

    fn snap(id: &str, time: &str, host: &str, tags: &[&str]) -> SnapshotEntry {
        // Built from JSON so the tests need nothing from the crate but crate::snapshot.
        let json = serde_json::json!({
            "time": date(time), "tree": "00".repeat(32), "paths": ["/b", "/a"],
            "hostname": host, "tags": tags,
        });
        let snapshot = serde_json::from_value(json).expect("valid fixture");
        SnapshotEntry {
            id: SnapshotId::for_test(id),
            snapshot,
        }
    }

    /// Untagged snapshots on one host, each named by its time.
    fn times(times: &[&str]) -> Vec<SnapshotEntry> {
        times.iter().map(|t| snap(t, t, "h", &[])).collect()
    }

    fn with(set: impl FnOnce(&mut KeepPolicy)) -> KeepPolicy {
        let mut policy = KeepPolicy::default();
        set(&mut policy);
        policy
    }

    fn within(text: &str) -> Option<Within> {
        Some(Within::parse(text).expect("valid duration"))
    }

    fn run(snapshots: &[SnapshotEntry], policy: &KeepPolicy) -> Vec<GroupDecision> {
        apply(snapshots, policy, &GroupBy::default()).expect("valid policy")
    }

    /// Kept ids of all groups, each group newest first.
    fn kept(snapshots: &[SnapshotEntry], policy: &KeepPolicy) -> Vec<String> {
        let groups = run(snapshots, policy);
        groups
            .iter()
            .flat_map(|g| &g.keep)
            .map(|d| d.entry.id.test_label())
            .collect()
    }

    fn reasons(groups: &[GroupDecision], id: &str) -> Vec<String> {
        let mut all = groups.iter().flat_map(|g| g.keep.iter().chain(&g.remove));
        all.find(|d| d.entry.id.test_label() == id)
            .map(|d| d.reasons.clone())
            .unwrap_or_default()
    }

    #[test]
    fn iso_weeks_across_year_ends() {
        let week = |t: &str| Period::Week.key(&date(t));
        assert_eq!(
            [week("2020-12-31"), week("2021-01-03T23:59")],
            [202053, 202053]
        );
        assert_eq!([week("2021-01-04"), week("2024-12-30")], [202101, 202501]);
        assert_eq!(week("2024-12-29T23:59"), 202452);
        assert_eq!(Period::Hour.key(&date("2024-02-29T07:30")), 2024022907);

        // Dec 31 and Jan 3 share 2020-W53: only the newer one is that week's.
        let snaps = times(&["2020-12-27", "2020-12-31", "2021-01-03", "2021-01-04"]);
        let weekly = |n| with(|p| p.weekly = Some(n));
        assert_eq!(
            kept(&snaps, &weekly(-1)),
            ["2021-01-04", "2021-01-03", "2020-12-27"]
        );
        let snaps = times(&["2024-12-22", "2024-12-29", "2024-12-30", "2025-01-05"]);
        assert_eq!(kept(&snaps, &weekly(2)), ["2025-01-05", "2024-12-29"]);
    }

    #[test]
    fn month_ends_and_leap_days() {
        let snaps = times(&[
            "2025-01-15",
            "2025-01-31T23",
            "2025-02-01T00:30",
            "2025-02-01T10",
        ]);
        let mut monthly = with(|p| p.monthly = Some(2));
        assert_eq!(kept(&snaps, &monthly), ["2025-02-01T10", "2025-01-31T23"]);
        // At +02:00, Jan 31 23:00Z is already Feb 1: January's newest is Jan 15.
        monthly.utc_offset = FixedOffset::east_opt(2 * 3600);
        assert_eq!(kept(&snaps, &monthly), ["2025-02-01T10", "2025-01-15"]);

        let snaps = times(&["2024-02-28", "2024-02-29", "2024-03-01"]);
        let daily = with(|p| p.daily = Some(3));
        assert_eq!(
            kept(&snaps, &daily),
            ["2024-03-01", "2024-02-29", "2024-02-28"]
        );
    }

    #[test]
    fn within_is_calendar_arithmetic() {
        let cut = |d: &str, from: &str| within(d).and_then(|w| w.cutoff(date(from)));
        assert_eq!(cut("1y", "2025-02-28"), Some(date("2024-02-28")));
        // Clamped to the month's end (Go's AddDate would give 2023-03-01).
        assert_eq!(cut("1y", "2024-02-29"), Some(date("2023-02-28")));
        assert_eq!(cut("1m", "2025-03-31"), Some(date("2025-02-28")));
        // Months before days: Mar 31 - 1m = Feb 29, then - 1d.
        assert_eq!(cut("1m1d", "2024-03-31"), Some(date("2024-02-28")));
        assert_eq!(cut("36h", "2024-03-01T06"), Some(date("2024-02-28T18")));
        // In the offset of `from`: 1m before Mar 1 01:00 at +02:00 is Feb 1 01:00 there.
        assert_eq!(
            cut("1m", "2025-03-01T01:00:00+02:00"),
            Some(date("2025-01-31T23"))
        );
        // Far past the representable range: no lower bound, and no panic.
        assert_eq!(cut("4294967295y", "2024-01-01"), None);

        // Strictly after the cutoff, as restic: the snapshot exactly 1y older goes.
        let year = with(|p| p.within = within("1y"));
        let snaps = times(&["2025-02-28", "2024-02-29", "2024-02-28", "2024-02-27T23"]);
        assert_eq!(kept(&snaps, &year), ["2025-02-28", "2024-02-29"]);
        assert_eq!(reasons(&run(&snaps, &year), "2024-02-29"), ["within 1y"]);
        let leap = [
            "2024-02-29",
            "2023-03-01",
            "2023-02-28T00:00:01Z",
            "2023-02-28",
        ];
        assert_eq!(kept(&times(&leap), &year), leap[..3]);
    }

    #[test]
    fn buckets_are_reckoned_in_the_policy_offset() {
        // Different UTC days, but both are June 2 at +05:00.
        let snaps = times(&["2024-05-30", "2024-06-01T20", "2024-06-02T02"]);
        let mut daily = with(|p| p.daily = Some(-1));
        assert_eq!(kept(&snaps, &daily).len(), 3);
        daily.utc_offset = FixedOffset::east_opt(5 * 3600);
        assert_eq!(kept(&snaps, &daily), ["2024-06-02T02", "2024-05-30"]);

        // Recorded late on June 1 at -08:00, which is June 2 in UTC.
        let late = "2024-06-01T22:00:00-08:00";
        let snaps = times(&["2024-05-01", "2024-06-01T12", "2024-06-02T01", late]);
        daily.utc_offset = None;
        assert_eq!(kept(&snaps, &daily), [late, "2024-06-01T12", "2024-05-01"]);
        daily.utc_offset = FixedOffset::west_opt(8 * 3600);
        assert_eq!(kept(&snaps, &daily), [late, "2024-05-01"]);

        // 10:29 and 10:31 UTC are 15:59 and 16:01 at +05:30.
        let snaps = times(&["2024-01-10T08", "2024-01-10T10:29", "2024-01-10T10:31"]);
        let mut hourly = with(|p| p.hourly = Some(-1));
        assert_eq!(kept(&snaps, &hourly), ["2024-01-10T10:31", "2024-01-10T08"]);
        hourly.utc_offset = FixedOffset::east_opt(5 * 3600 + 1800);
        assert_eq!(kept(&snaps, &hourly).len(), 3);
    }

    #[test]
    fn keep_last_breaks_ties_by_id_and_ignores_input_order() {
        let t = "2024-01-01";
        let mut snaps = vec![snap("b", t, "h", &[]), snap("d", "2023-12-31", "h", &[])];
        snaps.extend([snap("c", t, "h", &[]), snap("a", t, "h", &[])]);
        let last = with(|p| p.last = Some(2));
        let groups = run(&snaps, &last);
        let ids = |ds: &[Decision]| {
            ds.iter()
                .map(|d| d.entry.id.test_label())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (ids(&groups[0].keep), ids(&groups[0].remove)),
            (vec!["c".into(), "b".into()], vec!["a".into(), "d".into()])
        );
        assert_eq!(reasons(&groups, "c"), ["last snapshot"]);
        snaps.reverse();
        assert_eq!(run(&snaps, &last), groups);
    }

    #[test]
    fn unlimited_counts_and_the_oldest_snapshot() {
        let snaps = times(&[
            "2024-01-01T08",
            "2024-01-01T20",
            "2024-01-02T08",
            "2024-01-02T20",
        ]);
        let daily = |n| with(|p| p.daily = Some(n));
        // Counts left after the last day: the oldest snapshot is kept too.
        for n in [-1, 3, 4] {
            let groups = run(&snaps, &daily(n));
            assert_eq!(
                kept(&snaps, &daily(n)),
                ["2024-01-02T20", "2024-01-01T20", "2024-01-01T08"]
            );
            assert_eq!(reasons(&groups, "2024-01-01T08"), ["oldest daily snapshot"]);
            assert_eq!(reasons(&groups, "2024-01-01T20"), ["daily snapshot"]);
        }
        // Used up exactly on the last day: nothing extra.
        assert_eq!(kept(&snaps, &daily(2)), ["2024-01-02T20", "2024-01-01T20"]);
        assert_eq!(kept(&snaps, &daily(1)), ["2024-01-02T20"]);
        assert_eq!(kept(&snaps, &with(|p| p.last = Some(-1))).len(), 4);
        let recent = with(|p| p.within_daily = within("30d"));
        let oldest = reasons(&run(&snaps, &recent), "2024-01-01T08");
        assert_eq!(oldest, ["oldest daily within 30d"]);
    }

    /// The worked example of restic's doc/060_forget.rst.
    #[test]
    fn restic_documentation_example() {
        let snaps: Vec<_> = [
            "04-21T11", "04-22T11", "04-23T11", "04-24T11", "04-25T11", "04-25T23", "04-28T11",
            "04-29T11", "05-01T11", "05-02T11", "05-02T23",
        ]
        .iter()
        .map(|t| snap(t, &format!("2025-{t}"), "mopped", &[]))
        .collect();
        let ids = ["05-02T23", "05-01T11", "04-29T11", "04-28T11"];
        let daily = with(|p| p.daily = Some(5));
        assert_eq!(kept(&snaps, &daily), [&ids[..], &["04-25T23"]].concat());
        let within_daily = with(|p| p.within_daily = within("7d"));
        let groups = run(&snaps, &within_daily);
        assert_eq!(kept(&snaps, &within_daily), ids);
        assert_eq!(reasons(&groups, "04-28T11"), ["daily within 7d"]);
        assert_eq!(groups[0].remove.len(), 7);
    }

    #[test]
    fn keep_tag_latest_and_several_reasons() {
        let snaps = [
            snap("plain", "2024-01-01", "h", &[]),
            snap("ab", "2024-01-02", "h", &["b", "a", "c"]),
            snap("a", "2024-01-03", "h", &["a"]),
            snap("new", "2024-01-04", "h", &["x"]),
        ];
        assert_eq!(
            TagSet::parse(" a , b ,"),
            TagSet(vec!["a".into(), "b".into()])
        );
        let mut policy = with(|p| p.tags = vec![TagSet::parse("a,b")]);
        // The newest is kept although no rule keeps it ...
        assert_eq!(kept(&snaps, &policy), ["new", "ab"]);
        assert_eq!(reasons(&run(&snaps, &policy), "new"), ["latest snapshot"]);
        assert_eq!(reasons(&run(&snaps, &policy), "ab"), ["has tags [a, b]"]);
        // ... unless allowed to go, and then it is removed with no reason.
        policy.allow_remove_latest = true;
        assert_eq!(kept(&snaps, &policy), ["ab"]);
        assert_eq!(
            run(&snaps, &policy)[0].remove[0].entry.id.test_label(),
            "new"
        );
        // Sets are ORed; the empty set stands for "untagged".
        policy.tags.push(TagSet::parse(""));
        assert_eq!(kept(&snaps, &policy), ["ab", "plain"]);
        (policy.last, policy.daily) = (Some(1), Some(1));
        let both = reasons(&run(&snaps, &policy), "new");
        assert_eq!(both, ["last snapshot", "daily snapshot"]);
    }

    #[test]
    fn grouping() {
        let mut snaps = [
            snap("h1old", "2024-01-01", "h1", &["t", "u"]),
            snap("h1new", "2024-01-02", "h1", &["u", "t"]),
            snap("h2", "2024-01-01T12", "h2", &["t"]),
        ];
        snaps[1].snapshot.paths.reverse();
        let last = with(|p| p.last = Some(1));
        let groups = run(&snaps, &last);
        let key = GroupKey {
            hostname: Some("h1".into()),
            paths: Some(vec!["/a".into(), "/b".into()]),
            tags: None,
        };
        assert_eq!((groups.len(), &groups[0].key), (2, &key));
        assert_eq!(key.to_string(), "host h1, paths [/a, /b]");
        assert_eq!(kept(&snaps, &last), ["h1new", "h2"]);

        let by = |text: &str| GroupBy::parse(text).expect("valid");
        let groups = apply(&snaps, &last, &by("")).expect("valid");
        assert_eq!((groups.len(), &groups[0].key), (1, &GroupKey::default()));
        let groups = apply(&snaps, &last, &by("tags")).expect("valid");
        let keys: Vec<_> = groups.iter().map(|g| g.key.tags.clone()).collect();
        assert_eq!(
            keys,
            [Some(vec!["t".into()]), Some(vec!["t".into(), "u".into()])]
        );
        assert_eq!(groups[1].keep.len() + groups[1].remove.len(), 2);
        let json = serde_json::to_string(&groups[0].key).expect("serializes");
        assert_eq!(json, r#"{"hostname":null,"paths":null,"tags":["t"]}"#);

        assert_eq!(by("host,paths"), GroupBy::default());
        assert_eq!(by("tag, path").to_string(), "paths,tags");
        let err = GroupBy::parse("host,bogus").expect_err("unknown word");
        assert!(err.to_string().contains("\"bogus\""), "{err}");
    }

    #[test]
    fn empty_or_invalid_policy_is_an_error() {
        let empty = with(|p| {
            (p.last, p.within, p.within_daily) = (Some(0), within("0d"), within("0h"));
            (p.allow_remove_latest, p.utc_offset) = (true, FixedOffset::east_opt(3600));
        });
        assert!(empty.is_empty());
        for policy in [KeepPolicy::default(), empty] {
            let err = apply(&times(&["2024-01-01"]), &policy, &GroupBy::default());
            let err = err.expect_err("empty");
            assert!(matches!(err, RepoError::InvalidInput(_)));
            assert_eq!(
                err.to_string(),
                "no policy was specified, no snapshots will be removed"
            );
        }
        assert!(!with(|p| p.within = within("1h")).is_empty());
        let err = apply(&[], &with(|p| p.weekly = Some(-2)), &GroupBy::default());
        assert!(err
            .expect_err("negative")
            .to_string()
            .starts_with("keep-weekly: -2"));
        let untagged = with(|p| p.tags = vec![TagSet::default()]);
        assert_eq!(
            apply(&[], &untagged, &GroupBy::default()).expect("valid"),
            []
        );
    }

    #[test]
    fn within_parsing() {
        let parts = |t: &str| {
            Within::parse(t)
                .map(|w| [w.years, w.months, w.days, w.hours])
                .ok()
        };
        assert_eq!(
            [parts("7d"), parts("2y")],
            [Some([0, 0, 7, 0]), Some([2, 0, 0, 0])]
        );
        assert_eq!(
            [parts("1m15d"), parts("36h")],
            [Some([0, 1, 15, 0]), Some([0, 0, 0, 36])]
        );
        assert_eq!(parts(" 1y2m3d4h "), Some([1, 2, 3, 4]));
        // `mo` is months too, as in cairn's other durations; minutes are no unit here.
        assert_eq!(parts("1y2mo3d"), Some([1, 2, 3, 0]));
        assert!(Within::parse("2m2mo").is_err(), "months given twice");
        assert!(Within::parse("30min")
            .unwrap_err()
            .to_string()
            .contains("minutes"));
        // restic accepts any unit order; Display gives the canonical text back.
        for (text, canonical) in [("1d1y", "1y1d"), ("1y2m3d4h", "1y2m3d4h"), ("0d", "0h")] {
            let w: Within = text.parse().expect("valid");
            assert_eq!(w.to_string(), canonical);
            assert_eq!(Within::parse(&w.to_string()).ok(), Some(w));
        }
        for bad in [
            "",
            " ",
            "1x",
            "d",
            "-1d",
            "+1d",
            "1d2d",
            "5",
            "1d 2h",
            "99999999999d",
            "1é",
        ] {
            match Within::parse(bad) {
                Err(RepoError::InvalidInput(msg)) => assert!(msg.contains(&format!("{bad:?}"))),
                other => panic!("{bad:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn policy_summary_matches_restic() {
        let policy = with(|p| {
            (p.last, p.daily, p.within_weekly) = (Some(2), Some(-1), within("1m"));
            (p.tags, p.within) = (vec![TagSet::parse("a,b"), TagSet::parse("c")], within("1y"));
        });
        let text = "keep 2 latest, all daily snapshots, weekly snapshots within 1m and all \
                    snapshots with tags [[a, b] [c]] and all snapshots within 1y of the newest";
        assert_eq!(policy.to_string(), text);
        assert_eq!(KeepPolicy::default().to_string(), "remove");
    }

    // ---- properties -------------------------------------------------------------

    fn counts_mut(p: &mut KeepPolicy) -> [&mut Option<i64>; 6] {
        [
            &mut p.last,
            &mut p.hourly,
            &mut p.daily,
            &mut p.weekly,
            &mut p.monthly,
            &mut p.yearly,
        ]
    }

    fn withins_mut(p: &mut KeepPolicy) -> [&mut Option<Within>; 6] {
        let KeepPolicy {
            within,
            within_hourly: h,
            within_daily: d,
            ..
        } = p;
        let (w, m, y) = (
            &mut p.within_weekly,
            &mut p.within_monthly,
            &mut p.within_yearly,
        );
        [within, h, d, w, m, y]
    }

    fn arb_snapshots() -> impl Strategy<Value = Vec<SnapshotEntry>> {
        // Hours over ~4 years from 2021, coarse enough that equal times happen.
        let zones = prop::sample::select(vec![-8 * 3600, 0, 5 * 3600 + 1800]);
        let one = (0i64..35_000, 0i64..60, 0..2usize, 0..4usize, zones);
        prop::collection::vec(one, 0..40).prop_map(|items| {
            let entry = |(i, (hours, minutes, host, tags, zone)): (usize, _)| {
                let secs = 1_609_459_200 + hours * 3600 + minutes * 60 * (hours % 2);
                let zone = FixedOffset::east_opt(zone)?;
                let time = DateTime::from_timestamp(secs, 0)?.with_timezone(&zone);
                let tags: &[&str] = [&[][..], &["a"], &["b"], &["a", "b"]][tags];
                Some(snap(
                    &format!("{i:02}"),
                    &time.to_rfc3339(),
                    ["h1", "h2"][host],
                    tags,
                ))
            };
            items.into_iter().enumerate().filter_map(entry).collect()
        })
    }

    fn arb_tags() -> impl Strategy<Value = Vec<TagSet>> {
        let set = prop::sample::select(vec!["", "a", "b", "a,b"]).prop_map(TagSet::parse);
        prop::collection::vec(set, 0..2)
    }

    fn arb_policy() -> impl Strategy<Value = KeepPolicy> {
        let count = prop_oneof![
            Just(None),
            Just(Some(0)),
            Just(Some(-1)),
            (1i64..6).prop_map(Some)
        ];
        let within =
            (0u32..3, 0u32..14, 0u32..40, 0u32..50).prop_map(|(years, months, days, hours)| {
                Within {
                    years,
                    months,
                    days,
                    hours,
                }
            });
        let rules = (
            prop::array::uniform6(count),
            prop::array::uniform6(prop::option::of(within)),
        );
        let zone =
            prop::sample::select(vec![None, Some(0), Some(-8 * 3600), Some(5 * 3600 + 1800)]);
        (rules, arb_tags(), any::<bool>(), zone).prop_map(
            |((counts, withins), tags, allow, zone)| {
                let mut p = KeepPolicy {
                    tags,
                    allow_remove_latest: allow,
                    ..KeepPolicy::default()
                };
                p.utc_offset = zone.and_then(FixedOffset::east_opt);
                counts_mut(&mut p)
                    .into_iter()
                    .zip(counts)
                    .for_each(|(slot, n)| *slot = n);
                withins_mut(&mut p)
                    .into_iter()
                    .zip(withins)
                    .for_each(|(slot, w)| *slot = w);
                p
            },
        )
    }

    fn arb_group_by() -> impl Strategy<Value = GroupBy> {
        any::<[bool; 3]>().prop_map(|[host, paths, tags]| GroupBy { host, paths, tags })
    }

    /// A policy keeping at least as much as `base`: each rule unchanged, widened or added.
    fn widen(base: &KeepPolicy, grow: [(u8, u32); 12], more_tags: &[TagSet]) -> KeepPolicy {
        let mut p = base.clone();
        for (n, (how, by)) in counts_mut(&mut p).into_iter().zip(&grow[..6]) {
            *n = match (n.unwrap_or(0), how % 3) {
                (_, 0) => *n,
                (-1, _) | (_, 1) => Some(-1),
                (old, _) => Some(old + i64::from(*by)),
            };
        }
        for (w, (how, by)) in withins_mut(&mut p).into_iter().zip(&grow[6..]) {
            let old = w.unwrap_or_default();
            *w = Some(match how % 4 {
                0 => old,
                1 => Within {
                    years: old.years + by / 8,
                    ..old
                },
                2 => Within {
                    months: old.months + by,
                    ..old
                },
                _ => Within {
                    days: old.days + by,
                    hours: old.hours + by,
                    ..old
                },
            });
        }
        p.tags.extend_from_slice(more_tags);
        p
    }

    fn keep_ids(groups: &[GroupDecision]) -> BTreeSet<String> {
        groups
            .iter()
            .flat_map(|g| &g.keep)
            .map(|d| d.entry.id.test_label())
            .collect()
    }

    proptest! {
        #[test]
        fn partition_newest_and_order_independence(
            (snaps, shuffled) in arb_snapshots()
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
            policy in arb_policy(),
            group_by in arb_group_by(),
        ) {
            let Ok(groups) = apply(&snaps, &policy, &group_by) else {
                prop_assert!(policy.is_empty());
                return Ok(());
            };
            // (a) Every snapshot lands in exactly one list of exactly one group, its own.
            let mut seen: Vec<&str> = Vec::new();
            for g in &groups {
                let all: Vec<&Decision> = g.keep.iter().chain(&g.remove).collect();
                for d in &all {
                    prop_assert_eq!(&group_by.key(&d.entry.snapshot), &g.key);
                    seen.push(d.entry.id.as_str());
                }
                prop_assert!(g.keep.iter().all(|d| !d.reasons.is_empty()));
                prop_assert!(g.remove.iter().all(|d| d.reasons.is_empty()));
                // (c) The newest of the group stays unless allowed to go.
                let newest = all.iter().max_by_key(|d| (d.entry.snapshot.time, &d.entry.id));
                let newest = newest.ok_or_else(|| TestCaseError::fail("empty group"))?;
                let newest_kept = g.keep.iter().any(|d| d.entry.id == newest.entry.id);
                prop_assert!(newest_kept || policy.allow_remove_latest);
            }
            seen.sort_unstable();
            let mut ids: Vec<&str> = snaps.iter().map(|s| s.id.as_str()).collect();
            ids.sort_unstable();
            prop_assert_eq!(seen, ids);
            prop_assert!(groups.windows(2).all(|w| w[0].key < w[1].key));
            // (d) Input order does not matter.
            prop_assert_eq!(apply(&shuffled, &policy, &group_by).ok(), Some(groups));
        }

        #[test]
        fn widening_a_policy_never_removes_more(
            snaps in arb_snapshots(),
            base in arb_policy(),
            grow in prop::array::uniform12((any::<u8>(), 1u32..30)),
            more_tags in arb_tags(),
            group_by in arb_group_by(),
        ) {
            // (b) Adding a rule, raising a count or lengthening a duration only keeps more.
            let wider = widen(&base, grow, &more_tags);
            match apply(&snaps, &base, &group_by) {
                Ok(narrow) => {
                    let wide = apply(&snaps, &wider, &group_by);
                    let wide = wide.map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let (narrow, wide) = (keep_ids(&narrow), keep_ids(&wide));
                    prop_assert!(narrow.is_subset(&wide), "{:?} vs {:?}", narrow, wide);
                }
                Err(_) => prop_assert!(base.is_empty()),
            }
        }
    }
}
