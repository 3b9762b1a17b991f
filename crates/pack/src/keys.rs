//! The repository's master key set.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::crypto::random_bytes;
use crate::{BlobId, PackError};

/// Length of the serialized key set: three 32-byte keys.
pub const MASTER_KEYS_LEN: usize = 96;

/// The three independent secrets of a repository (docs/format.md#keys).
///
/// - `data`: XChaCha20-Poly1305 key for every blob, pack header and repository object;
/// - `blob_id`: BLAKE3 key for blob ids, so ids do not reveal which known content is stored;
/// - `chunker`: secret the chunker's gear table is derived from.
///
/// Wiped on drop, not `Copy`, and `Debug` prints `MasterKeys(..)`.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKeys {
    data: [u8; 32],
    blob_id: [u8; 32],
    chunker: [u8; 32],
}

impl MasterKeys {
    /// Fresh random keys from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, PackError> {
        let mut keys = MasterKeys {
            data: [0; 32],
            blob_id: [0; 32],
            chunker: [0; 32],
        };
        random_bytes(&mut keys.data)?;
        random_bytes(&mut keys.blob_id)?;
        random_bytes(&mut keys.chunker)?;
        Ok(keys)
    }

    /// Fresh random data and blob-id keys with a given chunker secret, for a repository that
    /// must cut chunks exactly where another does (so copies between them deduplicate).
    pub fn generate_sharing_chunker(chunker: &[u8; 32]) -> Result<Self, PackError> {
        let mut keys = Self::generate()?;
        keys.chunker.copy_from_slice(chunker);
        Ok(keys)
    }

    /// Builds a key set from explicit bytes (tests, benches, fuzzing).
    pub fn from_parts(data: [u8; 32], blob_id: [u8; 32], chunker: [u8; 32]) -> Self {
        MasterKeys {
            data,
            blob_id,
            chunker,
        }
    }

    /// Keyed BLAKE3 of `plaintext`: the id a blob with this content has in this repository.
    pub fn blob_id(&self, plaintext: &[u8]) -> BlobId {
        BlobId(*blake3::keyed_hash(&self.blob_id, plaintext).as_bytes())
    }

    /// The chunker secret (feed it to `cairn_chunker::ChunkerSecret::from_bytes`).
    pub fn chunker_secret(&self) -> &[u8; 32] {
        &self.chunker
    }

    /// The encryption key, for sealing repository objects.
    pub fn data_key(&self) -> &[u8; 32] {
        &self.data
    }

    pub(crate) fn to_bytes(&self) -> [u8; MASTER_KEYS_LEN] {
        let mut out = [0u8; MASTER_KEYS_LEN];
        out[..32].copy_from_slice(&self.data);
        out[32..64].copy_from_slice(&self.blob_id);
        out[64..].copy_from_slice(&self.chunker);
        out
    }

    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != MASTER_KEYS_LEN {
            return None;
        }
        let mut keys = MasterKeys {
            data: [0; 32],
            blob_id: [0; 32],
            chunker: [0; 32],
        };
        keys.data.copy_from_slice(&bytes[..32]);
        keys.blob_id.copy_from_slice(&bytes[32..64]);
        keys.chunker.copy_from_slice(&bytes[64..]);
        Some(keys)
    }
}

impl std::fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKeys(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_distinct_and_debug_is_redacted() {
        let a = MasterKeys::generate().unwrap();
        let b = MasterKeys::generate().unwrap();
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_ne!(a.data, a.blob_id);
        assert_eq!(format!("{a:?}"), "MasterKeys(..)");
        let round = MasterKeys::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(round.to_bytes(), a.to_bytes());
        assert!(MasterKeys::from_bytes(&[0; 95]).is_none());
    }

    #[test]
    fn blob_id_is_keyed() {
        let a = MasterKeys::from_parts([0; 32], [1; 32], [0; 32]);
        let b = MasterKeys::from_parts([0; 32], [2; 32], [0; 32]);
        assert_ne!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_ne!(a.blob_id(b"x").0, *blake3::hash(b"x").as_bytes());
        assert_eq!(a.blob_id(b"x"), a.blob_id(b"x"));
    }
}
