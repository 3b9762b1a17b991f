//! Snapshots: sealed JSON objects under `snapshots/<id>`, field names as restic's
//! (docs/format.md#snapshots), so tools reading `restic snapshots --json` read cairn's.

use cairn_pack::BlobId;
use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::object::SnapshotId;

/// What a backup did (restic's snapshot summary fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// When the backup started.
    pub backup_start: String,
    /// When it ended.
    pub backup_end: String,
    /// Files not in the parent.
    pub files_new: u64,
    /// Files whose content or metadata changed since the parent.
    pub files_changed: u64,
    /// Files reused from the parent without reading.
    pub files_unmodified: u64,
    /// Directories not in the parent.
    pub dirs_new: u64,
    /// Directories whose tree changed.
    pub dirs_changed: u64,
    /// Directories whose tree is unchanged.
    pub dirs_unmodified: u64,
    /// Data blobs added to the repository.
    pub data_blobs: u64,
    /// Tree blobs added.
    pub tree_blobs: u64,
    /// Plaintext bytes added.
    pub data_added: u64,
    /// Stored (compressed, encrypted) bytes added.
    pub data_added_packed: u64,
    /// Files seen.
    pub total_files_processed: u64,
    /// Bytes of file content seen.
    pub total_bytes_processed: u64,
}

/// A snapshot: one backup run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the backup was taken (local time with offset).
    pub time: DateTime<FixedOffset>,
    /// Id of the parent snapshot, if one was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Root tree.
    pub tree: BlobId,
    /// Backed-up paths (absolute), or the stream's file name.
    pub paths: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// User name.
    #[serde(default)]
    pub username: String,
    /// User id.
    #[serde(default)]
    pub uid: u32,
    /// Group id.
    #[serde(default)]
    pub gid: u32,
    /// Exclude patterns used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excludes: Vec<String>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Program and version that wrote it.
    #[serde(default)]
    pub program_version: String,
    /// What the backup did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<SnapshotSummary>,
    /// True when some source data could not be read (the snapshot lacks those items).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub incomplete: bool,
    /// For a copy: the id of the snapshot it was copied from (restic's field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<String>,
}

impl crate::object::SealedFile for Snapshot {
    const FILE_TYPE: crate::storage::FileType = crate::storage::FileType::Snapshot;
    const KIND: crate::object::ObjectKind = crate::object::ObjectKind::Snapshot;
    type Id = crate::object::SnapshotId;

    fn encode_file(&self) -> Vec<u8> {
        self.encode()
    }

    fn decode_file(plain: &[u8], object: &str) -> Result<Self> {
        Self::decode(plain, object)
    }
}

impl Snapshot {
    /// Decodes a snapshot's plaintext.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Snapshot> {
        serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(object, format!("invalid snapshot JSON: {e}")))
    }

    /// Encodes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("snapshots serialize")
    }

    /// True if the snapshot has every tag in `tags`.
    pub fn has_tags(&self, tags: &[String]) -> bool {
        tags.iter().all(|t| self.tags.contains(t))
    }

    /// True if the snapshot's path set equals `paths` (order-insensitive).
    pub fn has_paths(&self, paths: &[String]) -> bool {
        let mut a = self.paths.clone();
        let mut b = paths.to_vec();
        a.sort();
        b.sort();
        a == b
    }
}

/// A snapshot with its id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// Its id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
}

impl SnapshotEntry {
    /// The snapshot as restic's `snapshots --json` prints it: its fields plus `id` and
    /// `short_id`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.snapshot).expect("snapshots serialize");
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("id".into(), self.id.to_string().into());
            map.insert("short_id".into(), self.short_id().into());
        }
        value
    }

    /// First 8 hex digits.
    pub fn short_id(&self) -> &str {
        self.id.short()
    }
}

/// Which snapshots to consider.
///
/// Deserializes from `{"hosts": [], "tags": [], "paths": []}` (each optional, unknown names
/// refused): the C ABI takes it as is.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotFilter {
    /// Only these hosts (any of them), if non-empty.
    pub hosts: Vec<String>,
    /// Only snapshots having all of these tags, if non-empty.
    pub tags: Vec<String>,
    /// Only snapshots whose paths include all of these, if non-empty.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// True if `snapshot` passes.
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&snapshot.hostname))
            && snapshot.has_tags(&self.tags)
            && self.paths.iter().all(|p| snapshot.paths.contains(p))
    }
}

/// Resolves `latest`, a full id or a unique prefix among `snapshots` (sorted by time).
pub fn resolve<'a>(snapshots: &'a [SnapshotEntry], spec: &str) -> Result<&'a SnapshotEntry> {
    if spec == "latest" {
        return snapshots
            .iter()
            .max_by(|a, b| a.snapshot.time.cmp(&b.snapshot.time).then(a.id.cmp(&b.id)))
            .ok_or_else(|| RepoError::InvalidInput("no snapshot matches (latest)".into()));
    }
    if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RepoError::InvalidInput(format!(
            "invalid snapshot id {spec:?}"
        )));
    }
    let spec = spec.to_ascii_lowercase();
    let found: Vec<_> = snapshots
        .iter()
        .filter(|s| s.id.as_ref().starts_with(&spec))
        .collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => Err(RepoError::InvalidInput(format!(
            "no snapshot with id {spec}"
        ))),
        _ => Err(RepoError::InvalidInput(format!(
            "snapshot id prefix {spec} is ambiguous ({} matches)",
            found.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, secs: i64) -> SnapshotEntry {
        SnapshotEntry {
            // The given hex digits, padded with zeros to a full id.
            id: format!("{id:0<64}").parse().expect("a hex prefix"),
            snapshot: Snapshot {
                time: DateTime::from_timestamp(secs, 0).unwrap().fixed_offset(),
                parent: None,
                tree: BlobId([0; 32]),
                paths: vec!["/a".into()],
                hostname: "h".into(),
                username: String::new(),
                uid: 0,
                gid: 0,
                excludes: vec![],
                tags: vec!["t".into()],
                program_version: String::new(),
                summary: None,
                incomplete: false,
                original: None,
            },
        }
    }

    #[test]
    fn resolve_latest_prefix_and_ambiguity() {
        let list = vec![entry("abc1", 10), entry("abd2", 30), entry("ffff", 20)];
        assert_eq!(resolve(&list, "latest").unwrap().id.short(), "abd20000");
        assert_eq!(resolve(&list, "ff").unwrap().id.short(), "ffff0000");
        assert!(resolve(&list, "ab")
            .unwrap_err()
            .to_string()
            .contains("ambiguous"));
        assert!(resolve(&list, "00").is_err());
        assert!(resolve(&list, "../x").is_err());
        assert!(resolve(&[], "latest").is_err());
    }

    #[test]
    fn json_uses_restic_field_names_and_round_trips() {
        let e = entry("abc", 1_700_000_000);
        let text = String::from_utf8(e.snapshot.encode()).unwrap();
        for field in [
            "\"time\"",
            "\"tree\"",
            "\"paths\"",
            "\"hostname\"",
            "\"tags\"",
        ] {
            assert!(text.contains(field), "{text}");
        }
        assert!(!text.contains("incomplete"));
        assert_eq!(Snapshot::decode(text.as_bytes(), "s").unwrap(), e.snapshot);
        assert!(Snapshot::decode(b"{}", "s").is_err());
    }
}
