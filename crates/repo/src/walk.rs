//! The one tree walker: every distinct tree reachable from some roots, each read once.
//!
//! Reads are kept in flight continuously (not level by level), so a walk over a remote store
//! costs about `trees / concurrency` round trips rather than one per tree or one per level.
//! A subtree shared between directories or snapshots is read and visited once, at the first
//! path that reached it; a walker keeps its memory of visited trees across calls, so walking
//! several snapshots one after another visits what they share once.
//!
//! Read failures are handed to the visitor rather than ending the walk, so `check` can report
//! a damaged tree and go on; every other caller turns them into errors with `?`.

use std::collections::{HashSet, VecDeque};

use cairn_pack::BlobId;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::error::Result;
use crate::index::Index;
use crate::tree::Tree;
use crate::Repository;

/// Tree reads in flight by default (the storage's [`reads_in_flight`] unless set).
///
/// [`reads_in_flight`]: crate::Storage::reads_in_flight
pub const TREE_READS: usize = crate::storage::DEFAULT_READS_IN_FLIGHT;

/// One tree the walk reached.
#[derive(Debug)]
pub struct Reached {
    /// Which root (position in the `roots` given to [`TreeWalker::walk`]) reached it first.
    pub root: usize,
    /// Its path from that root ("/" for the root itself).
    pub path: String,
    /// Its id.
    pub id: BlobId,
    /// The tree, or why it could not be read (missing from the index, damaged, ...).
    pub tree: Result<Tree>,
    /// True if the tree was found only through the fallback index.
    pub via_fallback: bool,
}

/// Walks trees through one index, remembering which trees it has visited.
pub struct TreeWalker<'a> {
    repo: &'a Repository,
    index: &'a Index,
    fallback: Option<&'a Index>,
    seen: Seen,
    concurrency: usize,
}

/// Which trees a walker has visited.
enum Seen {
    /// By id: about 50 bytes per tree, for walks of a few snapshots.
    Ids(HashSet<BlobId>),
    /// One bit per indexed blob, by its position in the index, for walks over a whole
    /// repository (the bitmap is 2.5 MB at 20 M blobs, where a set of 2 M tree ids would
    /// take about 100 MB); trees the index lacks, by id.
    Positions {
        bits: Vec<u64>,
        others: HashSet<BlobId>,
        count: usize,
    },
}

impl Seen {
    /// Records `id`; true if it was not seen before.
    fn insert(&mut self, index: &Index, id: BlobId) -> bool {
        match self {
            Seen::Ids(ids) => ids.insert(id),
            Seen::Positions {
                bits,
                others,
                count,
            } => {
                let fresh = match index.position(&id) {
                    Some(p) => {
                        let (word, bit) = (p / 64, 1u64 << (p % 64));
                        let fresh = bits[word] & bit == 0;
                        bits[word] |= bit;
                        fresh
                    }
                    None => others.insert(id),
                };
                *count += usize::from(fresh);
                fresh
            }
        }
    }

    fn contains(&self, index: &Index, id: &BlobId) -> bool {
        match self {
            Seen::Ids(ids) => ids.contains(id),
            Seen::Positions { bits, others, .. } => match index.position(id) {
                Some(p) => bits[p / 64] & (1u64 << (p % 64)) != 0,
                None => others.contains(id),
            },
        }
    }

    fn len(&self) -> usize {
        match self {
            Seen::Ids(ids) => ids.len(),
            Seen::Positions { count, .. } => *count,
        }
    }
}

impl<'a> TreeWalker<'a> {
    /// A walker reading through `index`, as many trees at a time as the storage reads
    /// in flight ([`crate::Storage::reads_in_flight`]).
    pub fn new(repo: &'a Repository, index: &'a Index) -> Self {
        TreeWalker {
            repo,
            index,
            fallback: None,
            seen: Seen::Ids(HashSet::new()),
            concurrency: repo.reads_in_flight(),
        }
    }

    /// Trees missing from the walker's index are read through `fallback` (an older index
    /// whose packs still exist: prune's and backup's protocol steps walk across a
    /// re-index). Such trees are reported with [`Reached::via_fallback`].
    pub fn with_fallback(mut self, fallback: &'a Index) -> Self {
        self.fallback = Some(fallback);
        self
    }

    /// Remembers visited trees as one bit per indexed blob rather than by id: for walks over
    /// every snapshot (prune, check, stats), whose memory then does not grow with the
    /// number of trees. Costs an index lookup per tree reached.
    pub fn remembering_by_position(mut self) -> Self {
        self.seen = Seen::Positions {
            bits: vec![0; self.index.len().div_ceil(64)],
            others: HashSet::new(),
            count: 0,
        };
        self
    }

    /// Sets how many tree reads are in flight at once (at least one).
    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    /// How many distinct trees this walker has visited.
    pub fn visited(&self) -> usize {
        self.seen.len()
    }

    /// True once `id` has been reached by this walker.
    pub fn has_visited(&self, id: &BlobId) -> bool {
        self.seen.contains(self.index, id)
    }

    /// Visits every tree reachable from `roots` that this walker has not visited before,
    /// breadth-first, in the order reads complete. `visit` returns an error to stop the walk
    /// (that error is returned). The subtrees of a tree that could not be read are not
    /// reached through it.
    pub async fn walk<V>(
        &mut self,
        roots: impl IntoIterator<Item = BlobId>,
        mut visit: V,
    ) -> Result<()>
    where
        V: FnMut(Reached) -> Result<()>,
    {
        let mut queue: VecDeque<(usize, String, BlobId)> = VecDeque::new();
        for (root, id) in roots.into_iter().enumerate() {
            if self.seen.insert(self.index, id) {
                queue.push_back((root, "/".to_string(), id));
            }
        }
        let (repo, index, fallback) = (self.repo, self.index, self.fallback);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some((root, path, id)) = queue.pop_front() else {
                    break;
                };
                in_flight.push(async move {
                    let via = match fallback {
                        Some(fallback) if !index.contains(&id) => fallback,
                        _ => index,
                    };
                    let tree = repo.read_tree(via, &id).await;
                    Reached {
                        root,
                        path,
                        id,
                        tree,
                        via_fallback: !std::ptr::eq(via, index),
                    }
                });
            }
            let Some(reached) = in_flight.next().await else {
                return Ok(());
            };
            if let Ok(tree) = &reached.tree {
                for node in &tree.nodes {
                    if let Some(subtree) = node.subtree {
                        if self.seen.insert(index, subtree) {
                            let path = child_path(&reached.path, node.name.display());
                            queue.push_back((reached.root, path, subtree));
                        }
                    }
                }
            }
            visit(reached)?;
        }
    }
}

/// `parent/name`, with "/" as the root.
pub fn child_path(parent: &str, name: impl std::fmt::Display) -> String {
    let separator = if parent.ends_with('/') { "" } else { "/" };
    format!("{parent}{separator}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_paths_join_once() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/a", "b"), "/a/b");
    }
}
