//! Reachability: which indexed blobs some snapshot uses. One bit per index slot, so memory is
//! an eighth of a byte per blob, and each tree is read once however many snapshots share it.

use std::collections::HashSet;

use cairn_pack::BlobId;

use crate::error::Result;
use crate::index::Index;
use crate::walk::TreeWalker;
use crate::Repository;

/// Blobs reachable from a set of snapshots.
pub(crate) struct Marks {
    used: Vec<u64>,
    /// Referenced but not in the index.
    pub missing: HashSet<BlobId>,
}

impl Marks {
    /// Marks with exactly the blobs `used` marked (tests of the plan).
    #[cfg(test)]
    pub fn of(index: &Index, used: &[BlobId]) -> Marks {
        let mut marks = Marks {
            used: vec![0; index.len().div_ceil(64)],
            missing: HashSet::new(),
        };
        for id in used {
            marks.mark(index, id);
        }
        marks
    }

    /// True if the blob at index position `position` is used.
    pub fn is_used(&self, position: usize) -> bool {
        self.used[position / 64] & (1 << (position % 64)) != 0
    }

    /// Marks `id`; true if it is indexed and was not marked before.
    fn mark(&mut self, index: &Index, id: &BlobId) -> bool {
        match index.position(id) {
            Some(p) => {
                let (word, bit) = (p / 64, 1u64 << (p % 64));
                let fresh = self.used[word] & bit == 0;
                self.used[word] |= bit;
                fresh
            }
            None => {
                self.missing.insert(*id);
                false
            }
        }
    }
}

impl Repository {
    /// Marks every blob reachable from `roots` (snapshot root trees). Trees missing from the
    /// index are recorded in [`Marks::missing`] and not descended into; a tree that is
    /// indexed but unreadable is an error (prune must not guess).
    pub(crate) async fn mark_reachable(
        &self,
        index: &Index,
        roots: impl IntoIterator<Item = BlobId>,
    ) -> Result<Marks> {
        let mut marks = Marks {
            used: vec![0; index.len().div_ceil(64)],
            missing: HashSet::new(),
        };
        TreeWalker::new(self, index)
            .remembering_by_position()
            .walk(roots, |reached| {
                marks.mark(index, &reached.id);
                if index.position(&reached.id).is_none() {
                    // Not indexed: recorded as missing, and nothing below it is reachable.
                    return Ok(());
                }
                // Descend whether or not the id was marked before: the walker reaches each
                // tree once, and a data blob with the same bytes (so the same id) must not
                // hide the tree's contents.
                for node in &reached.tree?.nodes {
                    for blob in &node.content {
                        marks.mark(index, blob);
                    }
                }
                Ok(())
            })
            .await?;
        Ok(marks)
    }
}
