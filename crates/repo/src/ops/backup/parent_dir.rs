//! The parent snapshot's listing of a directory being backed up, looked up by name: a whole
//! tree, or a split directory read one part at a time (names are asked in increasing
//! order, so each part is read once), so comparing against a directory of millions of
//! entries holds one part of it.

use cairn_pack::BlobId;

use crate::blobs::ReadAhead;
use crate::error::Result;
use crate::tree::{Name, Node, PartList, Tree, TreeBlob};

pub(crate) struct ParentDir {
    id: BlobId,
    listing: Listing,
}

enum Listing {
    Whole(Tree),
    Split {
        list: PartList,
        /// The part read last, by position.
        current: Option<(usize, Tree)>,
    },
}

impl ParentDir {
    /// Reads tree `id` (a part list's parts are read as lookups reach them).
    pub fn read(blobs: &ReadAhead, id: &BlobId) -> Result<ParentDir> {
        let listing = match blobs.read_tree_blob(id)? {
            TreeBlob::Nodes(tree) => Listing::Whole(tree),
            TreeBlob::Parts(list) => Listing::Split {
                list,
                current: None,
            },
        };
        Ok(ParentDir { id: *id, listing })
    }

    /// The parent's node named `name`, if it had one. Any order of names is answered;
    /// increasing order reads each part of a split directory once.
    ///
    /// # Errors
    /// A part that cannot be read or is not what the part list says.
    pub fn lookup(&mut self, blobs: &ReadAhead, name: &[u8]) -> Result<Option<Node>> {
        let tree = match &mut self.listing {
            Listing::Whole(tree) => &*tree,
            Listing::Split { list, current } => {
                let Some(i) = list.locate(&Name(name.to_vec())) else {
                    return Ok(None);
                };
                if current.as_ref().is_none_or(|(at, _)| *at != i) {
                    *current = Some((i, blobs.read_part(&self.id, list, i)?));
                }
                &current.as_ref().expect("part just read").1
            }
        };
        Ok(tree
            .nodes
            .binary_search_by(|n| n.name.0.as_slice().cmp(name))
            .ok()
            .map(|i| tree.nodes[i].clone()))
    }
}
