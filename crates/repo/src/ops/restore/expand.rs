//! The entries to restore, in path order (directories before their contents, siblings in
//! name order), a batch at a time: a depth-first walk that holds the trees of the current
//! path and nothing else, so memory does not grow with the number of files. Trees are read
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
use crate::tree::Tree;
use crate::Repository;

/// One directory on the current path: its listing and the next entry to emit.
struct Frame {
    dir: PathBuf,
    tree: Arc<Tree>,
    next: usize,
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
    root: Arc<Tree>,
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
        let root = Arc::new(blobs.read_tree_async(root).await?);
        Ok(Expander {
            blobs,
            include,
            exclude,
            stack: vec![Frame {
                dir: PathBuf::new(),
                tree: Arc::clone(&root),
                next: 0,
            }],
            held: Vec::new(),
            root,
        })
    }

    /// The root directory's listing (for `--delete` in the target itself).
    pub fn root(&self) -> &Arc<Tree> {
        &self.root
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
                self.stack.pop();
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
                (NodeKind::Dir, Some(sub)) => {
                    Some(Arc::new(self.blobs.read_tree_async(&sub).await?))
                }
                _ => None,
            };
            blobs += node.content.len();
            let selected = self
                .include
                .is_none_or(|set| matches_self_or_ancestor(set, &rel));
            if let Some(listing) = &listing {
                self.stack.push(Frame {
                    dir: rel.clone(),
                    tree: Arc::clone(listing),
                    next: 0,
                });
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
