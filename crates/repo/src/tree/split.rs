//! Split trees: a directory of more than [`SINGLE_MAX`] entries stored as bounded parts and
//! a part list naming them (docs/format.md#split-trees-large-directories).
//!
//! Part boundaries are content-defined by a keyed hash of the names, so adding or removing
//! an entry rewrites one part and the list, not every part after it; readers hold one part
//! (at most [`PART_MAX`] nodes) at a time, whatever the directory's size.

use cairn_pack::BlobId;
use serde::{Deserialize, Serialize};

use super::{Name, Node, Tree};
use crate::error::{RepoError, Result};

/// A directory of at most this many entries is always one tree blob.
pub const SINGLE_MAX: usize = 4096;
/// A part ends at a name whose keyed hash hits only once it holds this many nodes...
pub const PART_MIN: usize = 512;
/// ...and always at this many.
pub const PART_MAX: usize = 8192;
/// A name ends a part when its keyed hash is 0 modulo this (parts of about 2 560 nodes).
const CUT_MODULUS: u64 = 2048;
/// Most parts a part list may name (8 G entries at most per directory).
pub const MAX_PARTS: usize = 1 << 20;
/// BLAKE3 `derive_key` context of the name-hash key (changing it changes every boundary).
const SPLIT_CONTEXT: &str = "cairn 2026-12 tree split";

/// One part as its list names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Name of the part's first node.
    pub first: Name,
    /// Number of nodes in the part.
    pub count: u64,
    /// The part's tree blob (`{"nodes":[…]}`).
    pub tree: BlobId,
}

/// A split directory's part list: its parts in name order. A decoded list has been
/// validated: at least two parts, at most [`MAX_PARTS`], first names valid and strictly
/// increasing, counts between 1 and [`PART_MAX`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartList {
    /// The parts, in name order.
    pub parts: Vec<Part>,
}

/// A tree blob as stored: a directory's listing, or the part list of a split directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeBlob {
    /// A whole listing (or one part of a split directory).
    Nodes(Tree),
    /// A split directory's part list.
    Parts(PartList),
}

/// The two shapes a tree blob's JSON may have; exactly one field must be present.
#[derive(Deserialize)]
struct RawTreeBlob {
    nodes: Option<Vec<Node>>,
    parts: Option<Vec<Part>>,
}

impl TreeBlob {
    /// Decodes and validates a tree blob's plaintext (either shape).
    ///
    /// # Errors
    /// `Corrupt` naming `object` if the JSON is invalid, has both or neither of `nodes` and
    /// `parts`, or breaks a rule of its shape.
    pub fn decode(bytes: &[u8], object: &str) -> Result<TreeBlob> {
        let raw: RawTreeBlob = serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(object, format!("invalid tree JSON: {e}")))?;
        match (raw.nodes, raw.parts) {
            (Some(nodes), None) => {
                let tree = Tree { nodes };
                tree.validate(object)?;
                Ok(TreeBlob::Nodes(tree))
            }
            (None, Some(parts)) => {
                let list = PartList { parts };
                list.validate(object)?;
                Ok(TreeBlob::Parts(list))
            }
            (Some(_), Some(_)) => Err(RepoError::corrupt(object, "tree has both nodes and parts")),
            (None, None) => Err(RepoError::corrupt(
                object,
                "tree has neither nodes nor parts",
            )),
        }
    }

    /// The subtrees and parts this blob names, in order (what a reader wants next).
    pub fn children(&self) -> Vec<BlobId> {
        match self {
            TreeBlob::Nodes(tree) => tree.nodes.iter().filter_map(|n| n.subtree).collect(),
            TreeBlob::Parts(list) => list.parts.iter().map(|p| p.tree).collect(),
        }
    }
}

impl PartList {
    fn validate(&self, object: &str) -> Result<()> {
        let bad = |reason: String| RepoError::corrupt(object, reason);
        if self.parts.len() < 2 {
            return Err(bad(format!(
                "part list has {} part(s); a split directory has at least two",
                self.parts.len()
            )));
        }
        if self.parts.len() > MAX_PARTS {
            return Err(bad(format!(
                "part list has {} parts, more than {MAX_PARTS}",
                self.parts.len()
            )));
        }
        for (i, part) in self.parts.iter().enumerate() {
            if !part.first.is_valid_component() {
                return Err(bad(format!(
                    "part {i} starts at an invalid name {:?}",
                    part.first.display()
                )));
            }
            if part.count == 0 || part.count > PART_MAX as u64 {
                return Err(bad(format!(
                    "part {i} claims {} nodes (a part holds 1 to {PART_MAX})",
                    part.count
                )));
            }
            if i > 0 && self.parts[i - 1].first >= part.first {
                return Err(bad(format!(
                    "part {i} starting at {:?} is out of order",
                    part.first.display()
                )));
            }
        }
        Ok(())
    }

