//! Reading restic repositories (format versions 1 and 2), for importing their snapshots:
//! key files (scrypt), encryption (AES-256-CTR with Poly1305-AES), the index, snapshots,
//! trees and blobs (zstd-compressed in version 2), from restic's own design document.
//!
//! A restic repository is untrusted input like any other: every file and blob is
//! authenticated before it is parsed, every blob's content is checked against its SHA-256
//! id, and every file against its name (restic names files by the hash of their bytes).
//! restic's layout (`config`, `keys/`, `index/`, `snapshots/`, `data/xx/`) is cairn's, so the
//! same [`Storage`] reads it on every backend.

mod crypto;
mod format;

use std::collections::HashMap;

use sha2::{Digest, Sha256};

pub use crypto::{parse_key_file, unlock as unlock_key, KeyFile, ResticKey};
pub use format::{ResticId, ResticNode, ResticSnapshot, ResticTree};

use crate::error::{RepoError, Result};
use crate::storage::{FileType, Storage};
use format::Located;

/// Largest decompressed blob accepted (restic's chunks are at most 8 MiB; trees can be
/// larger, but not this large).
const MAX_BLOB: usize = 512 << 20;

/// An opened restic repository.
pub struct ResticRepo {
    storage: Storage,
    key: ResticKey,
    /// Format version (1 or 2).
    pub version: u32,
    index: HashMap<ResticId, Located>,
}

