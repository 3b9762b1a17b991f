//! Repository metrics in Prometheus text exposition, for node_exporter's textfile collector:
//! recovery points per group, the last check, sizes and counts, and the requests made to the
//! store through this repository handle (for the CLI, the metrics run itself; for a
//! long-lived handle of the C ABI or the crate, every operation since it was opened).
//!
//! Every series carries a `repository` label (the first 8 hex digits of the repository id) so
//! several repositories' files can sit in one textfile directory without clashing.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::ops::forget::GroupBy;
use crate::ops::rpo::{evaluate, RpoOptions};
use crate::records::CheckRecord;
use crate::snapshot::SnapshotFilter;
use crate::storage::Requests;
use crate::Repository;

/// One group's recovery points, as Unix timestamps.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GroupMetrics {
    /// Host (empty when not grouped by host).
    pub host: String,
    /// Paths joined by `,` (empty when not grouped by paths).
    pub paths: String,
    /// Tags joined by `,` (empty when not grouped by tags).
    pub tags: String,
    /// Snapshots in the group.
    pub snapshots: u64,
    /// Time of the newest snapshot.
    pub newest: i64,
    /// Time of the newest complete snapshot.
    pub newest_complete: Option<i64>,
    /// Time of the newest snapshot with a passing drill.
    pub newest_verified: Option<i64>,
}

/// What `metrics` reports.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metrics {
    /// First 8 hex digits of the repository id.
    pub repository: String,
    /// When gathered (Unix seconds).
    pub generated: i64,
    /// Per group.
    pub groups: Vec<GroupMetrics>,
    /// Snapshots in the repository.
    pub snapshots: u64,
    /// Bytes of every object in the repository (packs, index, snapshots, ...).
    pub stored_bytes: u64,
    /// Sum over snapshots of the bytes they back up (what restoring every one would write).
    pub logical_bytes: u64,
    /// Drill records that passed, and that failed.
    pub drills_passed: u64,
    /// Drill records that failed.
    pub drills_failed: u64,
    /// The newest check record.
    pub last_check: Option<CheckRecord>,
    /// Time of the newest check that found no damage.
    pub last_successful_check: Option<i64>,
    /// Requests made to the store through this handle so far, per file type.
    pub requests: Requests,
}

