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

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use cairn_pack::BlobId;
use futures::stream::FuturesUnordered;
use futures::StreamExt;

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::tree::{PartFacts, PartList, Tree, TreeBlob};
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
    /// The tree, or why it could not be read (missing from the index, damaged, ...). For a
    /// split directory's part list this is an empty listing and [`Reached::parts`] names
    /// its parts; each part is reached as a tree of its own (at the same path), checked
    /// against the list that reached it. A part that another list names wrongly (another
    /// count or first name) is reached once more, with the error naming that list.
    pub tree: Result<Tree>,
    /// The parts of a split directory's part list, in order; empty for every other tree.
    pub parts: Vec<BlobId>,
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
    /// What each part read so far holds (count, first and last name: about 100 bytes per
    /// distinct part), so a part list naming a part read earlier is checked too.
    part_facts: HashMap<BlobId, PartFacts>,
    /// Parts queued or read as parts (a part can also be reached as a plain directory).
    read_as_part: HashSet<BlobId>,
    /// Claims about parts being read, checked when they arrive.
    claims: HashMap<BlobId, Vec<Claim>>,
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
            part_facts: HashMap::new(),
            read_as_part: HashSet::new(),
            claims: HashMap::new(),
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
        let mut queue: VecDeque<(usize, String, BlobId, Option<Claim>)> = VecDeque::new();
        for (root, id) in roots.into_iter().enumerate() {
            if self.seen.insert(self.index, id) {
                queue.push_back((root, "/".to_string(), id, None));
            }
        }
        let (repo, index, fallback) = (self.repo, self.index, self.fallback);
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < self.concurrency {
                let Some((root, path, id, claim)) = queue.pop_front() else {
                    break;
                };
                in_flight.push(async move {
                    let via = match fallback {
                        Some(fallback) if !index.contains(&id) => fallback,
                        _ => index,
                    };
                    let blob = repo.read_tree_blob(via, &id).await;
                    (root, path, id, claim, !std::ptr::eq(via, index), blob)
                });
            }
            let Some((root, path, id, claim, via_fallback, blob)) = in_flight.next().await else {
                return Ok(());
            };
            let mut refuted = Vec::new();
            let (tree, list) = match (blob, claim) {
                (Err(e), _) => (Err(e), None),
                (Ok(TreeBlob::Nodes(tree)), None) => (Ok(tree), None),
                (Ok(TreeBlob::Parts(list)), None) => (Ok(Tree::default()), Some(list)),
                (Ok(blob), Some(claim)) => {
                    let facts = match &blob {
                        TreeBlob::Nodes(tree) => Some(PartFacts::of(tree)),
                        TreeBlob::Parts(_) => None,
                    };
                    let tree = claim.list.check_part(claim.i, blob, &claim.name());
                    // Other lists that named this part while it was being read.
                    for other in self.claims.remove(&id).unwrap_or_default() {
                        let verdict = match &facts {
                            Some(facts) => other.list.check_facts(other.i, facts, &other.name()),
                            None => Err(RepoError::corrupt(
                                other.name(),
                                format!("part {}: tree {id} is itself a part list", other.i),
                            )),
                        };
                        if let Err(e) = verdict {
                            refuted.push(other.refuted(id, e));
                        }
                    }
                    if let Some(facts) = facts {
                        self.part_facts.insert(id, facts);
                    }
                    (tree, None)
                }
            };
            let reached = Reached {
                root,
                path,
                id,
                tree,
                parts: list
                    .as_ref()
                    .map(|l| l.parts.iter().map(|p| p.tree).collect())
                    .unwrap_or_default(),
                via_fallback,
            };
            if let Some(list) = list {
                let list = Arc::new(list);
                for (i, part) in list.parts.iter().enumerate() {
                    let claim = Claim {
                        list_id: reached.id,
                        list: Arc::clone(&list),
                        i,
                        root: reached.root,
                        path: reached.path.clone(),
                    };
                    let fresh = self.seen.insert(index, part.tree);
                    if let Some(facts) = self.part_facts.get(&part.tree) {
                        // Read as a part before: this list's claims are checked against it.
                        if let Err(e) = list.check_facts(i, facts, &claim.name()) {
                            refuted.push(claim.refuted(part.tree, e));
                        }
                    } else if !fresh && self.read_as_part.contains(&part.tree) {
                        // Being read as another list's part: checked when it arrives.
                        self.claims.entry(part.tree).or_default().push(claim);
                    } else {
                        // New, or met before as a directory of its own (a part can equal
                        // one): read as a part, checked against this list.
                        self.read_as_part.insert(part.tree);
                        queue.push_back((
                            reached.root,
                            reached.path.clone(),
                            part.tree,
                            Some(claim),
                        ));
                    }
                }
            }
            if let Ok(tree) = &reached.tree {
                for node in &tree.nodes {
                    if let Some(subtree) = node.subtree {
                        if self.seen.insert(index, subtree) {
                            let path = child_path(&reached.path, node.name.display());
                            queue.push_back((reached.root, path, subtree, None));
                        }
                    }
                }
            }
            visit(reached)?;
            for reached in refuted {
                visit(reached)?;
            }
        }
    }
}

/// A part list's claim about one of its parts, checked when the part is read (or against
/// what an earlier read of it found).
struct Claim {
    list_id: BlobId,
    list: Arc<PartList>,
    i: usize,
    root: usize,
    path: String,
}

impl Claim {
    fn name(&self) -> String {
        format!("tree {}", self.list_id)
    }

    /// The part as reached through this claim, which its content refutes.
    fn refuted(&self, part: BlobId, error: RepoError) -> Reached {
        Reached {
            root: self.root,
            path: self.path.clone(),
            id: part,
            tree: Err(error),
            parts: Vec::new(),
            via_fallback: false,
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
