//! `stats`: what the repository holds, as restic's `stats --json` reports it, for the CLI and
//! the C ABI alike.

use std::collections::{HashMap, HashSet};

use cairn_pack::BlobId;
use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::snapshot::SnapshotFilter;
use crate::tree::NodeKind;
use crate::walk::TreeWalker;
use crate::Repository;

/// What the repository holds (restic's `stats --json` field names).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct StatsReport {
    /// Snapshots counted.
    pub snapshots_count: u64,
    /// Bytes a restore of every counted snapshot would write (shared files counted at every
    /// path and in every snapshot, as restic's "restore-size").
    pub total_size: u64,
    /// Files a restore of every counted snapshot would write.
    pub total_file_count: u64,
    /// Distinct blobs (trees and data) the counted snapshots use.
    pub total_blob_count: u64,
    /// Their plaintext size.
    pub total_uncompressed_size: u64,
    /// Their stored (compressed, sealed) size.
    pub total_stored_size: u64,
    /// Bytes of every pack in the repository.
    pub repository_size: u64,
    /// Packs in the repository.
    pub pack_count: u64,
    /// `total_size / total_uncompressed_size` (0 when empty).
    pub dedup_ratio: f64,
    /// `total_uncompressed_size / total_stored_size` (0 when empty).
    pub compression_ratio: f64,
    /// Percent of plaintext saved by compression.
    pub compression_space_saving: f64,
}

/// What one tree holds by itself: file bytes and count, and the subtrees it names (one entry
/// per directory, so a subtree named twice counts twice).
struct TreeSums {
    bytes: u64,
    files: u64,
    subtrees: Vec<BlobId>,
}

impl Repository {
    /// Counts what the snapshots passing `filter` hold and what the repository stores. Every
    /// distinct tree is read once (through the one tree walker); sizes per snapshot are then
    /// summed in memory.
    pub async fn stats(&self, filter: &SnapshotFilter) -> Result<StatsReport> {
        let snapshots = self.list_snapshots(filter).await?;
        let index = self.load_index().await?;
        let mut sums: HashMap<BlobId, TreeSums> = HashMap::new();
        let mut referenced: HashSet<BlobId> = HashSet::new();
        TreeWalker::new(self, &index)
            .walk(snapshots.iter().map(|s| s.snapshot.tree), |reached| {
                let tree = reached.tree?;
                referenced.insert(reached.id);
                // A split directory's parts count as its subtrees (each once).
                let mut own = TreeSums {
                    bytes: 0,
                    files: 0,
                    subtrees: reached.parts.clone(),
                };
                for node in &tree.nodes {
                    if node.kind == NodeKind::File {
                        own.bytes += node.size;
                        own.files += 1;
                        referenced.extend(node.content.iter().copied());
                    }
                    own.subtrees.extend(node.subtree);
                }
                sums.insert(reached.id, own);
                Ok(())
            })
            .await?;
        let totals = expanded_totals(&sums)?;
        let mut report = StatsReport {
            snapshots_count: snapshots.len() as u64,
            total_blob_count: referenced.len() as u64,
            ..Default::default()
        };
        for entry in &snapshots {
            // Every root was walked, so it has a total; none would mean nothing to count.
            let (bytes, files) = totals
                .get(&entry.snapshot.tree)
                .copied()
                .unwrap_or_default();
            report.total_size += bytes;
            report.total_file_count += files;
        }
        for location in referenced.iter().filter_map(|id| index.get(id)) {
            report.total_uncompressed_size += u64::from(location.entry.plain_len);
            report.total_stored_size += u64::from(location.entry.stored_len);
        }
        for pack in self.list_packs().await? {
            report.repository_size += pack.size;
            report.pack_count += 1;
        }
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        report.dedup_ratio = ratio(report.total_size, report.total_uncompressed_size);
        report.compression_ratio = ratio(report.total_uncompressed_size, report.total_stored_size);
        report.compression_space_saving = if report.total_uncompressed_size == 0 {
            0.0
        } else {
            100.0 * (1.0 - ratio(report.total_stored_size, report.total_uncompressed_size))
        };
        Ok(report)
    }
}

/// (bytes, files) of every tree with everything below it, computed children first without
/// recursion. Saturating: a hostile snapshot whose shared subtrees expand beyond `u64` gets
/// `u64::MAX`, not a wrapped count. A cycle (impossible for content-addressed trees, but the
/// ids come from the repository) is damage.
fn expanded_totals(sums: &HashMap<BlobId, TreeSums>) -> Result<HashMap<BlobId, (u64, u64)>> {
    let mut totals: HashMap<BlobId, (u64, u64)> = HashMap::with_capacity(sums.len());
    let mut open: HashSet<BlobId> = HashSet::new();
    for start in sums.keys() {
        let mut stack = vec![(*start, false)];
        while let Some((id, expanded)) = stack.pop() {
            if totals.contains_key(&id) {
                continue;
            }
            // The walk read every tree it reached, subtrees included; one it did not is
            // damage, not a reason to panic.
            let Some(own) = sums.get(&id) else {
                return Err(RepoError::corrupt(
                    format!("tree {id}"),
                    "it was not read with the trees that name it",
                ));
            };
            if !expanded {
                if !open.insert(id) {
                    return Err(RepoError::corrupt(
                        format!("tree {id}"),
                        "it contains itself",
                    ));
                }
                stack.push((id, true));
                stack.extend(
                    own.subtrees
                        .iter()
                        .filter(|sub| !totals.contains_key(*sub))
                        .map(|sub| (*sub, false)),
                );
                continue;
            }
            open.remove(&id);
            let (mut bytes, mut files) = (own.bytes, own.files);
            for sub in &own.subtrees {
                let (b, f) = totals.get(sub).copied().unwrap_or_default();
                bytes = bytes.saturating_add(b);
                files = files.saturating_add(f);
            }
            totals.insert(id, (bytes, files));
        }
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> BlobId {
        BlobId([n; 32])
    }

    #[test]
    fn shared_subtrees_count_at_every_path() {
        let mut sums = HashMap::new();
        sums.insert(
            id(1),
            TreeSums {
                bytes: 10,
                files: 1,
                subtrees: vec![id(2), id(2)],
            },
        );
        sums.insert(
            id(2),
            TreeSums {
                bytes: 5,
                files: 2,
                subtrees: vec![],
            },
        );
        let totals = expanded_totals(&sums).unwrap();
        assert_eq!(totals[&id(1)], (20, 5));
        assert_eq!(totals[&id(2)], (5, 2));
    }

    #[test]
    fn a_subtree_that_was_not_read_is_damage_not_a_panic() {
        let mut sums = HashMap::new();
        sums.insert(
            id(1),
            TreeSums {
                bytes: 1,
                files: 1,
                subtrees: vec![id(9)],
            },
        );
        let err = expanded_totals(&sums).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Corrupt, "{err}");
        assert!(err.to_string().contains(&id(9).to_string()), "{err}");
    }

    #[test]
    fn expansion_saturates_instead_of_wrapping() {
        let mut sums = HashMap::new();
        for n in 1..80u8 {
            sums.insert(
                id(n),
                TreeSums {
                    bytes: u64::MAX / 2,
                    files: 1,
                    subtrees: vec![id(n + 1), id(n + 1)],
                },
            );
        }
        sums.insert(
            id(80),
            TreeSums {
                bytes: 1,
                files: 1,
                subtrees: vec![],
            },
        );
        assert_eq!(
            expanded_totals(&sums).unwrap()[&id(1)],
            (u64::MAX, u64::MAX)
        );
    }
}
