//! The JSON options each function takes. Backup, forget, check, copy and rpo options are the
//! library's own JSON forms (`cairn_repo::ops::wire`); what is only the C ABI's (opening a
//! repository with backend settings, which snapshot a drill restores, the metrics textfile)
//! is here. Unknown fields are rejected, so a misspelt option is an error rather than
//! silently ignored.

use cairn_repo::ops::drill::DrillOptions;
use cairn_repo::ops::forget::GroupBy;
use cairn_repo::ops::rpo::parse_duration;
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
