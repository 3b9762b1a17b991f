//! Prune's decision, apart from any I/O: given what was read (the index, which blobs are
//! used, what storage holds and when each pack was stored), which packs are kept, removed
//! or repacked. `--dry-run` prints this plan and stops; the run executes it.

use std::collections::{BTreeSet, HashMap, HashSet};

use cairn_pack::PackId;
use chrono::{DateTime, Utc};

use super::{Marks, PruneOptions, PruneReport};
use crate::error::{RepoError, Result};
use crate::index::Index;

/// What storage holds: each pack's size and when the store wrote it.
pub(crate) type Stored = HashMap<PackId, (u64, DateTime<Utc>)>;

/// What happens to a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    Keep,
    Remove,
    Repack,
}

/// One indexed pack's use.
#[derive(Clone, Copy, Debug, Default)]
struct PackUse {
    used_blobs: u64,
    unused_blobs: u64,
    unused_bytes: u64,
}

/// What was read, as the plan needs it.
pub(crate) struct PlanInput<'a> {
    pub index: &'a Index,
    pub marks: &'a Marks,
    pub stored: &'a Stored,
    /// Packs earlier prunes set aside that still wait for running backups.
    pub awaiting: &'a HashSet<PackId>,
    /// Packs deleted earlier in this run (pending deletions that became ready).
    pub deleted: &'a HashSet<PackId>,
    /// Packs stored at or after this moment may belong to a running backup: never touched.
    pub protect_from: DateTime<Utc>,
}

/// The decision: which packs are repacked, removed (unused, repacked, unindexed) and kept.
#[derive(Debug)]
pub(crate) struct PrunePlan {
    /// Packs to repack, sorted.
    pub repack: Vec<PackId>,
    /// Packs leaving the index and storage (unused, repacked, unindexed), sorted.
    pub removed: Vec<PackId>,
    /// Packs that stay indexed.
    pub kept: BTreeSet<PackId>,
}

impl PrunePlan {
    /// Decides, filling the plan's counts into `report`.
    ///
    /// # Errors
    /// `Corrupt` if the index lists a pack storage lacks (prune then changes nothing).
    pub fn decide(
        input: &PlanInput<'_>,
        options: &PruneOptions,
        report: &mut PruneReport,
    ) -> Result<PrunePlan> {
        let usage = usage(input, report)?;
        report.packs_total = input.stored.len() as u64;
        report.bytes_total = input.stored.values().map(|(size, _)| size).sum();
        let mut fates: HashMap<PackId, Fate> = HashMap::new();
        // Partly used packs prune may repack: (unused bytes, used bytes, pack, size).
        let mut partly_used: Vec<(u64, u64, PackId, u64)> = Vec::new();
        let (mut used_bytes, mut unused_bytes) = (0u64, 0u64);
        for pack in &input.index.packs() {
            if fates.contains_key(pack) {
                continue; // listed by two index tables
            }
            let Some(&(size, stored_at)) = input.stored.get(pack) else {
                return Err(RepoError::corrupt(
                    format!("pack {pack}"),
                    "the index lists it but it is missing from storage; prune changed nothing: \
                     run `cairn check`, then `cairn repair index`",
                ));
            };
            let pack_use = usage.get(pack).copied().unwrap_or_default();
            let unused = pack_use.unused_bytes.min(size);
            let fate = if pack_use.used_blobs == 0 && stored_at < input.protect_from {
                report.packs_unused += 1;
                Fate::Remove
            } else {
                if stored_at >= input.protect_from {
                    report.packs_protected += 1;
                } else if unused > 0 {
                    partly_used.push((unused, size - unused, *pack, size));
                }
                used_bytes += size - unused;
                unused_bytes += unused;
                Fate::Keep
            };
            fates.insert(*pack, fate);
        }
        choose_repacks(
            partly_used,
            used_bytes,
            unused_bytes,
            options,
            &mut fates,
            report,
        );
        let unindexed = unindexed(input, &fates);
        report.packs_unindexed = unindexed.len() as u64;
        let mut removed: Vec<PackId> = fates
            .iter()
            .filter(|(_, fate)| **fate != Fate::Keep)
            .map(|(pack, _)| *pack)
            .chain(unindexed)
            .collect();
        removed.sort();
        report.bytes_removed = removed.iter().map(|p| input.stored[p].0).sum();
        let with = |wanted: Fate| fates.iter().filter(move |(_, f)| **f == wanted);
        let mut repack: Vec<PackId> = with(Fate::Repack).map(|(p, _)| *p).collect();
        repack.sort();
        let kept = with(Fate::Keep).map(|(p, _)| *p).collect();
        Ok(PrunePlan {
            repack,
            removed,
            kept,
        })
    }