/// One of the repository's snapshots, with its id (the hash naming its file).
#[derive(Clone, Debug)]
pub struct ResticEntry {
    /// Its id, 64 hex digits.
    pub id: String,
    /// The snapshot.
    pub snapshot: ResticSnapshot,
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// True when `storage` holds a restic repository: its key files are restic's (plain JSON
/// with scrypt parameters; cairn's are not). Read without a password.
pub async fn is_restic(storage: &Storage) -> Result<bool> {
    for key in storage.list(FileType::Key).await? {
        let bytes = storage.get(FileType::Key, &key.name).await?;
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            if value.get("kdf").and_then(|k| k.as_str()) == Some("scrypt") {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

impl ResticRepo {
    /// Opens the repository at `storage` with `password` and loads its index.
    ///
    /// # Errors
    /// `WrongPassword` if no key file opens with it; `Corrupt` naming the object for
    /// damaged or hostile data; storage errors.
    pub async fn open(storage: Storage, password: &[u8]) -> Result<ResticRepo> {
        let mut key = None;
        let mut tried = 0;
        for listed in storage.list(FileType::Key).await? {
            tried += 1;
            let object = format!("restic key {}", listed.name);
            let bytes = storage.get(FileType::Key, &listed.name).await?;
            let file = parse_key_file(&bytes, &object)?;
            let password = password.to_vec();
            // scrypt is deliberately slow: off the async threads.
            let unlocked =
                tokio::task::spawn_blocking(move || crypto::unlock(&file, &password, &object))
                    .await
                    .map_err(RepoError::task("restic key"))??;
            if let Some(found) = unlocked {
                key = Some(found);
                break;
            }
        }
        let key = key.ok_or_else(|| RepoError::WrongPassword {
            location: storage.location().to_string(),
            detail: format!("; {tried} restic key file(s) tried"),
        })?;
        let config_bytes = storage.get(FileType::Config, "").await?;
        let config: format::Config = serde_json::from_slice(&format::unpack(
            key.open(&config_bytes, "restic config")?,
            "restic config",
        )?)
        .map_err(|e| RepoError::corrupt("restic config", format!("invalid JSON: {e}")))?;
        if !matches!(config.version, 1 | 2) {
            return Err(RepoError::corrupt(
                "restic config",
                format!("format version {} is not 1 or 2", config.version),
            ));
        }
        let mut repo = ResticRepo {
            storage,
            key,
            version: config.version,
            index: HashMap::new(),
        };
        repo.load_index().await?;
        Ok(repo)
    }

    /// Reads a named file (index, snapshot): checked against its name, authenticated,
    /// decrypted and unpacked.
    async fn read_file(&self, file_type: FileType, name: &str, object: &str) -> Result<Vec<u8>> {
        let bytes = self.storage.get(file_type, name).await?;
        if hex::encode(sha256(&bytes)) != name {
            return Err(RepoError::corrupt(
                object,
                "its content does not hash to its name",
            ));
        }
        format::unpack(self.key.open(&bytes, object)?, object)
    }

    async fn load_index(&mut self) -> Result<()> {
        for listed in self.storage.list(FileType::Index).await? {
            let object = format!("restic index {}", listed.name);
            let json = self
                .read_file(FileType::Index, &listed.name, &object)
                .await?;
            format::read_index(&json, &object, &mut self.index)?;
        }
        Ok(())
    }

    /// Every snapshot, oldest first.
    ///
    /// # Errors
    /// As [`ResticRepo::open`].
    pub async fn snapshots(&self) -> Result<Vec<ResticEntry>> {
        let mut out = Vec::new();
        for listed in self.storage.list(FileType::Snapshot).await? {
            let object = format!("restic snapshot {}", listed.name);
            let json = self
                .read_file(FileType::Snapshot, &listed.name, &object)
                .await?;
            let snapshot: ResticSnapshot = serde_json::from_slice(&json)
                .map_err(|e| RepoError::corrupt(&object, format!("invalid JSON: {e}")))?;
            out.push(ResticEntry {
                id: listed.name,
                snapshot,
            });
        }
        out.sort_by(|a, b| (a.snapshot.time, &a.id).cmp(&(b.snapshot.time, &b.id)));
        Ok(out)
    }

    /// Reads one blob's plaintext, checked against its id.
    ///
    /// # Errors
    /// `MissingObject` if the index lacks it; `Corrupt` naming the blob and its pack if it
    /// does not authenticate, decompress or hash to its id.
    pub async fn read_blob(&self, id: &ResticId, tree: bool) -> Result<Vec<u8>> {
        let kind = if tree { "tree" } else { "data" };
        let located = self
            .index
            .get(id)
            .filter(|l| l.tree == tree)
            .ok_or_else(|| RepoError::MissingObject {
                object: format!("restic {kind} blob {}", hex::encode(id)),
            })?;
        let pack = hex::encode(located.pack);
        let object = format!("restic {kind} blob {} in pack {pack}", hex::encode(id));
        let start = u64::from(located.offset);
        let sealed = self
            .storage
            .get_range(
                FileType::Pack,
                &pack,
                start..start + u64::from(located.length),
            )
            .await?;
        let plain = self.key.open(&sealed, &object)?;
        let plain = if located.uncompressed > 0 {
            let limit = (located.uncompressed as usize).min(MAX_BLOB);
            let out = format::decompress(&plain, limit, &object)?;
            if out.len() != located.uncompressed as usize {
                return Err(RepoError::corrupt(
                    &object,
                    "decompresses to another length than the index says",
                ));
            }
            out
        } else {
            plain
        };
        if sha256(&plain) != *id {
            return Err(RepoError::corrupt(
                &object,
                "its content does not hash to its id",
            ));
        }
        Ok(plain)
    }

    /// Reads and parses one tree.
    ///
    /// # Errors
    /// As [`ResticRepo::read_blob`].
    pub async fn read_tree(&self, id: &ResticId) -> Result<ResticTree> {
        let json = self.read_blob(id, true).await?;
        format::read_tree(&json, &format!("restic tree {}", hex::encode(id)))
    }

    /// The plaintext length of a data blob, if indexed.
    pub fn data_len(&self, id: &ResticId) -> Option<u64> {
        self.index.get(id).map(|l| {
            if l.uncompressed > 0 {
                u64::from(l.uncompressed)
            } else {
                u64::from(l.length).saturating_sub(32)
            }
        })
    }
}

/// The index parser over arbitrary plaintext (fuzzing).
#[doc(hidden)]
pub fn fuzz_index(data: &[u8]) {
    if let Ok(json) = format::unpack(data.to_vec(), "fuzz index") {
        let mut into = HashMap::new();
        let _ = format::read_index(&json, "fuzz index", &mut into);
    }
}

/// The blob path over arbitrary bytes (fuzzing): authentication with a fixed key, then the
/// plaintext steps (decompression, tree parsing) on the bytes as given.
#[doc(hidden)]
pub fn fuzz_blob(data: &[u8]) {
    let key = ResticKey::for_fuzzing();
    assert!(key.open(data, "fuzz blob").is_err(), "a MAC was forged");
    let _ = format::decompress(data, 1 << 20, "fuzz blob");
    if let Ok(tree) = format::read_tree(data, "fuzz tree") {
        for node in &tree.nodes {
            let _ = node.to_node("fuzz tree");
        }
    }
}
