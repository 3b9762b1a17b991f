//! Drill and check records: what was verified about the repository, kept in it
//! (docs/format.md#drill-and-check-records).
//!
//! A record is sealed JSON named by the hash of its sealed bytes, written with the same
//! create-once, complete-or-absent put as a snapshot, so an interrupted writer leaves either
//! the whole record or nothing. RPO and metrics read them back; `forget` and `prune` drop
//! drills of snapshots that are gone, and keep only the newest check records.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::object::{CheckId, DrillId, ObjectKind, SealedFile, SnapshotId};
use crate::storage::FileType;
use crate::Repository;

/// Check records kept by `prune`: the newest ones, which metrics and runbooks read.
pub const CHECK_RECORDS_KEPT: usize = 20;

/// How a drill ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrillOutcome {
    /// Restored, verified, and the command exited 0.
    Passed,
    /// The command exited non-zero or was killed by a signal.
    CommandFailed,
    /// The command ran longer than the drill's timeout and was killed.
    TimedOut,
    /// The snapshot could not be restored and verified (damaged or missing data).
    RestoreFailed,
}

/// One restore drill (sealed JSON under `drills/<id>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// Full id of the drilled snapshot.
    pub snapshot: String,
    /// The path inside the snapshot that was restored, when not the whole snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// When the drill started (RFC 3339).
    pub time: String,
    /// The command run against the restored data (`sh -c`).
    pub command: String,
    /// How it ended.
    pub outcome: DrillOutcome,
    /// The command's exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the drill failed, when it did (a damaged object, a signal, a timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Seconds from start to end (restore, verify and command).
    pub duration_seconds: f64,
    /// Files restored.
    pub files_restored: u64,
    /// Bytes of file content restored.
    pub bytes_restored: u64,
    /// Host that ran the drill.
    pub hostname: String,
}

impl DrillRecord {
    /// True when the drill passed.
    pub fn passed(&self) -> bool {
        self.outcome == DrillOutcome::Passed
    }

    /// [`crate::Outcome::DrillFailed`] unless the drill passed.
    pub fn verdict(&self) -> crate::Outcome {
        if self.passed() {
            crate::Outcome::Success
        } else {
            crate::Outcome::DrillFailed
        }
    }
}

/// One `check` run (sealed JSON under `checks/<id>`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    /// When the check started (RFC 3339).
    pub time: String,
    /// True when the check found no damage.
    pub ok: bool,
    /// How much pack data was read: "none", "all" or the subset asked for.
    pub read_data: String,
    /// Findings that are damage.
    pub errors: u64,
    /// Findings that are not (unused data, stale locks).
    pub warnings: u64,
    /// Seconds the check took.
    pub duration_seconds: f64,
    /// Host that ran it.
    pub hostname: String,
}

/// A record type stored in the repository: a sealed file of JSON.
pub trait Record: SealedFile + Serialize + DeserializeOwned {}

macro_rules! record {
    ($record:ty, $file_type:expr, $kind:expr, $id:ty) => {
        impl SealedFile for $record {
            const FILE_TYPE: FileType = $file_type;
            const KIND: ObjectKind = $kind;
            type Id = $id;

            fn encode_file(&self) -> Vec<u8> {
                serde_json::to_vec(self).expect("records serialize")
            }

            fn decode_file(plain: &[u8], object: &str) -> Result<Self> {
                serde_json::from_slice(plain).map_err(|e| {
                    RepoError::corrupt(
                        object,
                        format!("invalid {} record JSON: {e}", Self::FILE_TYPE.dir()),
                    )
                })
            }
        }

        impl Record for $record {}
    };
}

record!(DrillRecord, FileType::Drill, ObjectKind::Drill, DrillId);
record!(CheckRecord, FileType::Check, ObjectKind::Check, CheckId);

impl Repository {
    /// Stores a record; returns its id. The object appears complete or not at all.
    pub async fn write_record<R: Record>(&self, record: &R) -> Result<R::Id> {
        self.write_file(record).await
    }