    /// Checks that `part`, read as the `i`-th part of this list (named `list` in errors), is
    /// what the list says: a listing (not a part list) of `count` nodes starting at `first`,
    /// all before the next part's first name.
    ///
    /// # Errors
    /// `Corrupt` naming the part list.
    pub fn check_part(&self, i: usize, part: TreeBlob, list: &str) -> Result<Tree> {
        let TreeBlob::Nodes(tree) = part else {
            return Err(RepoError::corrupt(
                list,
                format!(
                    "part {i}: tree {} is itself a part list",
                    self.parts[i].tree
                ),
            ));
        };
        self.check_facts(i, &PartFacts::of(&tree), list)?;
        Ok(tree)
    }

    /// Checks what this list says of its `i`-th part against what that part holds.
    ///
    /// # Errors
    /// `Corrupt` naming the part list (`list`).
    pub fn check_facts(&self, i: usize, facts: &PartFacts, list: &str) -> Result<()> {
        let expected = &self.parts[i];
        let bad = |reason: String| {
            RepoError::corrupt(list, format!("part {i}: tree {} {reason}", expected.tree))
        };
        if facts.count != expected.count {
            return Err(bad(format!(
                "holds {} nodes, the list says {}",
                facts.count, expected.count
            )));
        }
        if facts.first.as_ref() != Some(&expected.first) {
            return Err(bad(format!(
                "starts at {:?}, the list says {:?}",
                facts.first.as_ref().map(Name::display).unwrap_or_default(),
                expected.first.display()
            )));
        }
        if let (Some(next), Some(last)) = (self.parts.get(i + 1), &facts.last) {
            if *last >= next.first {
                return Err(bad(format!(
                    "reaches into the next part ({:?})",
                    last.display()
                )));
            }
        }
        Ok(())
    }

    /// The part that holds `name` if the directory has it (the last part starting at or
    /// before it), or `None` if `name` sorts before every part.
    pub fn locate(&self, name: &Name) -> Option<usize> {
        self.parts
            .partition_point(|p| p.first <= *name)
            .checked_sub(1)
    }

    /// Number of entries in the directory.
    pub fn entries(&self) -> u64 {
        self.parts.iter().map(|p| p.count).sum()
    }

    /// Encodes deterministically (compact JSON, fields in declaration order).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("part lists serialize")
    }
}

/// What a part list's claims about a part are checked against: its node count and its
/// first and last names (kept by walks that meet one part through several lists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartFacts {
    /// Number of nodes.
    pub count: u64,
    /// First node's name.
    pub first: Option<Name>,
    /// Last node's name.
    pub last: Option<Name>,
}

impl PartFacts {
    /// The facts of `tree`.
    pub fn of(tree: &Tree) -> PartFacts {
        PartFacts {
            count: tree.nodes.len() as u64,
            first: tree.nodes.first().map(|n| n.name.clone()),
            last: tree.nodes.last().map(|n| n.name.clone()),
        }
    }
}

/// Decides where parts end: holds the repository's name-hash key.
#[derive(Clone)]
pub struct Splitter {
    key: zeroize::Zeroizing<[u8; 32]>,
}

impl Splitter {
    /// The splitter of the repository whose data key is `data_key`.
    pub fn new(data_key: &[u8; 32]) -> Splitter {
        Splitter {
            key: zeroize::Zeroizing::new(blake3::derive_key(SPLIT_CONTEXT, data_key)),
        }
    }

    /// True if a part holding `len` nodes, the last named `name`, ends there.
    pub fn ends_part(&self, name: &Name, len: usize) -> bool {
        if len >= PART_MAX {
            return true;
        }
        if len < PART_MIN {
            return false;
        }
        let hash = blake3::keyed_hash(&self.key, &name.0);
        let low = u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"));
        low % CUT_MODULUS == 0
    }
}

/// Stores one encoded tree blob and returns its id.
pub type StoreTree<'a> = dyn FnMut(&[u8]) -> Result<BlobId> + 'a;

/// Writes one directory from its nodes, given in strictly increasing name order: as one tree
/// blob, or as parts and a part list once it has more than [`SINGLE_MAX`] entries. Holds at
/// most [`SINGLE_MAX`] + [`PART_MAX`] nodes, whatever the directory's size.
pub struct TreeWriter<'s> {
    splitter: &'s Splitter,
    /// Completed parts not yet stored (while the directory might still be one tree).
    held: Vec<Vec<Node>>,
    /// The part being filled.
    pending: Vec<Node>,
    /// Parts stored so far.
    stored: Vec<Part>,
    total: usize,
    last: Option<Name>,
    blobs_written: u64,
}

