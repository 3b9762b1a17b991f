//! The JSON form of the operations' option types, as the C ABI takes them (docs/ffi.md)
//! and any other embedder may: flat objects with restic's names, every field optional,
//! unknown names refused (a misspelt option is an error, never silently ignored).
//!
//! Each option type deserializes through its wire struct here (`#[serde(try_from)]`):
//! serde cannot refuse unknown names across a `#[serde(flatten)]`, and the JSON spells
//! some fields as restic does (`keep_last`, `read_data_subset`, a `parent` of
//! `"latest"`/`"none"`/an id), so the wire struct is the one place that shape is written.
//! Values that must parse (durations, times, subsets, groupings) fail deserialization with
//! the library's own message.

use serde::Deserialize;

use crate::error::RepoError;
use crate::ops::backup::{BackupOptions, ParentSelection};
use crate::ops::check::{CheckOptions, ReadData};
use crate::ops::copy::CopyOptions;
use crate::ops::forget::{ForgetOptions, GroupBy, KeepPolicy, TagSet, Within};
use crate::ops::rpo::{parse_duration, RpoOptions};
use crate::SnapshotFilter;

/// [`BackupOptions`] as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupWire {
    host: Option<String>,
    tags: Vec<String>,
    excludes: Vec<String>,
    exclude_files: Vec<String>,
    exclude_caches: bool,
    exclude_if_present: Vec<String>,
    one_file_system: bool,
    force: bool,
    /// A snapshot id, "latest" (default) or "none".
    parent: Option<String>,
    /// RFC 3339 time to record instead of now.
    time: Option<String>,
    /// Bytes the backup may hold in flight (default 512 MiB).
    memory_budget: Option<u64>,
}

impl TryFrom<BackupWire> for BackupOptions {
    type Error = RepoError;

    fn try_from(wire: BackupWire) -> Result<Self, RepoError> {
        let time = wire
            .time
            .as_deref()
            .map(|text| {
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|e| RepoError::InvalidInput(format!("invalid time {text:?}: {e}")))
            })
            .transpose()?;
        Ok(BackupOptions {
            hostname: wire.host,
            tags: wire.tags,
            time,
            parent: match wire.parent.as_deref() {
                None | Some("latest") => ParentSelection::Latest,
                Some("none") => ParentSelection::None,
                Some(id) => ParentSelection::Id(id.to_string()),
            },
            force: wire.force,
            excludes: wire.excludes,
            exclude_files: wire.exclude_files.into_iter().map(Into::into).collect(),
            exclude_caches: wire.exclude_caches,
            exclude_if_present: wire.exclude_if_present,
            one_file_system: wire.one_file_system,
            memory_budget: wire.memory_budget,
            ..Default::default()
        })
    }
}

/// [`ForgetOptions`] as JSON: restic's `--keep-*` names without the dashes' prefix.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForgetWire {
    ids: Vec<String>,
    keep_last: Option<i64>,
    keep_hourly: Option<i64>,
    keep_daily: Option<i64>,
    keep_weekly: Option<i64>,
    keep_monthly: Option<i64>,
    keep_yearly: Option<i64>,
    keep_within: Option<String>,
    keep_within_hourly: Option<String>,
    keep_within_daily: Option<String>,
    keep_within_weekly: Option<String>,
    keep_within_monthly: Option<String>,
    keep_within_yearly: Option<String>,
    keep_tags: Vec<String>,
    /// "host,paths" (default), any subset of host, paths, tags, or "" for one group.
    group_by: Option<String>,
    allow_remove_latest: bool,
    dry_run: bool,
    hosts: Vec<String>,
    tags: Vec<String>,
    paths: Vec<String>,
}

fn within(text: &Option<String>) -> Result<Option<Within>, RepoError> {
    text.as_deref().map(Within::parse).transpose()
}

fn group_by(text: Option<&str>) -> Result<GroupBy, RepoError> {
    text.map_or_else(|| Ok(GroupBy::default()), GroupBy::parse)
}

impl TryFrom<ForgetWire> for ForgetOptions {
    type Error = RepoError;

    fn try_from(wire: ForgetWire) -> Result<Self, RepoError> {
        let policy = KeepPolicy {
            last: wire.keep_last,
            hourly: wire.keep_hourly,
            daily: wire.keep_daily,
            weekly: wire.keep_weekly,
            monthly: wire.keep_monthly,
            yearly: wire.keep_yearly,
            within: within(&wire.keep_within)?,
            within_hourly: within(&wire.keep_within_hourly)?,
            within_daily: within(&wire.keep_within_daily)?,
            within_weekly: within(&wire.keep_within_weekly)?,
            within_monthly: within(&wire.keep_within_monthly)?,
            within_yearly: within(&wire.keep_within_yearly)?,
            tags: wire.keep_tags.iter().map(|t| TagSet::parse(t)).collect(),
            allow_remove_latest: wire.allow_remove_latest,
            utc_offset: None,
        };
        Ok(ForgetOptions {
            ids: wire.ids,
            policy,
            group_by: group_by(wire.group_by.as_deref())?,
            filter: SnapshotFilter {
                hosts: wire.hosts,
                tags: wire.tags,
                paths: wire.paths,
            },
            dry_run: wire.dry_run,
        })
    }
}

