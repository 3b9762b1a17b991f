//! Tree blobs: one per directory, listing its entries (docs/format.md#trees).
//!
//! Encoding: compact JSON of [`Tree`], nodes sorted by the bytes of their names, fields in
//! declaration order and empty optional fields omitted, so equal directories encode to equal
//! bytes (and dedup to one blob). Decoding validates every rule writers follow; restore relies
//! on them (a name can never be `..` or contain `/`).

use cairn_pack::BlobId;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};

mod split;
pub use split::{
    Part, PartFacts, PartList, Splitter, StoreTree, TreeBlob, TreeWriter, MAX_PARTS, PART_MAX,
    PART_MIN, SINGLE_MAX,
};

/// A file name: arbitrary bytes except `/` and NUL. Serialized as a JSON string when it is
/// UTF-8, else as `{"hex": "…"}`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(pub Vec<u8>);

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NameRepr {
    Text(String),
    Raw { hex: String },
}

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => NameRepr::Text(text.to_string()),
            Err(_) => NameRepr::Raw {
                hex: hex::encode(&self.0),
            },
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        match NameRepr::deserialize(deserializer)? {
            NameRepr::Text(text) => Ok(Name(text.into_bytes())),
            NameRepr::Raw { hex } => {
                let bytes = hex::decode(hex).map_err(serde::de::Error::custom)?;
                if std::str::from_utf8(&bytes).is_ok() {
                    // Only one encoding per name, or equal trees could differ in bytes.
                    return Err(serde::de::Error::custom("hex-encoded name is valid UTF-8"));
                }
                Ok(Name(bytes))
            }
        }
    }
}

impl Name {
    /// From an OS file name.
    pub fn from_os(name: &std::ffi::OsStr) -> Name {
        use std::os::unix::ffi::OsStrExt;
        Name(name.as_bytes().to_vec())
    }

    /// As an OS file name.
    pub fn to_os(&self) -> &std::ffi::OsStr {
        use std::os::unix::ffi::OsStrExt;
        std::ffi::OsStr::from_bytes(&self.0)
    }

    /// Lossy text for display.
    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    fn is_valid_component(&self) -> bool {
        !self.0.is_empty()
            && self.0 != b"."
            && self.0 != b".."
            && !self.0.contains(&b'/')
            && !self.0.contains(&0)
    }
}

/// Arbitrary bytes as hex (xattr values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl Serialize for HexBytes {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        hex::decode(text)
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// What a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Block device.
    Dev,
    /// Character device.
    Chardev,
    /// Named pipe.
    Fifo,
}

/// One extended attribute.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Attribute name (e.g. `user.comment`).
    pub name: Name,
    /// Raw value.
    pub value: HexBytes,
}

/// One directory entry and its metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Entry name.
    pub name: Name,
    /// Entry kind.
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits and file type bits as `st_mode`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Owner's name when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    /// Group's name when known.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, ns since the Unix epoch.
    pub ctime_ns: i64,
    /// Size in bytes (files).
    #[serde(default)]
    pub size: u64,
    /// Inode number.
    #[serde(default)]
    pub inode: u64,
    /// Device of the containing file system.
    #[serde(default)]
    pub device: u64,
    /// Hard link count.
    #[serde(default)]
    pub links: u64,
    /// Device number (block and character devices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u64>,
    /// Link target (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_target: Option<Name>,
    /// Content blobs in order (files).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<BlobId>,
    /// Tree of the directory (dirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<BlobId>,
    /// Extended attributes, sorted by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<Xattr>,
}

impl Node {
    /// A node of `kind` named `name` that records nothing else: the kind's `st_mode` type
    /// bits with permissions 0755 (directories), 0777 (symlinks) or 0644, owner and group 0,
    /// times, size and link count zero (one link), no content, subtree, target or xattrs.
    /// Importers and tests that build trees in memory fill in the rest.
    pub fn new(name: impl Into<Vec<u8>>, kind: NodeKind) -> Node {
        let mode = match kind {
            NodeKind::File => 0o100644,
            NodeKind::Dir => 0o040755,
            NodeKind::Symlink => 0o120777,
            NodeKind::Dev => 0o060644,
            NodeKind::Chardev => 0o020644,
            NodeKind::Fifo => 0o010644,
        };
        Node {
            name: Name(name.into()),
            kind,
            mode,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            ctime_ns: 0,
            size: 0,
            inode: 0,
            device: 0,
            links: 1,
            rdev: None,
            link_target: None,
            content: Vec::new(),
            subtree: None,
            xattrs: Vec::new(),
        }
    }
}