impl<'s> TreeWriter<'s> {
    /// A writer cutting with `splitter`.
    pub fn new(splitter: &'s Splitter) -> TreeWriter<'s> {
        TreeWriter {
            splitter,
            held: Vec::new(),
            pending: Vec::new(),
            stored: Vec::new(),
            total: 0,
            last: None,
            blobs_written: 0,
        }
    }

    /// Adds the next node; may store a part through `store`.
    ///
    /// # Errors
    /// `InvalidInput` if the node does not sort after the previous one or breaks a rule of
    /// trees; errors of `store`.
    pub fn push(&mut self, node: Node, store: &mut StoreTree<'_>) -> Result<()> {
        if self.last.as_ref().is_some_and(|last| *last >= node.name) {
            return Err(RepoError::InvalidInput(format!(
                "tree node {:?} is out of order or duplicated",
                node.name.display()
            )));
        }
        self.last = Some(node.name.clone());
        self.total += 1;
        self.pending.push(node);
        let name = &self.pending[self.pending.len() - 1].name;
        if self.splitter.ends_part(name, self.pending.len()) {
            self.held.push(std::mem::take(&mut self.pending));
        }
        if self.total > SINGLE_MAX {
            for part in std::mem::take(&mut self.held) {
                self.store_part(part, store)?;
            }
        }
        Ok(())
    }

    fn store_part(&mut self, nodes: Vec<Node>, store: &mut StoreTree<'_>) -> Result<()> {
        let first = nodes[0].name.clone();
        let count = nodes.len() as u64;
        let tree = store(&Tree { nodes }.encode()?)?;
        self.blobs_written += 1;
        self.stored.push(Part { first, count, tree });
        Ok(())
    }

    /// Stores what is left and returns the directory's tree id (a part list's when it was
    /// split) and how many tree blobs were stored for it.
    ///
    /// # Errors
    /// As [`TreeWriter::push`].
    pub fn finish(mut self, store: &mut StoreTree<'_>) -> Result<(BlobId, u64)> {
        if self.total <= SINGLE_MAX {
            let mut nodes: Vec<Node> = self.held.into_iter().flatten().collect();
            nodes.append(&mut self.pending);
            let id = store(&Tree { nodes }.encode()?)?;
            return Ok((id, 1));
        }
        if !self.pending.is_empty() {
            let last = std::mem::take(&mut self.pending);
            self.store_part(last, store)?;
        }
        if self.stored.len() == 1 {
            // One part is the whole directory: its blob is the directory's single tree.
            return Ok((self.stored[0].tree, self.blobs_written));
        }
        let list = PartList { parts: self.stored };
        let id = store(&list.encode())?;
        Ok((id, self.blobs_written + 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::tests::file_node;
    use std::collections::HashMap;

    fn write(
        splitter: &Splitter,
        names: impl IntoIterator<Item = Vec<u8>>,
    ) -> (BlobId, HashMap<BlobId, Vec<u8>>) {
        let mut blobs = HashMap::new();
        let mut store = |bytes: &[u8]| {
            let id = BlobId(*blake3::hash(bytes).as_bytes());
            blobs.insert(id, bytes.to_vec());
            Ok(id)
        };
        let mut writer = TreeWriter::new(splitter);
        for name in names {
            writer.push(file_node(&name), &mut store).unwrap();
        }
        let (root, _) = writer.finish(&mut store).unwrap();
        (root, blobs)
    }

    fn read_all(root: &BlobId, blobs: &HashMap<BlobId, Vec<u8>>) -> Vec<Node> {
        match TreeBlob::decode(&blobs[root], "root").unwrap() {
            TreeBlob::Nodes(tree) => tree.nodes,
            TreeBlob::Parts(list) => (0..list.parts.len())
                .flat_map(|i| {
                    let part = TreeBlob::decode(&blobs[&list.parts[i].tree], "part").unwrap();
                    list.check_part(i, part, "list").unwrap().nodes
                })
                .collect(),
        }
    }

    fn names(n: usize, salt: &str) -> Vec<Vec<u8>> {
        let mut names: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("{salt}{i:08}").into_bytes())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn small_directories_are_one_tree_and_large_ones_split_and_read_back() {
        let splitter = Splitter::new(&[3; 32]);
        let (root, blobs) = write(&splitter, names(SINGLE_MAX, "f"));
        assert!(matches!(
            TreeBlob::decode(&blobs[&root], "r").unwrap(),
            TreeBlob::Nodes(_)
        ));
        let all = names(50_000, "f");
        let (root, blobs) = write(&splitter, all.clone());
        let TreeBlob::Parts(list) = TreeBlob::decode(&blobs[&root], "r").unwrap() else {
            panic!("50 000 entries are split")
        };
        assert!(list.parts.len() > 2);
        assert!(list.parts.iter().all(|p| p.count as usize <= PART_MAX));
        assert_eq!(list.entries(), 50_000);
        let read: Vec<Vec<u8>> = read_all(&root, &blobs)
            .into_iter()
            .map(|n| n.name.0)
            .collect();
        assert_eq!(read, all);
        // Every name is found in the part that holds it.
        for (i, part) in list.parts.iter().enumerate() {
            assert_eq!(list.locate(&part.first), Some(i));
        }
        assert_eq!(list.locate(&Name(b"a".to_vec())), None);
    }

    #[test]
    fn inserting_one_entry_rewrites_one_part() {
        let splitter = Splitter::new(&[9; 32]);
        let before = names(40_000, "n");
        let mut after = before.clone();
        after.push(b"n00020000x".to_vec());
        after.sort();
        let parts = |names: Vec<Vec<u8>>| {
            let (root, blobs) = write(&splitter, names);
            let TreeBlob::Parts(list) = TreeBlob::decode(&blobs[&root], "r").unwrap() else {
                panic!("split")
            };
            list.parts
                .into_iter()
                .map(|p| p.tree)
                .collect::<std::collections::HashSet<_>>()
        };
        let (old, new) = (parts(before), parts(after));
        assert_eq!(new.difference(&old).count(), 1);
    }

    #[test]
    fn hostile_part_lists_are_rejected() {
        let id = BlobId([1; 32]);
        let part = |first: &str, count: u64| Part {
            first: Name(first.as_bytes().to_vec()),
            count,
            tree: id,
        };
        let decode = |parts: Vec<Part>| TreeBlob::decode(&PartList { parts }.encode(), "list");
        assert!(decode(vec![]).is_err());
        assert!(decode(vec![part("a", 1)]).is_err());
        assert!(decode(vec![part("b", 1), part("a", 1)]).is_err());
        assert!(decode(vec![part("a", 1), part("a", 1)]).is_err());
        assert!(decode(vec![part("a", 0), part("b", 1)]).is_err());
        assert!(decode(vec![part("a", PART_MAX as u64 + 1), part("b", 1)]).is_err());
        assert!(decode(vec![part("..", 1), part("b", 1)]).is_err());
        assert!(decode(vec![part("a", 1), part("b", 1)]).is_ok());
        assert!(TreeBlob::decode(b"{\"nodes\":[],\"parts\":[]}", "t").is_err());
        assert!(TreeBlob::decode(b"{}", "t").is_err());

        // A part that is not what the list says is refused.
        let list = PartList {
            parts: vec![part("a", 2), part("c", 1)],
        };
        let tree = |names: &[&[u8]]| {
            TreeBlob::Nodes(Tree {
                nodes: names.iter().map(|n| file_node(n)).collect(),
            })
        };
        assert!(list.check_part(0, tree(&[b"a", b"b"]), "l").is_ok());
        assert!(list.check_part(0, tree(&[b"a"]), "l").is_err());
        assert!(list.check_part(0, tree(&[b"a0", b"b"]), "l").is_err());
        assert!(list.check_part(0, tree(&[b"a", b"d"]), "l").is_err());
        assert!(list
            .check_part(0, TreeBlob::Parts(list.clone()), "l")
            .is_err());
    }

    #[test]
    fn writer_refuses_unordered_nodes() {
        let splitter = Splitter::new(&[0; 32]);
        let mut writer = TreeWriter::new(&splitter);
        let mut store = |_: &[u8]| Ok(BlobId([0; 32]));
        writer.push(file_node(b"b"), &mut store).unwrap();
        assert!(writer.push(file_node(b"a"), &mut store).is_err());
        assert!(writer.push(file_node(b"b"), &mut store).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn any_directory_reads_back_as_written(count in 0usize..30_000, salt in "[a-z]{0,3}") {
            let splitter = Splitter::new(&[5; 32]);
            let all = names(count, &salt);
            let (root, blobs) = write(&splitter, all.clone());
            let read: Vec<Vec<u8>> = read_all(&root, &blobs).into_iter().map(|n| n.name.0).collect();
            proptest::prop_assert_eq!(read, all);
        }

        #[test]
        fn arbitrary_bytes_do_not_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = TreeBlob::decode(&bytes, "t");
        }
    }
}
