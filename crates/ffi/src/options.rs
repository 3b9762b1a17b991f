//! The JSON options each function takes, mapped onto the library's option types. Unknown
//! fields are rejected, so a misspelt option is an error rather than silently ignored.

use cairn_repo::ops::backup::{BackupOptions, ParentSelection};
use cairn_repo::ops::check::{CheckOptions, ReadData};
use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::ops::drill::DrillOptions;
use cairn_repo::ops::forget::{ForgetOptions, GroupBy, KeepPolicy, TagSet, Within};
use cairn_repo::ops::rpo::{parse_duration, RpoOptions};
use cairn_repo::{InitOptions, KdfParams, SnapshotFilter};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::status::Failure;

/// Parses optional JSON (null or empty = all defaults).
pub(crate) fn parse<T: DeserializeOwned + Default>(
    json: Option<&str>,
    what: &str,
) -> Result<T, Failure> {
    match json.map(str::trim) {
        None | Some("") => Ok(T::default()),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Failure::invalid(format!("invalid {what} options: {e}"))),
    }
}

/// Options of `cairn_repo_init` and `cairn_repo_open`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepoJson {
    /// Backend settings (object_store keys such as `aws_endpoint`), over the environment.
    #[serde(default)]
    pub backend: std::collections::BTreeMap<String, String>,
    /// zstd level for new blobs, or null for none (init only).
    #[serde(default = "default_compression")]
    pub compression: Option<i32>,
    /// Target pack size in MiB (init only).
    pub pack_size_mib: Option<usize>,
    /// Argon2id cost of the first key (init only): memory in KiB, passes, lanes.
    pub kdf_memory_kib: Option<u32>,
    pub kdf_time_cost: Option<u32>,
    pub kdf_parallelism: Option<u32>,
    /// Key id or unique prefix to try first (open only; at most 20 key files are tried).
    pub key_hint: Option<String>,
}

fn default_compression() -> Option<i32> {
    Some(3)
}

impl RepoJson {
    pub fn init_options(&self) -> Result<InitOptions, Failure> {
        let mut options = InitOptions {
            compression: self.compression,
            ..Default::default()
        };
        if let Some(mib) = self.pack_size_mib {
            options.pack_size = mib.saturating_mul(1 << 20);
        }
        options.kdf = self.kdf()?;
        Ok(options)
    }

    pub fn kdf(&self) -> Result<KdfParams, Failure> {
        let default = KdfParams::DEFAULT;
        KdfParams::new(
            self.kdf_memory_kib.unwrap_or(default.memory_kib()),
            self.kdf_time_cost.unwrap_or(default.time_cost()),
            self.kdf_parallelism.unwrap_or(default.parallelism()),
        )
        .map_err(|e| Failure::invalid(e.to_string()))
    }

    pub fn backend(&self) -> Vec<(String, String)> {
        self.backend
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Options of the backup functions.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BackupJson {
    pub host: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub exclude_files: Vec<String>,
    #[serde(default)]
    pub exclude_caches: bool,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub one_file_system: bool,
    #[serde(default)]
    pub force: bool,
    /// A snapshot id, "latest" (default) or "none".
    pub parent: Option<String>,
    /// RFC 3339 time to record instead of now.
    pub time: Option<String>,
}

impl BackupJson {
    pub fn options(self) -> Result<BackupOptions, Failure> {
        let time = match &self.time {
            None => None,
            Some(text) => Some(
                chrono::DateTime::parse_from_rfc3339(text)
                    .map_err(|e| Failure::invalid(format!("invalid time {text:?}: {e}")))?,
            ),
        };
        Ok(BackupOptions {
            hostname: self.host,
            tags: self.tags,
            time,
            parent: match self.parent.as_deref() {
                None | Some("latest") => ParentSelection::Latest,
                Some("none") => ParentSelection::None,
                Some(id) => ParentSelection::Id(id.to_string()),
            },
            force: self.force,
            excludes: self.excludes,
            exclude_files: self.exclude_files.into_iter().map(Into::into).collect(),
            exclude_caches: self.exclude_caches,
            exclude_if_present: self.exclude_if_present,
            one_file_system: self.one_file_system,
            ..Default::default()
        })
    }
}

/// Options of `cairn_forget` (restic's `--keep-*` names without the prefix).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ForgetJson {
    #[serde(default)]
    pub ids: Vec<String>,
    pub keep_last: Option<i64>,
    pub keep_hourly: Option<i64>,
    pub keep_daily: Option<i64>,
    pub keep_weekly: Option<i64>,
    pub keep_monthly: Option<i64>,
    pub keep_yearly: Option<i64>,
    pub keep_within: Option<String>,
    pub keep_within_hourly: Option<String>,
    pub keep_within_daily: Option<String>,
    pub keep_within_weekly: Option<String>,
    pub keep_within_monthly: Option<String>,
    pub keep_within_yearly: Option<String>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
    /// "host,paths" (default), any subset of host, paths, tags, or "" for one group.
    pub group_by: Option<String>,
    #[serde(default)]
    pub allow_remove_latest: bool,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

fn within(text: &Option<String>) -> Result<Option<Within>, Failure> {
    text.as_deref()
        .map(Within::parse)
        .transpose()
        .map_err(Failure::from)
}

impl ForgetJson {
    pub fn options(self) -> Result<ForgetOptions, Failure> {
        let policy = KeepPolicy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: within(&self.keep_within)?,
            within_hourly: within(&self.keep_within_hourly)?,
            within_daily: within(&self.keep_within_daily)?,
            within_weekly: within(&self.keep_within_weekly)?,
            within_monthly: within(&self.keep_within_monthly)?,
            within_yearly: within(&self.keep_within_yearly)?,
            tags: self.keep_tags.iter().map(|t| TagSet::parse(t)).collect(),
            allow_remove_latest: self.allow_remove_latest,
            utc_offset: None,
        };
        let group_by = match self.group_by.as_deref() {
            None => GroupBy::default(),
            Some(text) => GroupBy::parse(text)?,
        };
        Ok(ForgetOptions {
            ids: self.ids,
            policy,
            group_by,
            filter: SnapshotFilter {
                hosts: self.hosts,
                tags: self.tags,
                paths: self.paths,
            },
            dry_run: self.dry_run,
        })
    }
}

/// Options of `cairn_check`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckJson {
    #[serde(default)]
    pub read_data: bool,
    /// "n/m" or "x%".
    pub read_data_subset: Option<String>,
}

