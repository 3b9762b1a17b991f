//! restic's JSON: config, index files, snapshots and trees, and how a restic tree node
//! becomes a cairn node.

use std::collections::HashMap;

use base64::Engine;
use chrono::{DateTime, FixedOffset};
use serde::Deserialize;

use crate::error::{RepoError, Result};
use crate::tree::{HexBytes, Name, Node, NodeKind, Xattr};

/// A restic id: SHA-256, 64 hex digits in JSON.
pub type ResticId = [u8; 32];

fn id_field<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<ResticId, D::Error> {
    let text = String::deserialize(d)?;
    let mut id = [0u8; 32];
    hex::decode_to_slice(&text, &mut id).map_err(serde::de::Error::custom)?;
    Ok(id)
}

fn id_list<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<ResticId>, D::Error> {
    let texts = Option::<Vec<String>>::deserialize(d)?.unwrap_or_default();
    texts
        .iter()
        .map(|text| {
            let mut id = [0u8; 32];
            hex::decode_to_slice(text, &mut id).map_err(serde::de::Error::custom)?;
            Ok(id)
        })
        .collect()
}

fn opt_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<ResticId>, D::Error> {
    match Option::<String>::deserialize(d)? {
        None => Ok(None),
        Some(text) => {
            let mut id = [0u8; 32];
            hex::decode_to_slice(&text, &mut id).map_err(serde::de::Error::custom)?;
            Ok(Some(id))
        }
    }
}

/// The repository config.
#[derive(Debug, Deserialize)]
pub struct Config {
    /// Format version: 1 (no compression) or 2.
    pub version: u32,
}

/// Where a blob is: its pack, offset and stored length, and its length before compression
/// (0: not compressed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Located {
    /// restic's `pack`.
    pub pack: ResticId,
    /// restic's `offset`.
    pub offset: u32,
    /// restic's `length`.
    pub length: u32,
    /// restic's `uncompressed`.
    pub uncompressed: u32,
    /// restic's `tree`.
    pub tree: bool,
}

#[derive(Deserialize)]
struct IndexJson {
    packs: Vec<IndexPack>,
}

#[derive(Deserialize)]
struct IndexPack {
    #[serde(deserialize_with = "id_field")]
    id: ResticId,
    blobs: Vec<IndexBlob>,
}

#[derive(Deserialize)]
struct IndexBlob {
    #[serde(deserialize_with = "id_field")]
    id: ResticId,
    #[serde(rename = "type")]
    kind: String,
    offset: u32,
    length: u32,
    #[serde(default)]
    uncompressed_length: u32,
}

/// Adds the blobs of an index file's JSON to `into`.
pub fn read_index(json: &[u8], object: &str, into: &mut HashMap<ResticId, Located>) -> Result<()> {
    let index: IndexJson = serde_json::from_slice(json)
        .map_err(|e| RepoError::corrupt(object, format!("invalid index JSON: {e}")))?;
    for pack in index.packs {
        for blob in pack.blobs {
            let tree = match blob.kind.as_str() {
                "tree" => true,
                "data" => false,
                other => {
                    return Err(RepoError::corrupt(
                        object,
                        format!("blob of unknown type {other:?}"),
                    ))
                }
            };
            into.insert(
                blob.id,
                Located {
                    pack: pack.id,
                    offset: blob.offset,
                    length: blob.length,
                    uncompressed: blob.uncompressed_length,
                    tree,
                },
            );
        }
    }
    Ok(())
}

