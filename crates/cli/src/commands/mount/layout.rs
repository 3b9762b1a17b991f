//! The directories above the snapshots, laid out as restic's `mount` does:
//! `snapshots/<time>`, `snapshots/latest`, `ids/<short id>`, `hosts/<host>/<time>`,
//! `tags/<tag>/<time>`. Pure: computed from the snapshot list, so it is tested without FUSE.

use std::collections::BTreeMap;

use cairn_repo::{BlobId, SnapshotEntry};

/// One snapshot as the layout shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    /// Its name under `snapshots/`, `hosts/<host>/` and `tags/<tag>/`: its time, with the
    /// short id appended when another snapshot has the same time.
    pub name: String,
    /// Its short id (its name under `ids/`).
    pub short_id: String,
    /// Its root tree.
    pub tree: BlobId,
    /// Its time, in nanoseconds since the epoch (the directory's times).
    pub time_ns: i64,
}

/// What the virtual directories hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every snapshot, by name, oldest first.
    pub snapshots: Vec<Shown>,
    /// Per host, the names of its snapshots.
    pub hosts: BTreeMap<String, Vec<String>>,
    /// Per tag, the names of its snapshots.
    pub tags: BTreeMap<String, Vec<String>>,
}

impl Layout {
    /// Lays out `entries` (in any order).
    pub fn of(entries: &[SnapshotEntry]) -> Layout {
        let mut sorted: Vec<&SnapshotEntry> = entries.iter().collect();
        sorted.sort_by(|a, b| {
            (a.snapshot.time, a.id.as_str()).cmp(&(b.snapshot.time, b.id.as_str()))
        });
        let time_name =
            |e: &SnapshotEntry| e.snapshot.time.format("%Y-%m-%dT%H:%M:%S%:z").to_string();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for entry in &sorted {
            *counts.entry(time_name(entry)).or_default() += 1;
        }
        let mut layout = Layout::default();
        for entry in sorted {
            let time = time_name(entry);
            let name = if counts[&time] > 1 {
                format!("{time}-{}", entry.id.short())
            } else {
                time
            };
            layout
                .hosts
                .entry(safe(&entry.snapshot.hostname))
                .or_default()
                .push(name.clone());
            for tag in &entry.snapshot.tags {
                layout.tags.entry(safe(tag)).or_default().push(name.clone());
            }
            layout.snapshots.push(Shown {
                name,
                short_id: entry.id.short().to_string(),
                tree: entry.snapshot.tree,
                time_ns: entry
                    .snapshot
                    .time
                    .timestamp_nanos_opt()
                    .unwrap_or_default(),
            });
        }
        layout
    }

    /// The snapshot named `name`.
    pub fn find(&self, name: &str) -> Option<&Shown> {
        self.snapshots.iter().find(|s| s.name == name)
    }
}

/// A host name or tag as a directory name: `/` and NUL (which a name cannot hold) become
/// `_`, and an empty, `.` or `..` name gets a leading `_`.
fn safe(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c == '/' || c == '\0' { '_' } else { c })
        .collect();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_repo::{Snapshot, SnapshotId};

    fn entry(id: &str, time: &str, host: &str, tags: &[&str]) -> SnapshotEntry {
        let json = serde_json::json!({
            "time": time, "tree": "01".repeat(32), "paths": ["/data"],
            "hostname": host, "username": "", "uid": 0, "gid": 0, "tags": tags,
        });
        SnapshotEntry {
            id: id.repeat(64).parse::<SnapshotId>().unwrap(),
            snapshot: Snapshot::decode(json.to_string().as_bytes(), "test").unwrap(),
        }
    }

    #[test]
    fn snapshots_are_named_by_time_grouped_by_host_and_tag() {
        let layout = Layout::of(&[
            entry("b", "2026-12-02T10:00:00+00:00", "db", &["daily"]),
            entry("a", "2026-12-01T10:00:00+00:00", "web/1", &["daily", "x"]),
            entry("c", "2026-12-02T10:00:00+00:00", "..", &[]),
        ]);
        let names: Vec<&str> = layout.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "2026-12-01T10:00:00+00:00",
                "2026-12-02T10:00:00+00:00-bbbbbbbb",
                "2026-12-02T10:00:00+00:00-cccccccc",
            ]
        );
        assert_eq!(
            layout.hosts.keys().collect::<Vec<_>>(),
            ["_..", "db", "web_1"]
        );
        assert_eq!(layout.tags["daily"].len(), 2);
        assert_eq!(layout.tags["x"], ["2026-12-01T10:00:00+00:00"]);
        assert_eq!(layout.snapshots[0].short_id, "aaaaaaaa");
        assert!(layout.find("2026-12-01T10:00:00+00:00").is_some());
    }
}