impl CheckJson {
    pub fn options(self) -> Result<CheckOptions, Failure> {
        let read_data = match (self.read_data_subset, self.read_data) {
            (Some(subset), _) => ReadData::parse_subset(&subset)?,
            (None, true) => ReadData::All,
            (None, false) => ReadData::None,
        };
        Ok(CheckOptions { read_data })
    }
}

/// Options of `cairn_copy`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CopyJson {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl CopyJson {
    pub fn options(self) -> CopyOptions {
        CopyOptions {
            ids: self.ids,
            filter: SnapshotFilter {
                hosts: self.hosts,
                tags: self.tags,
                paths: self.paths,
            },
            ..Default::default()
        }
    }
}

/// Options of `cairn_drill`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DrillJson {
    /// "latest" (default), an id or a unique prefix.
    pub snapshot: Option<String>,
    pub path: Option<String>,
    #[serde(default)]
    pub command: String,
    /// A duration such as "10min".
    pub timeout: Option<String>,
    pub scratch_dir: Option<String>,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub owners: bool,
    #[serde(default)]
    pub setid: bool,
    #[serde(default)]
    pub devices: bool,
    #[serde(default)]
    pub security_xattrs: bool,
    #[serde(default)]
    pub pass_env: Vec<String>,
}

impl DrillJson {
    pub fn options(&self) -> Result<DrillOptions, Failure> {
        Ok(DrillOptions {
            path: self.path.clone(),
            command: self.command.clone(),
            timeout: self
                .timeout
                .as_deref()
                .map(|t| parse_duration(t, "timeout"))
                .transpose()?,
            scratch_parent: self.scratch_dir.clone().map(Into::into),
            // The embedding process's stderr is not ours to write to.
            command_output_to_stderr: false,
            owners: self.owners,
            setid: self.setid,
            devices: self.devices,
            security_xattrs: self.security_xattrs,
            pass_env: self.pass_env.clone(),
            ..Default::default()
        })
    }

    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            tags: self.tags.clone(),
            paths: Vec::new(),
        }
    }
}

/// Options of `cairn_rpo`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RpoJson {
    /// Required: a duration such as "26h".
    pub max_age: Option<String>,
    pub max_verified_age: Option<String>,
    /// "host,paths" by default.
    pub group_by: Option<String>,
    // Listed rather than a flattened `SnapshotFilter`: serde cannot refuse unknown names
    // across a flatten.
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub paths: Vec<String>,
}

impl RpoJson {
    pub fn options(self) -> Result<RpoOptions, Failure> {
        let max_age = self
            .max_age
            .ok_or_else(|| Failure::invalid("rpo options: max_age is required"))?;
        Ok(RpoOptions {
            max_age: parse_duration(&max_age, "max_age")?,
            max_verified_age: self
                .max_verified_age
                .as_deref()
                .map(|d| parse_duration(d, "max_verified_age"))
                .transpose()?,
            group_by: group_by(self.group_by.as_deref())?,
            filter: SnapshotFilter {
                hosts: self.hosts,
                tags: self.tags,
                paths: self.paths,
            },
            now: chrono::Utc::now(),
        })
    }
}

/// Options of `cairn_metrics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsJson {
    pub group_by: Option<String>,
    /// Also write the exposition to this file (atomically).
    pub textfile: Option<String>,
}

impl MetricsJson {
    pub fn group_by(&self) -> Result<GroupBy, Failure> {
        group_by(self.group_by.as_deref())
    }
}

fn group_by(text: Option<&str>) -> Result<GroupBy, Failure> {
    Ok(match text {
        Some(text) => GroupBy::parse(text)?,
        None => GroupBy::default(),
    })
}