/// The counter families, by their registered names.
const COUNTER_FAMILIES: [&str; 2] = ["storage_requests", "storage_bytes"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    kind: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransferLabels {
    kind: String,
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    host: String,
    paths: String,
    tags: String,
}

fn unix(rfc3339: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|t| t.timestamp())
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Escapes a label value as the text format requires (`\\`, `\"`, `\n`). prometheus-client
/// 0.23 writes label values verbatim, and paths may hold any of these characters.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

impl Metrics {
    /// The repository-wide gauges: name, help, value (absent: not exported).
    fn repository_gauges(&self) -> Vec<(&'static str, &'static str, Option<f64>)> {
        let check = self.last_check.as_ref();
        vec![
            (
                "snapshots",
                "Snapshots in the repository",
                Some(self.snapshots as f64),
            ),
            (
                "repository_stored_bytes",
                "Bytes of every object stored in the repository",
                Some(self.stored_bytes as f64),
            ),
            (
                "repository_logical_bytes",
                "Bytes the snapshots back up, summed over snapshots",
                Some(self.logical_bytes as f64),
            ),
            (
                "drills_passed",
                "Recorded restore drills that passed",
                Some(self.drills_passed as f64),
            ),
            (
                "drills_failed",
                "Recorded restore drills that failed",
                Some(self.drills_failed as f64),
            ),
            (
                "check_last_timestamp_seconds",
                "Time of the newest recorded check",
                check.and_then(|c| unix(&c.time)).map(|t| t as f64),
            ),
            (
                "check_last_success",
                "1 if the newest recorded check found no damage, else 0",
                check.map(|c| if c.ok { 1.0 } else { 0.0 }),
            ),
            (
                "check_last_success_timestamp_seconds",
                "Time of the newest recorded check that found no damage",
                self.last_successful_check.map(|t| t as f64),
            ),
            (
                "metrics_generated_timestamp_seconds",
                "When these metrics were gathered",
                Some(self.generated as f64),
            ),
        ]
    }

    /// `cairn_storage_requests_total{kind, op}` and `cairn_storage_bytes_total{kind,
    /// direction}`: what was asked of the store, per file type.
    fn register_requests(&self, registry: &mut Registry) {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "storage_requests",
            "Requests made to the store through this repository handle, per file type and operation",
            requests.clone(),
        );
        let bytes = Family::<TransferLabels, Counter>::default();
        registry.register(
            "storage_bytes",
            "Bytes read from and written to the store through this repository handle, per file type",
            bytes.clone(),
        );
        for kind in &self.requests.kinds {
            let ops = [
                ("get", kind.get),
                ("put", kind.put),
                ("head", kind.head),
                ("list", kind.list),
                ("delete", kind.delete),
            ];
            for (op, count) in ops.into_iter().filter(|(_, count)| *count > 0) {
                let labels = RequestLabels {
                    kind: kind.kind.clone(),
                    op: op.into(),
                };
                requests.get_or_create(&labels).inc_by(count);
            }
            for (direction, count) in [("read", kind.bytes_read), ("written", kind.bytes_written)] {
                let labels = TransferLabels {
                    kind: kind.kind.clone(),
                    direction: direction.into(),
                };
                bytes.get_or_create(&labels).inc_by(count);
            }
        }
    }

    /// The metrics in Prometheus text exposition format (version 0.0.4), every family with
    /// HELP and TYPE lines.
    pub fn to_prometheus(&self) -> String {
        let labels = [(
            Cow::Borrowed("repository"),
            Cow::Owned(self.repository.clone()),
        )];
        let mut registry = Registry::with_prefix_and_labels("cairn", labels.into_iter());
        let family = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<GroupLabels, FloatGauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let gauge = |registry: &mut Registry, name: &str, help: &str, value: f64| {
            let gauge = FloatGauge::default();
            gauge.set(value);
            registry.register(name, help, gauge);
        };
        let newest = family(
            &mut registry,
            "snapshot_newest_timestamp_seconds",
            "Time of the group's newest snapshot, complete or not",
        );
        let complete = family(
            &mut registry,
            "snapshot_newest_complete_timestamp_seconds",
            "Time of the group's newest snapshot that read every source item (its recovery point)",
        );
        let verified = family(
            &mut registry,
            "snapshot_newest_verified_timestamp_seconds",
            "Time of the group's newest snapshot with a passing restore drill",
        );
        let counts = family(&mut registry, "group_snapshots", "Snapshots in the group");
        for group in &self.groups {
            let labels = GroupLabels {
                host: escape_label(&group.host),
                paths: escape_label(&group.paths),
                tags: escape_label(&group.tags),
            };
            newest.get_or_create(&labels).set(group.newest as f64);
            counts.get_or_create(&labels).set(group.snapshots as f64);
            if let Some(t) = group.newest_complete {
                complete.get_or_create(&labels).set(t as f64);
            }
            if let Some(t) = group.newest_verified {
                verified.get_or_create(&labels).set(t as f64);
            }
        }
        for (name, help, value) in self.repository_gauges() {
            if let Some(value) = value {
                gauge(&mut registry, name, help, value);
            }
        }
        self.register_requests(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode_registry(&mut text, &registry)
            .expect("writing to a String cannot fail");
        // prometheus-client names a counter family without `_total` in HELP and TYPE, as
        // OpenMetrics does; the 0.0.4 text format (node_exporter's textfile collector,
        // promtool) wants the sample's own name there.
        for family in COUNTER_FAMILIES {
            for line in ["# HELP", "# TYPE"] {
                text = text.replace(
                    &format!("{line} cairn_{family} "),
                    &format!("{line} cairn_{family}_total "),
                );
            }
        }
        text
    }
}

/// Writes `text` to `path` through a temporary file in the same directory and a rename, so
/// a collector never reads a partial file.
pub fn write_textfile(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".cairn-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| RepoError::io(dir, e))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| RepoError::io(file.path(), e))?;
    // node_exporter runs as another user: the file must be readable by it.
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644))
            .map_err(|e| RepoError::io(file.path(), e))?;
    }
    file.persist(path)
        .map_err(|e| RepoError::io(path, e.error))?;
    Ok(())
}

