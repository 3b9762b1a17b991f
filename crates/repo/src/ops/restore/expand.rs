//! The entries to restore, in path order (directories before their contents, siblings in
//! name order), a batch at a time: a depth-first walk that holds the trees of the current
//! path and nothing else (one part of each split directory on it), so memory grows neither
//! with the number of files nor with the size of one directory. Trees are read
//! through [`ReadAhead`], which fetches a tree's subtrees while the tree is expanded.
//!
//! Exclude patterns prune the walk (an excluded directory is not read). Include patterns
//! select entries and everything below them; a directory that is not selected itself is
//! held back until something below it is, and then emitted first, so exactly the
//! directories leading to selected entries are restored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_pack::BlobId;
use globset::GlobSet;

use super::{matches_self_or_ancestor, Item, NodeKind};
use crate::blobs::ReadAhead;
use crate::error::Result;
use crate::index::Index;
use crate::tree::{PartList, Tree, TreeBlob};
use crate::Repository;

/// A directory's listing as restore holds it: the whole tree, or a split directory's part
/// list (its parts are read one at a time).
#[derive(Clone)]
pub(super) enum Listing {
    Whole(Arc<Tree>),
    Split { id: BlobId, list: Arc<PartList> },
}

impl Listing {
    fn of(id: BlobId, blob: TreeBlob) -> Listing {
        match blob {
            TreeBlob::Nodes(tree) => Listing::Whole(Arc::new(tree)),
            TreeBlob::Parts(list) => Listing::Split {
                id,
                list: Arc::new(list),
            },
        }
    }
}

/// One directory on the current path: the listing (or part) being emitted, the next entry
/// in it, and for a split directory the parts still to read.
struct Frame {
    dir: PathBuf,
    tree: Arc<Tree>,
    next: usize,
    parts: Option<(BlobId, Arc<PartList>, usize)>,
}

impl Frame {
    fn new(dir: PathBuf, listing: &Listing) -> Frame {
        match listing {
            Listing::Whole(tree) => Frame {
                dir,
                tree: Arc::clone(tree),
                next: 0,
                parts: None,
            },
            Listing::Split { id, list } => Frame {
                dir,
                tree: Arc::new(Tree::default()),
                next: 0,
                parts: Some((*id, Arc::clone(list), 0)),
            },
        }
    }
}

/// Expands a snapshot's tree into [`Item`]s.
pub(super) struct Expander<'a> {
    blobs: ReadAhead,
    include: Option<&'a GlobSet>,
    exclude: Option<&'a GlobSet>,
    stack: Vec<Frame>,
    /// Directories not selected by the include patterns, on the current path, with their
    /// depth: emitted once an entry below them is selected.
    held: Vec<(usize, Item)>,
    root: Listing,
}

impl<'a> Expander<'a> {
    /// Starts at tree `root` (read here).
    pub async fn start(
        repo: &Repository,
        index: Arc<Index>,
        root: &BlobId,
        include: Option<&'a GlobSet>,
        exclude: Option<&'a GlobSet>,
    ) -> Result<Expander<'a>> {
        let blobs = ReadAhead::start(repo.clone(), index, repo.reads_in_flight());
        let root = Listing::of(*root, blobs.read_tree_blob_async(root).await?);
        Ok(Expander {
            blobs,
            include,
            exclude,
            stack: vec![Frame::new(PathBuf::new(), &root)],
            held: Vec::new(),
            root,
        })
    }

    /// The root directory's listing (for `--delete` in the target itself).
    pub fn root(&self) -> &Listing {
        &self.root
    }

    /// The reader the walk uses (for reading split listings' names for `--delete`).
    pub fn blobs(&self) -> &ReadAhead {
        &self.blobs
    }

    /// The next entries in path order: at least one unless the walk is done, and at most
    /// `max_items`, or fewer once they hold `max_blobs` content blobs.
    pub async fn next_batch(&mut self, max_items: usize, max_blobs: usize) -> Result<Vec<Item>> {
        let mut batch = Vec::new();
        let mut blobs = 0;
        while batch.len() < max_items && blobs < max_blobs {
            let depth = self.stack.len();
            let Some(frame) = self.stack.last_mut() else {
                break;
            };
            let Some(node) = frame.tree.nodes.get(frame.next) else {
                match &mut frame.parts {
                    Some((id, list, next_part)) if *next_part < list.parts.len() => {
                        let part = self.blobs.read_part_async(id, list, *next_part).await?;
                        *next_part += 1;
                        frame.tree = Arc::new(part);
                        frame.next = 0;
                    }
                    _ => {
                        self.stack.pop();
                    }
                }
                continue;
            };
            let (tree, index) = (Arc::clone(&frame.tree), frame.next);
            frame.next += 1;
            let rel = frame.dir.join(node.name.to_os());
            // Parents come first, so an excluded directory is left out with all below it.
            if self
                .exclude
                .is_some_and(|set| set.is_match(Path::new("/").join(&rel)))
            {
                continue;
            }
            let listing = match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(sub)) => Some(Listing::of(
                    sub,
                    self.blobs.read_tree_blob_async(&sub).await?,
                )),
                _ => None,
            };
            blobs += node.content.len();
            let selected = self
                .include
                .is_none_or(|set| matches_self_or_ancestor(set, &rel));
            if let Some(listing) = &listing {
                self.stack.push(Frame::new(rel.clone(), listing));
            }
            let item = Item {
                rel,
                tree,
                index,
                listing,
            };
            // Held directories deeper than this entry were siblings' (or theirs): done.
            while self.held.last().is_some_and(|(d, _)| *d >= depth) {
                self.held.pop();
            }
            if selected {
                batch.extend(self.held.drain(..).map(|(_, dir)| dir));
                batch.push(item);
            } else if item.listing.is_some() {
                self.held.push((depth, item));
            }
        }
        Ok(batch)
    }
}