    /// Every record of one type with its id, each authenticated before it is parsed. A
    /// record removed between listing and reading is skipped.
    pub async fn read_records<R: Record>(&self) -> Result<Vec<(R::Id, R)>> {
        self.read_files().await
    }

    /// Drill records, oldest first.
    pub async fn drills(&self) -> Result<Vec<(DrillId, DrillRecord)>> {
        let mut drills = self.read_records::<DrillRecord>().await?;
        drills.sort_by(|a, b| (&a.1.time, &a.0).cmp(&(&b.1.time, &b.0)));
        Ok(drills)
    }

    /// Check records, oldest first.
    pub async fn check_records(&self) -> Result<Vec<(CheckId, CheckRecord)>> {
        let mut checks = self.read_records::<CheckRecord>().await?;
        checks.sort_by(|a, b| (&a.1.time, &a.0).cmp(&(&b.1.time, &b.0)));
        Ok(checks)
    }

    /// Removes drill records of snapshots that no longer exist, and all but the newest
    /// [`CHECK_RECORDS_KEPT`] check records. Returns how many records were removed.
    ///
    /// Drills are matched against a fresh listing of snapshots taken after the records were
    /// read, so a drill of a snapshot written meanwhile is never dropped.
    pub async fn drop_stale_records(&self) -> Result<u64> {
        let drills = self.drills().await?;
        let checks = self.check_records().await?;
        let snapshots: std::collections::HashSet<SnapshotId> = self
            .list_files::<crate::Snapshot>()
            .await?
            .into_iter()
            .collect();
        let mut removed = 0;
        for (id, drill) in drills {
            let live = drill
                .snapshot
                .parse::<SnapshotId>()
                .is_ok_and(|snapshot| snapshots.contains(&snapshot));
            if !live {
                self.delete_file::<DrillRecord>(&id).await?;
                removed += 1;
            }
        }
        let excess = checks.len().saturating_sub(CHECK_RECORDS_KEPT);
        for (id, _) in checks.into_iter().take(excess) {
            self.delete_file::<CheckRecord>(&id).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn drill(snapshot: &str, time: &str, outcome: DrillOutcome) -> DrillRecord {
        DrillRecord {
            snapshot: snapshot.into(),
            path: None,
            time: time.into(),
            command: "true".into(),
            outcome,
            exit_code: Some(0),
            error: None,
            duration_seconds: 0.5,
            files_restored: 1,
            bytes_restored: 10,
            hostname: "h".into(),
        }
    }

    fn outcome() -> impl Strategy<Value = DrillOutcome> {
        prop_oneof![
            Just(DrillOutcome::Passed),
            Just(DrillOutcome::CommandFailed),
            Just(DrillOutcome::TimedOut),
            Just(DrillOutcome::RestoreFailed),
        ]
    }

    proptest! {
        #[test]
        fn drill_records_round_trip(
            snapshot in "[0-9a-f]{64}",
            path in proptest::option::of("/[a-z/]{0,20}"),
            command in ".{0,40}",
            outcome in outcome(),
            exit_code in proptest::option::of(any::<i32>()),
            error in proptest::option::of(".{0,40}"),
            files in any::<u64>(),
            bytes in any::<u64>(),
            millis in 0u32..1_000_000,
        ) {
            let record = DrillRecord {
                snapshot, path, time: "2026-12-01T12:00:00Z".into(), command, outcome,
                exit_code, error, duration_seconds: f64::from(millis) / 1000.0,
                files_restored: files, bytes_restored: bytes, hostname: "node-1".into(),
            };
            let text = serde_json::to_vec(&record).unwrap();
            prop_assert_eq!(DrillRecord::decode_file(&text, "d").unwrap(), record);
        }

        #[test]
        fn check_records_round_trip(ok in any::<bool>(), errors in any::<u64>(), warnings in any::<u64>()) {
            let record = CheckRecord {
                time: "2026-12-01T12:00:00Z".into(), ok, read_data: "all".into(), errors,
                warnings, duration_seconds: 1.25, hostname: "h".into(),
            };
            let text = serde_json::to_vec(&record).unwrap();
            prop_assert_eq!(CheckRecord::decode_file(&text, "c").unwrap(), record);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = DrillRecord::decode_file(&bytes, "d");
            let _ = CheckRecord::decode_file(&bytes, "c");
        }
    }

    #[test]
    fn malformed_records_are_rejected_with_the_object_named() {
        for text in [
            &br#"{"snapshot":"a","time":"t","command":"c","outcome":"maybe","duration_seconds":1,"files_restored":0,"bytes_restored":0,"hostname":"h"}"#[..],
            br#"{"snapshot":"a"}"#,
            b"[]",
        ] {
            let err = DrillRecord::decode_file(text, "drills/abc").unwrap_err();
            assert!(err.to_string().contains("drills/abc"), "{err}");
        }
    }

    async fn repo() -> Repository {
        let options = crate::InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            ..Default::default()
        };
        Repository::init(crate::Storage::in_memory(), b"pw", options)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn records_are_authenticated_and_kinds_not_interchangeable() {
        let repo = repo().await;
        let record = drill(
            &"ab".repeat(32),
            "2026-12-01T00:00:00Z",
            DrillOutcome::Passed,
        );
        let id = repo.write_record(&record).await.unwrap();
        assert_eq!(repo.drills().await.unwrap(), vec![(id.clone(), record)]);

        // A drill's bytes stored as a check record do not open as one.
        let sealed = repo
            .storage
            .get(FileType::Drill, id.as_str())
            .await
            .unwrap();
        repo.storage
            .put_content(FileType::Check, id.as_str(), sealed.clone().into())
            .await
            .unwrap();
        let err = repo.check_records().await.unwrap_err().to_string();
        assert!(err.contains(&format!("checks/{id}")), "{err}");
        repo.storage
            .delete(FileType::Check, id.as_str())
            .await
            .unwrap();

        // A flipped byte: the content no longer hashes to its name.
        let mut damaged = sealed.to_vec();
        damaged[30] ^= 1;
        repo.storage
            .overwrite(FileType::Drill, id.as_str(), damaged.into())
            .await
            .unwrap();
        let err = repo.drills().await.unwrap_err().to_string();
        assert!(err.contains(&format!("drills/{id}")), "{err}");
    }

    #[tokio::test]
    async fn stale_drills_and_old_checks_are_dropped() {
        let repo = repo().await;
        let live = "11".repeat(32);
        repo.storage
            .put_content(
                FileType::Snapshot,
                &live,
                bytes::Bytes::from_static(b"x").into(),
            )
            .await
            .unwrap();
        let kept = repo
            .write_record(&drill(&live, "2026-12-01T00:00:00Z", DrillOutcome::Passed))
            .await
            .unwrap();
        repo.write_record(&drill(
            &"22".repeat(32),
            "2026-12-01T00:00:00Z",
            DrillOutcome::Passed,
        ))
        .await
        .unwrap();
        for i in 0..CHECK_RECORDS_KEPT + 3 {
            repo.write_record(&CheckRecord {
                time: format!("2026-12-01T00:00:{i:02}Z"),
                ok: true,
                read_data: "none".into(),
                errors: 0,
                warnings: 0,
                duration_seconds: 0.0,
                hostname: "h".into(),
            })
            .await
            .unwrap();
        }
        assert_eq!(repo.drop_stale_records().await.unwrap(), 4);
        let drills = repo.drills().await.unwrap();
        assert_eq!(drills.len(), 1);
        assert_eq!(drills[0].0, kept);
        let checks = repo.check_records().await.unwrap();
        assert_eq!(checks.len(), CHECK_RECORDS_KEPT);
        assert_eq!(checks[0].1.time, "2026-12-01T00:00:03Z");
    }
}