impl Repository {
    /// Gathers metrics (lists every object once, reads snapshots, drill and check records).
    pub async fn metrics(&self, group_by: GroupBy, now: DateTime<Utc>) -> Result<Metrics> {
        let snapshots = self.list_snapshots(&SnapshotFilter::default()).await?;
        let drills: Vec<_> = self.drills().await?.into_iter().map(|d| d.1).collect();
        let checks = self.check_records().await?;
        let mut stored_bytes = 0;
        stored_bytes += self.stored_bytes().await?;
        let rpo = evaluate(
            &snapshots,
            &drills,
            &RpoOptions {
                max_age: Duration::MAX,
                max_verified_age: None,
                group_by,
                filter: SnapshotFilter::default(),
                now,
            },
        );
        let ts = |p: &crate::ops::rpo::PointInTime| unix(&p.time);
        let mut groups = Vec::new();
        for group in &rpo.groups {
            let snapshots_in = snapshots
                .iter()
                .filter(|e| group_by.key(&e.snapshot) == group.key)
                .count() as u64;
            groups.push(GroupMetrics {
                host: group.key.hostname.clone().unwrap_or_default(),
                paths: group
                    .key
                    .paths
                    .as_ref()
                    .map(|p| p.join(","))
                    .unwrap_or_default(),
                tags: group
                    .key
                    .tags
                    .as_ref()
                    .map(|t| t.join(","))
                    .unwrap_or_default(),
                snapshots: snapshots_in,
                newest: ts(&group.newest).unwrap_or(0),
                newest_complete: group.newest_complete.as_ref().and_then(ts),
                newest_verified: group.newest_verified.as_ref().and_then(ts),
            });
        }
        Ok(Metrics {
            repository: self.config().id.chars().take(8).collect(),
            generated: now.timestamp(),
            groups,
            snapshots: snapshots.len() as u64,
            stored_bytes,
            logical_bytes: snapshots
                .iter()
                .filter_map(|e| e.snapshot.summary.as_ref())
                .map(|s| s.total_bytes_processed)
                .sum(),
            drills_passed: drills.iter().filter(|d| d.passed()).count() as u64,
            drills_failed: drills.iter().filter(|d| !d.passed()).count() as u64,
            last_successful_check: checks
                .iter()
                .rev()
                .find(|c| c.1.ok)
                .and_then(|c| unix(&c.1.time)),
            last_check: checks.last().map(|c| c.1.clone()),
            // Last, so the requests of gathering these metrics count too.
            requests: self.storage().requests(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metrics {
        Metrics {
            repository: "0123abcd".into(),
            generated: 1_764_590_400,
            groups: vec![GroupMetrics {
                host: "node-1".into(),
                paths: "/data,/var/lib/pg".into(),
                tags: String::new(),
                snapshots: 3,
                newest: 1_764_586_800,
                newest_complete: Some(1_764_583_200),
                newest_verified: None,
            }],
            snapshots: 3,
            stored_bytes: 12_345,
            logical_bytes: 99_999,
            drills_passed: 1,
            drills_failed: 2,
            last_check: Some(CheckRecord {
                time: "2026-12-01T12:00:00Z".into(),
                ok: false,
                read_data: "none".into(),
                errors: 1,
                warnings: 0,
                duration_seconds: 1.0,
                hostname: "h".into(),
            }),
            last_successful_check: None,
            requests: Requests {
                kinds: vec![crate::storage::RequestKind {
                    kind: "index".into(),
                    get: 4,
                    list: 1,
                    bytes_read: 2048,
                    ..Default::default()
                }],
            },
        }
    }

    #[test]
    fn exposition_has_labelled_series_and_omits_unknown_times() {
        let text = sample().to_prometheus();
        assert!(text.contains("# TYPE cairn_snapshot_newest_timestamp_seconds gauge"));
        assert!(text.contains(
            "cairn_snapshot_newest_timestamp_seconds{repository=\"0123abcd\",host=\"node-1\",paths=\"/data,/var/lib/pg\",tags=\"\"} 1764586800"
        ), "{text}");
        assert!(
            text.contains("cairn_check_last_success{repository=\"0123abcd\"} 0"),
            "{text}"
        );
        assert!(text.contains("cairn_repository_stored_bytes{repository=\"0123abcd\"} 12345"));
        // No verified snapshot, no successful check: no sample rather than a fake 0.
        assert!(!text.contains("cairn_snapshot_newest_verified_timestamp_seconds{"));
        assert!(!text.contains("cairn_check_last_success_timestamp_seconds{"));
        assert!(!text.contains("# EOF"));
        // What the store was asked, as counters; operations never made are left out.
        assert!(
            text.contains("# TYPE cairn_storage_requests_total counter")
                && text.contains("# HELP cairn_storage_bytes_total "),
            "{text}"
        );
        assert!(
            text.contains(
                "cairn_storage_requests_total{repository=\"0123abcd\",kind=\"index\",op=\"get\"} 4"
            ),
            "{text}"
        );
        assert!(!text.contains("op=\"put\""), "{text}");
        assert!(text.contains(
            "cairn_storage_bytes_total{repository=\"0123abcd\",kind=\"index\",direction=\"read\"} 2048"
        ), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut metrics = sample();
        metrics.groups[0].host = "a\"b\\c\nd".into();
        let text = metrics.to_prometheus();
        assert!(text.contains(r#"host="a\"b\\c\nd""#), "{text}");
    }

    #[test]
    fn textfile_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cairn.prom");
        write_textfile(&path, "a 1\n").unwrap();
        write_textfile(&path, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b 2\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
