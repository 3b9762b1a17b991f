//! A restore's first pass: how many entries, files and bytes the snapshot expands to.
//!
//! Equal directories are one tree, which a snapshot may name from many places, so a snapshot
//! of a few kilobytes can describe 2^30 paths. The expansion is counted over the distinct
//! trees, bottom up, before anything is restored: a snapshot over the limit is refused
//! naming the smallest tree that is, at the cost of reading its trees once. Only each
//! tree's subdirectories and sums are kept (memory grows with the number of directories,
//! not files); the restore itself reads the trees again as it goes (from the local cache,
//! which this pass filled).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use cairn_pack::BlobId;

use super::NodeKind;
use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::tree::Name;
use crate::walk::TreeWalker;
use crate::Repository;

/// Entries, regular files and their bytes below a tree, counted once per path (saturating).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Totals {
    pub entries: u64,
    pub files: u64,
    pub bytes: u64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.entries = self.entries.saturating_add(other.entries);
        self.files = self.files.saturating_add(other.files);
        self.bytes = self.bytes.saturating_add(other.bytes);
    }
}

/// What the count needs of one tree: its own sums and its subdirectories (with
/// multiplicity: a tree naming one subtree twice expands it twice). A split directory's
/// part list has its parts here, without names (they add no path component).
struct Shape {
    own: Totals,
    subdirs: Vec<(Option<Name>, BlobId)>,
}

impl Repository {
    /// Counts what `root` expands to; refuses it if that is more than `max_entries`.
    ///
    /// # Errors
    /// `Corrupt` naming the smallest tree over the limit, or a tree that contains itself;
    /// read errors.
    pub(super) async fn restore_totals(
        &self,
        index: &Index,
        root: &BlobId,
        max_entries: u64,
    ) -> Result<Totals> {
        let mut shapes: HashMap<BlobId, Shape> = HashMap::new();
        TreeWalker::new(self, index)
            .walk([*root], |reached| {
                let tree = reached.tree?;
                let mut own = Totals::default();
                let mut subdirs: Vec<(Option<Name>, BlobId)> =
                    reached.parts.iter().map(|part| (None, *part)).collect();
                for node in tree.nodes {
                    own.entries += 1;
                    match (node.kind, node.subtree) {
                        (NodeKind::File, _) => {
                            own.files += 1;
                            own.bytes = own.bytes.saturating_add(node.size);
                        }
                        (NodeKind::Dir, Some(sub)) => subdirs.push((Some(node.name), sub)),
                        _ => {}
                    }
                }
                shapes.insert(reached.id, Shape { own, subdirs });
                Ok(())
            })
            .await?;
        let totals = expanded(&shapes, root)?;
        if totals[root].entries > max_entries {
            return Err(over_limit(&shapes, &totals, root, max_entries));
        }
        Ok(totals[root])
    }
}

/// Totals below each tree, computed bottom-up over the distinct trees without recursion.
fn expanded(shapes: &HashMap<BlobId, Shape>, root: &BlobId) -> Result<HashMap<BlobId, Totals>> {
    let mut totals: HashMap<BlobId, Totals> = HashMap::new();
    let mut open: HashSet<BlobId> = HashSet::new();
    let mut stack = vec![(*root, false)];
    while let Some((id, children_done)) = stack.pop() {
        if totals.contains_key(&id) {
            continue;
        }
        // Every tree the walk reached has a shape; one missing is damage, not a panic.
        let Some(shape) = shapes.get(&id) else {
            return Err(RepoError::corrupt(
                format!("tree {id}"),
                "it was not read with the trees that name it",
            ));
        };
        if !children_done {
            if !open.insert(id) {
                // Ids are hashes of contents, so a tree cannot contain itself; one that
                // claims to is forged.
                return Err(RepoError::corrupt(
                    format!("tree {id}"),
                    "contains itself (a cycle of subtrees)",
                ));
            }
            stack.push((id, true));
            for (_, child) in &shape.subdirs {
                if !totals.contains_key(child) {
                    stack.push((*child, false));
                }
            }
            continue;
        }
        open.remove(&id);
        let mut sum = shape.own;
        for (_, child) in &shape.subdirs {
            sum.add(totals[child]);
        }
        totals.insert(id, sum);
    }
    Ok(totals)
}

/// The refusal, naming the smallest tree over the limit: the one whose sharing multiplies.
fn over_limit(
    shapes: &HashMap<BlobId, Shape>,
    totals: &HashMap<BlobId, Totals>,
    root: &BlobId,
    max_entries: u64,
) -> RepoError {
    let mut culprit = *root;
    let mut path = PathBuf::from("/");
    while let Some((name, sub)) = shapes[&culprit]
        .subdirs
        .iter()
        .find(|(_, sub)| totals[sub].entries > max_entries)
    {
        if let Some(name) = name {
            path.push(name.to_os());
        }
        culprit = *sub;
    }
    RepoError::corrupt(
        format!(
            "tree {culprit} (at {} of the restored tree)",
            path.display()
        ),
        format!(
            "expands to {} entries, more than the limit of {max_entries}: its subtrees are \
             shared so often that restoring them at every path would not end (raise the \
             limit with --max-entries only for a snapshot you trust, or restore a smaller \
             part with SNAPSHOT:PATH)",
            totals[&culprit].entries
        ),
    )
}
