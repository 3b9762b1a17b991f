//! The repository configuration object (`config`).

use cairn_chunker::ChunkerParams;
use cairn_pack::{BlobEncoder, DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MIN_PACK_SIZE};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};

/// Newest repository format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Repository-wide parameters, fixed at `init`. Stored as sealed JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    /// Repository format version.
    pub version: u32,
    /// Random repository id (64 hex digits).
    pub id: String,
    /// Chunk sizes.
    pub chunker: ChunkerSizes,
    /// Target pack size in bytes.
    pub pack_size: u64,
    /// zstd level for blobs; `None` stores blobs uncompressed.
    pub compression: Option<i32>,
}

/// Chunker sizes as stored in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerSizes {
    /// Minimum chunk size.
    pub min: u32,
    /// Average chunk size.
    pub avg: u32,
    /// Maximum chunk size.
    pub max: u32,
}

impl RepoConfig {
    /// Checks every field; a config that fails here is rejected before use.
    pub fn validate(&self) -> Result<()> {
        if self.version > FORMAT_VERSION || self.version == 0 {
            return Err(RepoError::UnsupportedVersion {
                found: self.version,
                supported: FORMAT_VERSION,
            });
        }
        if self.id.len() != 64 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RepoError::corrupt(
                "config",
                "repository id is not 64 hex digits",
            ));
        }
        self.chunker_params()?;
        if !(MIN_PACK_SIZE as u64..=MAX_PACK_SIZE as u64).contains(&self.pack_size) {
            return Err(RepoError::InvalidInput(format!(
                "pack size {} is outside {MIN_PACK_SIZE}..={MAX_PACK_SIZE}",
                self.pack_size
            )));
        }
        self.encoder()?;
        Ok(())
    }

    /// The chunker parameters.
    pub fn chunker_params(&self) -> Result<ChunkerParams> {
        let c = self.chunker;
        ChunkerParams::new(c.min as usize, c.avg as usize, c.max as usize).map_err(|source| {
            RepoError::Chunker {
                object: "chunker parameters".into(),
                source,
            }
        })
    }

    /// The blob encoder for the configured compression.
    pub fn encoder(&self) -> Result<BlobEncoder> {
        BlobEncoder::new(self.compression).map_err(|e| RepoError::InvalidInput(e.to_string()))
    }
}

/// Parameters for a new repository.
#[derive(Clone, Debug)]
pub struct InitOptions {
    /// Chunk sizes (default 512 KiB / 1 MiB / 8 MiB).
    pub chunker: ChunkerParams,
    /// Target pack size (default 16 MiB).
    pub pack_size: usize,
    /// zstd level (default 3); `None` disables compression.
    pub compression: Option<i32>,
    /// Argon2id cost for the first key.
    pub kdf: cairn_pack::KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::DEFAULT,
            pack_size: DEFAULT_PACK_SIZE,
            compression: Some(3),
            kdf: cairn_pack::KdfParams::DEFAULT,
        }
    }
}
