//! `forget`: remove snapshots by retention policy or by id. Only snapshot objects are
//! removed; the data they alone used is freed by [`Repository::prune`].
//!
//! Forget takes no lock: removing a snapshot while a backup uses it as its parent is safe
//! (the backup re-reads any file whose blobs are no longer indexed), and a prune running
//! meanwhile only sees less garbage than there is.

pub mod policy;

pub use policy::{apply, Decision, GroupBy, GroupDecision, GroupKey, KeepPolicy, TagSet, Within};

use crate::error::Result;
use crate::object::SnapshotId;
use crate::snapshot::{resolve, SnapshotFilter};
use crate::Repository;

/// What to forget. Deserializes from its JSON form ([`crate::ops::wire::ForgetWire`]).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(try_from = "crate::ops::wire::ForgetWire")]
pub struct ForgetOptions {
    /// Snapshots to remove explicitly (ids, prefixes or `latest`); when set, no policy is
    /// applied.
    pub ids: Vec<String>,
    /// The retention policy (when `ids` is empty).
    pub policy: KeepPolicy,
    /// How snapshots are grouped for the policy.
    pub group_by: GroupBy,
    /// Only snapshots passing this filter are considered.
    pub filter: SnapshotFilter,
    /// Decide, but remove nothing.
    pub dry_run: bool,
}

/// What forget decided and did.
#[derive(Clone, Debug, Default)]
pub struct ForgetReport {
    /// The policy's decision per group (empty when removing by id).
    pub groups: Vec<GroupDecision>,
    /// Ids removed (or, in a dry run, that would be).
    pub removed: Vec<SnapshotId>,
    /// Ids that could not be removed, with why (restic exit code 3).
    pub failed: Vec<(SnapshotId, String)>,
    /// Drill records of removed snapshots (and surplus check records) deleted.
    pub records_removed: u64,
}

impl ForgetReport {
    /// [`crate::Outcome::Incomplete`] when some snapshots could not be removed (restic's
    /// exit code 3), else success.
    pub fn outcome(&self) -> crate::Outcome {
        if self.failed.is_empty() {
            crate::Outcome::Success
        } else {
            crate::Outcome::Incomplete
        }
    }
}

impl Repository {
    /// Applies the policy (or removes `ids`) and deletes the snapshots to remove.
    ///
    /// # Errors
    /// An empty policy with no ids, an unknown or ambiguous id, or listing failures. Failures
    /// to delete single snapshots are reported in [`ForgetReport::failed`].
    pub async fn forget(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        let snapshots = self.list_snapshots(&options.filter).await?;
        let mut report = ForgetReport::default();
        if options.ids.is_empty() {
            report.groups = apply(&snapshots, &options.policy, &options.group_by)?;
            report.removed = report
                .groups
                .iter()
                .flat_map(|g| g.remove.iter().map(|d| d.entry.id.clone()))
                .collect();
        } else {
            for spec in &options.ids {
                let id = resolve(&snapshots, spec)?.id.clone();
                if !report.removed.contains(&id) {
                    report.removed.push(id);
                }
            }
        }
        if options.dry_run {
            return Ok(report);
        }
        let mut removed = Vec::new();
        for id in std::mem::take(&mut report.removed) {
            match self.delete_snapshot(&id).await {
                Ok(()) => removed.push(id),
                Err(e) => report.failed.push((id, e.to_string())),
            }
        }
        if !removed.is_empty() {
            report.records_removed = self.drop_stale_records().await?;
        }
        report.removed = removed;
        Ok(report)
    }
}