/// [`CheckOptions`] as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckWire {
    read_data: bool,
    /// "n/m" or "x%".
    read_data_subset: Option<String>,
}

impl TryFrom<CheckWire> for CheckOptions {
    type Error = RepoError;

    fn try_from(wire: CheckWire) -> Result<Self, RepoError> {
        let read_data = match (wire.read_data_subset, wire.read_data) {
            (Some(subset), _) => ReadData::parse_subset(&subset)?,
            (None, true) => ReadData::All,
            (None, false) => ReadData::None,
        };
        Ok(CheckOptions { read_data })
    }
}

/// [`CopyOptions`] as JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopyWire {
    ids: Vec<String>,
    hosts: Vec<String>,
    tags: Vec<String>,
    paths: Vec<String>,
}

impl From<CopyWire> for CopyOptions {
    fn from(wire: CopyWire) -> Self {
        CopyOptions {
            ids: wire.ids,
            filter: SnapshotFilter {
                hosts: wire.hosts,
                tags: wire.tags,
                paths: wire.paths,
            },
            ..Default::default()
        }
    }
}

/// [`RpoOptions`] as JSON; `max_age` is required.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RpoWire {
    /// A duration such as "26h".
    max_age: Option<String>,
    max_verified_age: Option<String>,
    /// "host,paths" by default.
    group_by: Option<String>,
    hosts: Vec<String>,
    tags: Vec<String>,
    paths: Vec<String>,
}

impl TryFrom<RpoWire> for RpoOptions {
    type Error = RepoError;

    fn try_from(wire: RpoWire) -> Result<Self, RepoError> {
        let max_age = wire
            .max_age
            .ok_or_else(|| RepoError::InvalidInput("rpo options: max_age is required".into()))?;
        Ok(RpoOptions {
            max_age: parse_duration(&max_age, "max_age")?,
            max_verified_age: wire
                .max_verified_age
                .as_deref()
                .map(|d| parse_duration(d, "max_verified_age"))
                .transpose()?,
            group_by: group_by(wire.group_by.as_deref())?,
            filter: SnapshotFilter {
                hosts: wire.hosts,
                tags: wire.tags,
                paths: wire.paths,
            },
            now: chrono::Utc::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_option_type_reads_its_json_and_refuses_unknown_names() {
        let backup: BackupOptions =
            serde_json::from_str(r#"{"host": "h", "parent": "none", "tags": ["a"]}"#).unwrap();
        assert_eq!(backup.hostname.as_deref(), Some("h"));
        assert!(matches!(backup.parent, ParentSelection::None));
        let forget: ForgetOptions =
            serde_json::from_str(r#"{"keep_last": 3, "keep_within": "1y2m", "hosts": ["x"]}"#)
                .unwrap();
        assert_eq!(forget.policy.last, Some(3));
        assert!(forget.policy.within.is_some());
        assert_eq!(forget.filter.hosts, vec!["x".to_string()]);
        let check: CheckOptions = serde_json::from_str(r#"{"read_data_subset": "1/5"}"#).unwrap();
        assert!(!matches!(check.read_data, ReadData::None | ReadData::All));
        let copy: CopyOptions = serde_json::from_str(r#"{"ids": ["latest"]}"#).unwrap();
        assert_eq!(copy.ids, vec!["latest".to_string()]);
        let rpo: RpoOptions = serde_json::from_str(r#"{"max_age": "26h"}"#).unwrap();
        assert_eq!(rpo.max_age.as_secs(), 26 * 3600);
        for bad in [
            serde_json::from_str::<BackupOptions>(r#"{"hots": "h"}"#).err(),
            serde_json::from_str::<ForgetOptions>(r#"{"keep-last": 1}"#).err(),
            serde_json::from_str::<CheckOptions>(r#"{"read_data_subset": "7/5"}"#).err(),
            serde_json::from_str::<CopyOptions>(r#"{"id": []}"#).err(),
            serde_json::from_str::<RpoOptions>(r#"{}"#).err(),
            serde_json::from_str::<RpoOptions>(r#"{"max_age": "5m"}"#).err(),
        ] {
            assert!(bad.is_some());
        }
    }
}