/// One directory's listing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tree {
    /// Entries, strictly sorted by name bytes.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts the nodes and encodes deterministically.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] if two nodes share a name or a node breaks a rule.
    pub fn encode(mut self) -> Result<Vec<u8>> {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
        self.validate("new tree")
            .map_err(|e| RepoError::InvalidInput(e.to_string()))?;
        Ok(serde_json::to_vec(&self).expect("trees serialize"))
    }

    /// Decodes and validates a tree blob's plaintext that must be a listing (a split
    /// directory's part list is refused: read those with [`TreeBlob::decode`]).
    pub fn decode(bytes: &[u8], object: &str) -> Result<Tree> {
        match TreeBlob::decode(bytes, object)? {
            TreeBlob::Nodes(tree) => Ok(tree),
            TreeBlob::Parts(_) => Err(RepoError::corrupt(
                object,
                "is a split directory's part list where a listing was expected",
            )),
        }
    }

    fn validate(&self, object: &str) -> Result<()> {
        let bad = |reason: String| RepoError::corrupt(object, reason);
        for (i, node) in self.nodes.iter().enumerate() {
            if !node.name.is_valid_component() {
                return Err(bad(format!(
                    "node {i} has an invalid name {:?}",
                    node.name.display()
                )));
            }
            if i > 0 && self.nodes[i - 1].name >= node.name {
                return Err(bad(format!(
                    "node {:?} is out of order or duplicated",
                    node.name.display()
                )));
            }
            let ok = match node.kind {
                NodeKind::Dir => {
                    node.subtree.is_some() && node.content.is_empty() && node.link_target.is_none()
                }
                NodeKind::File => node.subtree.is_none() && node.link_target.is_none(),
                NodeKind::Symlink => {
                    node.link_target.is_some() && node.subtree.is_none() && node.content.is_empty()
                }
                NodeKind::Dev | NodeKind::Chardev => {
                    node.rdev.is_some() && node.subtree.is_none() && node.content.is_empty()
                }
                NodeKind::Fifo => node.subtree.is_none() && node.content.is_empty(),
            };
            if !ok {
                return Err(bad(format!(
                    "node {:?} has fields that do not fit a {:?}",
                    node.name.display(),
                    node.kind
                )));
            }
            if node.xattrs.windows(2).any(|w| w[0].name >= w[1].name) {
                return Err(bad(format!(
                    "node {:?} has unsorted or duplicate xattrs",
                    node.name.display()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn file_node(name: &[u8]) -> Node {
        Node {
            name: Name(name.to_vec()),
            kind: NodeKind::File,
            mode: 0o100644,
            uid: 1000,
            gid: 1000,
            user: "u".into(),
            group: String::new(),
            mtime_ns: 1,
            ctime_ns: 3,
            size: 5,
            inode: 9,
            device: 1,
            links: 1,
            rdev: None,
            link_target: None,
            content: vec![BlobId([7; 32])],
            subtree: None,
            xattrs: vec![Xattr {
                name: Name(b"user.a".to_vec()),
                value: HexBytes(vec![0, 255]),
            }],
        }
    }

    #[test]
    fn non_utf8_names_round_trip_and_order_is_canonical() {
        let tree = Tree {
            nodes: vec![file_node(b"z"), file_node(b"\xff\xfe"), file_node(b"a")],
        };
        let bytes = tree.clone().encode().unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("{\"hex\":\"fffe\"}"), "{text}");
        let decoded = Tree::decode(&bytes, "t").unwrap();
        let names: Vec<_> = decoded.nodes.iter().map(|n| n.name.0.clone()).collect();
        assert_eq!(
            names,
            vec![b"a".to_vec(), b"z".to_vec(), b"\xff\xfe".to_vec()]
        );
        assert_eq!(decoded.encode().unwrap(), bytes);
    }

    #[test]
    fn hostile_trees_are_rejected() {
        for name in [&b".."[..], b".", b"a/b", b"", b"a\0"] {
            let bytes = serde_json::to_vec(&Tree {
                nodes: vec![file_node(name)],
            })
            .unwrap();
            assert!(Tree::decode(&bytes, "t").is_err(), "{name:?}");
        }
        let dup = serde_json::to_vec(&Tree {
            nodes: vec![file_node(b"a"), file_node(b"a")],
        })
        .unwrap();
        assert!(Tree::decode(&dup, "t")
            .unwrap_err()
            .to_string()
            .contains("out of order"));
        let mut dir = file_node(b"d");
        dir.kind = NodeKind::Dir;
        let bytes = serde_json::to_vec(&Tree { nodes: vec![dir] }).unwrap();
        assert!(Tree::decode(&bytes, "t").is_err());
        assert!(Tree::decode(b"{\"nodes\":[{\"name\":{\"hex\":\"61\"}}]}", "t").is_err());
        assert!(Tree::decode(b"not json", "t").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(names in prop::collection::btree_set(prop::collection::vec(1u8..=255, 1..12), 0..10)) {
            let nodes: Vec<Node> = names
                .iter()
                .filter(|n| !n.contains(&b'/') && n.as_slice() != b"." && n.as_slice() != b"..")
                .map(|n| file_node(n))
                .collect();
            let tree = Tree { nodes };
            let bytes = tree.clone().encode().unwrap();
            prop_assert_eq!(Tree::decode(&bytes, "t").unwrap(), tree);
        }

        #[test]
        fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&bytes, "t");
        }
    }
}