    /// True if executing the plan changes nothing in the index or storage.
    pub fn is_empty(&self) -> bool {
        self.repack.is_empty() && self.removed.is_empty()
    }
}

/// Each indexed pack's used and unused blobs; counts blobs into `report`. One pass over
/// the index, read in order (not faulted in through the mapping).
fn usage(input: &PlanInput<'_>, report: &mut PruneReport) -> Result<HashMap<PackId, PackUse>> {
    let mut usage: HashMap<PackId, PackUse> = HashMap::new();
    input.index.scan(|position, location| {
        let pack_use = usage.entry(location.pack).or_default();
        if input.marks.is_used(position) {
            report.blobs_used += 1;
            pack_use.used_blobs += 1;
        } else {
            report.blobs_unused += 1;
            pack_use.unused_blobs += 1;
            pack_use.unused_bytes += u64::from(location.entry.stored_len);
        }
    })?;
    Ok(usage)
}

/// restic's order: the most unused data per used byte first, since repacking those frees the
/// most for the bytes copied; then repack until the unused data left is within
/// `max_unused`, skipping packs the repack budget no longer covers.
fn choose_repacks(
    mut partly_used: Vec<(u64, u64, PackId, u64)>,
    used_bytes: u64,
    mut unused_bytes: u64,
    options: &PruneOptions,
    fates: &mut HashMap<PackId, Fate>,
    report: &mut PruneReport,
) {
    partly_used.sort_by(|a, b| {
        (u128::from(b.0) * u128::from(a.1))
            .cmp(&(u128::from(a.0) * u128::from(b.1)))
            .then(a.2.cmp(&b.2))
    });
    let allowed = options.max_unused.allowed_bytes(used_bytes);
    let mut budget = options.max_repack_bytes.unwrap_or(u64::MAX);
    for (unused, _, pack, size) in partly_used {
        if unused_bytes <= allowed {
            break;
        }
        if size <= budget {
            budget -= size;
            unused_bytes -= unused;
            fates.insert(pack, Fate::Repack);
            report.packs_repacked += 1;
            report.bytes_repacked += size;
        }
    }
}