/// A snapshot.
#[derive(Clone, Debug, Deserialize)]
pub struct ResticSnapshot {
    /// restic's `time`.
    pub time: DateTime<FixedOffset>,
    /// restic's `tree`.
    #[serde(deserialize_with = "id_field")]
    pub tree: ResticId,
    /// restic's `paths`.
    pub paths: Vec<String>,
    /// restic's `hostname`.
    #[serde(default)]
    pub hostname: String,
    /// restic's `username`.
    #[serde(default)]
    pub username: String,
    /// restic's `uid`.
    #[serde(default)]
    pub uid: u32,
    /// restic's `gid`.
    #[serde(default)]
    pub gid: u32,
    /// restic's `excludes`.
    #[serde(default)]
    pub excludes: Vec<String>,
    /// restic's `tags`.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A tree.
#[derive(Debug, Deserialize)]
pub struct ResticTree {
    /// restic's `nodes`.
    pub nodes: Vec<ResticNode>,
}

/// An extended attribute of a node.
#[derive(Debug, Deserialize)]
pub struct ResticXattr {
    /// restic's `name`.
    pub name: String,
    /// base64 (Go's []byte).
    pub value: Option<String>,
}

/// A tree node, with restic's field names.
#[derive(Debug, Deserialize)]
pub struct ResticNode {
    /// restic's `name`.
    pub name: String,
    /// restic's `kind`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Go's os.FileMode: permissions, and type and special bits high.
    #[serde(default)]
    pub mode: u32,
    /// restic's `mtime`.
    pub mtime: Option<DateTime<FixedOffset>>,
    /// restic's `ctime`.
    pub ctime: Option<DateTime<FixedOffset>>,
    /// restic's `uid`.
    #[serde(default)]
    pub uid: u32,
    /// restic's `gid`.
    #[serde(default)]
    pub gid: u32,
    /// restic's `user`.
    #[serde(default)]
    pub user: String,
    /// restic's `group`.
    #[serde(default)]
    pub group: String,
    /// restic's `inode`.
    #[serde(default)]
    pub inode: u64,
    /// restic's `device_id`.
    #[serde(default)]
    pub device_id: u64,
    /// restic's `size`.
    #[serde(default)]
    pub size: u64,
    /// restic's `links`.
    #[serde(default)]
    pub links: u64,
    /// restic's `linktarget`.
    #[serde(default)]
    pub linktarget: Option<String>,
    /// The link target's bytes when they are not UTF-8 (base64).
    #[serde(default)]
    pub linktarget_raw: Option<String>,
    /// restic's `extended_attributes`.
    #[serde(default)]
    pub extended_attributes: Option<Vec<ResticXattr>>,
    /// st_rdev of devices.
    #[serde(default)]
    pub device: u64,
    /// restic's `content`.
    #[serde(default, deserialize_with = "id_list")]
    pub content: Vec<ResticId>,
    /// restic's `subtree`.
    #[serde(default, deserialize_with = "opt_id")]
    pub subtree: Option<ResticId>,
}

/// Parses a tree blob's JSON.
pub fn read_tree(json: &[u8], object: &str) -> Result<ResticTree> {
    serde_json::from_slice(json)
        .map_err(|e| RepoError::corrupt(object, format!("invalid tree JSON: {e}")))
}

// Go's os.FileMode bits.
const GO_SETUID: u32 = 1 << 23;
const GO_SETGID: u32 = 1 << 22;
const GO_STICKY: u32 = 1 << 20;

fn ns(time: Option<DateTime<FixedOffset>>) -> i64 {
    time.and_then(|t| t.timestamp_nanos_opt()).unwrap_or(0)
}

impl ResticNode {
    /// The cairn node for this one, without content or subtree (the importer fills those
    /// in); `None` for what cairn does not store (sockets, restic's "irregular" files).
    ///
    /// # Errors
    /// `Corrupt` for an unknown type or undecodable fields.
    pub fn to_node(&self, object: &str) -> Result<Option<Node>> {
        let (kind, type_bits) = match self.kind.as_str() {
            "file" => (NodeKind::File, 0o100000),
            "dir" => (NodeKind::Dir, 0o040000),
            "symlink" => (NodeKind::Symlink, 0o120000),
            "dev" => (NodeKind::Dev, 0o060000),
            "chardev" => (NodeKind::Chardev, 0o020000),
            "fifo" => (NodeKind::Fifo, 0o010000),
            "socket" | "irregular" => return Ok(None),
            other => {
                return Err(RepoError::corrupt(
                    object,
                    format!("node {:?} has unknown type {other:?}", self.name),
                ))
            }
        };
        let mut special = 0;
        if self.mode & GO_SETUID != 0 {
            special |= 0o4000;
        }
        if self.mode & GO_SETGID != 0 {
            special |= 0o2000;
        }
        if self.mode & GO_STICKY != 0 {
            special |= 0o1000;
        }
        let mut node = Node::new(self.name.as_bytes().to_vec(), kind);
        node.mode = type_bits | special | (self.mode & 0o777);
        node.uid = self.uid;
        node.gid = self.gid;
        node.user = self.user.clone();
        node.group = self.group.clone();
        node.mtime_ns = ns(self.mtime);
        node.ctime_ns = ns(self.ctime);
        node.size = if kind == NodeKind::File { self.size } else { 0 };
        node.inode = self.inode;
        node.device = self.device_id;
        node.links = self.links.max(1);
        let engine = base64::engine::general_purpose::STANDARD;
        if kind == NodeKind::Symlink {
            let target = match &self.linktarget_raw {
                Some(raw) => engine.decode(raw).map_err(|e| {
                    RepoError::corrupt(object, format!("node {:?}: linktarget_raw: {e}", self.name))
                })?,
                None => self.linktarget.clone().unwrap_or_default().into_bytes(),
            };
            node.link_target = Some(Name(target));
        }
        if matches!(kind, NodeKind::Dev | NodeKind::Chardev) {
            node.rdev = Some(self.device);
        }
        let mut xattrs = Vec::new();
        for xattr in self.extended_attributes.iter().flatten() {
            let value = match &xattr.value {
                Some(v) => engine.decode(v).map_err(|e| {
                    RepoError::corrupt(object, format!("node {:?}: xattr value: {e}", self.name))
                })?,
                None => Vec::new(),
            };
            xattrs.push(Xattr {
                name: Name(xattr.name.as_bytes().to_vec()),
                value: HexBytes(value),
            });
        }
        xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        xattrs.dedup_by(|a, b| a.name == b.name);
        node.xattrs = xattrs;
        Ok(Some(node))
    }
}

/// The plaintext of an "unpacked" file (index, snapshot, config): in format 2 a leading 2
/// means zstd follows; JSON otherwise.
pub fn unpack(plain: Vec<u8>, object: &str) -> Result<Vec<u8>> {
    match plain.first() {
        Some(2) => decompress(&plain[1..], MAX_UNPACKED, object),
        _ => Ok(plain),
    }
}

/// Largest decompressed metadata file accepted.
const MAX_UNPACKED: usize = 1 << 30;

pub(crate) fn decompress(data: &[u8], limit: usize, object: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(data)
        .map_err(|e| RepoError::corrupt(object, format!("zstd: {e}")))?;
    std::io::Read::read_to_end(
        &mut std::io::Read::take(decoder, limit as u64 + 1),
        &mut out,
    )
    .map_err(|e| RepoError::corrupt(object, format!("zstd: {e}")))?;
    if out.len() > limit {
        return Err(RepoError::corrupt(
            object,
            format!("decompresses to more than {limit} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_nodes_become_cairn_nodes() {
        let json = br#"{"nodes":[
          {"name":"f","type":"file","mode":8389101,"mtime":"2026-01-02T03:04:05.5+01:00",
           "ctime":"2026-01-02T03:04:05+01:00","uid":1,"gid":2,"user":"u","inode":7,
           "device_id":3,"size":5,"links":2,"content":["0000000000000000000000000000000000000000000000000000000000000001"],
           "extended_attributes":[{"name":"user.b","value":"eA=="},{"name":"user.a","value":null}]},
          {"name":"l","type":"symlink","mode":134218239,"linktarget":"f"},
          {"name":"s","type":"socket","mode":0},
          {"name":"d","type":"dev","mode":67109280,"device":2049}
        ]}"#;
        let tree = read_tree(json, "t").unwrap();
        let f = tree.nodes[0].to_node("t").unwrap().unwrap();
        // 8389101 = setuid | 0o755.
        assert_eq!(f.mode, 0o104755);
        assert_eq!(f.mtime_ns % 1_000_000_000, 500_000_000);
        assert_eq!((f.size, f.links, f.inode, f.device), (5, 2, 7, 3));
        assert_eq!(f.xattrs[0].name.0, b"user.a");
        assert_eq!(f.xattrs[1].value.0, b"x");
        let l = tree.nodes[1].to_node("t").unwrap().unwrap();
        assert_eq!(l.mode & 0o170000, 0o120000);
        assert_eq!(l.link_target.unwrap().0, b"f");
        assert!(tree.nodes[2].to_node("t").unwrap().is_none());
        let d = tree.nodes[3].to_node("t").unwrap().unwrap();
        assert_eq!(d.rdev, Some(2049));
    }

    #[test]
    fn unpacked_files_may_be_compressed() {
        let json = b"{\"version\":2}".to_vec();
        let mut packed = vec![2];
        packed.extend(zstd::encode_all(&json[..], 3).unwrap());
        assert_eq!(unpack(packed, "o").unwrap(), json);
        assert_eq!(unpack(json.clone(), "o").unwrap(), json);
        assert!(unpack(vec![2, 1, 2, 3], "o").is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_json_does_not_panic(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut into = HashMap::new();
            let _ = read_index(&data, "i", &mut into);
            if let Ok(tree) = read_tree(&data, "t") {
                for node in &tree.nodes {
                    let _ = node.to_node("t");
                }
            }
            let _ = unpack(data, "u");
        }
    }
}