/// Stored packs no index lists, left by interrupted runs: removed unless a running backup
/// may have written them or an earlier prune's record already covers them.
fn unindexed(input: &PlanInput<'_>, fates: &HashMap<PackId, Fate>) -> Vec<PackId> {
    let mut unindexed: Vec<PackId> = input
        .stored
        .iter()
        .filter(|(pack, &(_, stored_at))| {
            !fates.contains_key(pack)
                && !input.awaiting.contains(pack)
                && !input.deleted.contains(pack)
                && stored_at < input.protect_from
        })
        .map(|(pack, _)| *pack)
        .collect();
    unindexed.sort();
    unindexed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{IndexFile, IndexPack};
    use crate::ops::prune::MaxUnused;
    use cairn_pack::{BlobId, BlobType, Compression, PackEntry};

    fn blob(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    /// A pack of `blobs` blobs of 1000 stored bytes each, ids `first..first+blobs`.
    fn pack(n: u8, first: u8, blobs: u8) -> IndexPack {
        IndexPack {
            id: PackId([n; 32]),
            entries: (0..blobs)
                .map(|i| PackEntry {
                    blob_type: BlobType::Data,
                    compression: Compression::None,
                    offset: u32::from(i) * 1000,
                    stored_len: 1000,
                    plain_len: 960,
                    id: blob(first + i),
                })
                .collect(),
        }
    }

    fn plan(
        used: &[BlobId],
        stored_extra: &[(u8, i64)],
        max_unused: MaxUnused,
    ) -> (PrunePlan, PruneReport) {
        // Pack 1: all used. Pack 2: one of ten used. Pack 3: nothing used.
        let file = IndexFile {
            packs: vec![pack(1, 0, 10), pack(2, 10, 10), pack(3, 20, 10)],
        };
        let index = Index::build([&file]).unwrap();
        let marks = Marks::of(&index, used);
        let old = Utc::now() - chrono::Duration::hours(1);
        let mut stored: Stored = (1..=3).map(|n| (PackId([n; 32]), (10_000, old))).collect();
        for &(n, age_hours) in stored_extra {
            let at = Utc::now() - chrono::Duration::hours(age_hours);
            stored.insert(PackId([n; 32]), (5_000, at));
        }
        let input = PlanInput {
            index: &index,
            marks: &marks,
            stored: &stored,
            awaiting: &HashSet::new(),
            deleted: &HashSet::new(),
            protect_from: Utc::now() - chrono::Duration::minutes(30),
        };
        let options = PruneOptions {
            max_unused,
            ..Default::default()
        };
        let mut report = PruneReport::default();
        let plan = PrunePlan::decide(&input, &options, &mut report).unwrap();
        (plan, report)
    }

    fn used() -> Vec<BlobId> {
        (0..10).map(blob).chain([blob(10)]).collect()
    }

    #[test]
    fn unused_packs_go_and_max_unused_zero_repacks_every_partly_used_pack() {
        let (plan, report) = plan(&used(), &[], MaxUnused::Percent(0.0));
        assert_eq!(plan.removed, vec![PackId([2; 32]), PackId([3; 32])]);
        assert_eq!(plan.repack, vec![PackId([2; 32])]);
        assert!(plan.kept.contains(&PackId([1; 32])) && plan.kept.len() == 1);
        assert_eq!((report.blobs_used, report.blobs_unused), (11, 19));
        assert_eq!(report.bytes_removed, 20_000);
    }

    #[test]
    fn unlimited_keeps_partly_used_packs() {
        let (plan, report) = plan(&used(), &[], MaxUnused::Unlimited);
        assert_eq!(plan.removed, vec![PackId([3; 32])]);
        assert!(plan.repack.is_empty());
        assert_eq!(report.packs_unused, 1);
    }

    #[test]
    fn recent_and_unindexed_packs_are_judged_by_their_age() {
        // Pack 9 is unindexed and old (removed), pack 8 unindexed and recent (a running
        // backup may be writing it: kept, and so is nothing else about it).
        let (plan, report) = plan(&used(), &[(9, 2), (8, 0)], MaxUnused::Unlimited);
        assert_eq!(plan.removed, vec![PackId([3; 32]), PackId([9; 32])]);
        assert_eq!(report.packs_unindexed, 1);
    }

    #[test]
    fn an_indexed_pack_missing_from_storage_stops_the_plan() {
        let file = IndexFile {
            packs: vec![pack(1, 0, 2)],
        };
        let index = Index::build([&file]).unwrap();
        let marks = Marks::of(&index, &[]);
        let input = PlanInput {
            index: &index,
            marks: &marks,
            stored: &Stored::new(),
            awaiting: &HashSet::new(),
            deleted: &HashSet::new(),
            protect_from: Utc::now(),
        };
        let verdict = PrunePlan::decide(
            &input,
            &PruneOptions::default(),
            &mut PruneReport::default(),
        );
        assert!(
            matches!(verdict, Err(RepoError::Corrupt { .. })),
            "{verdict:?}"
        );
    }
}
