//! Packs as stored objects: listing, stating, storing and deleting them by [`PackId`]. Their
//! content is read through the blob reader (`crate::blobs`); their format is the pack
//! crate's.

use cairn_pack::PackId;
use object_store::PutPayload;

use crate::error::Result;
use crate::storage::{FileType, Listed};
use crate::Repository;

/// A stored pack: its id, size and when the store wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPack {
    /// The pack.
    pub id: PackId,
    /// Its size in bytes.
    pub size: u64,
    /// When the store last wrote it (the store's clock).
    pub stored_at: chrono::DateTime<chrono::Utc>,
}

impl StoredPack {
    fn from_listed(listed: Listed) -> Option<StoredPack> {
        Some(StoredPack {
            id: listed.name.parse().ok()?,
            size: listed.size,
            stored_at: listed.last_modified,
        })
    }
}

impl Repository {
    /// Every pack in storage (names that are not pack ids are left out).
    pub async fn list_packs(&self) -> Result<Vec<StoredPack>> {
        Ok(self
            .storage
            .list(FileType::Pack)
            .await?
            .into_iter()
            .filter_map(StoredPack::from_listed)
            .collect())
    }

    /// One pack's size and time; `MissingObject` if it is not stored.
    pub async fn stat_pack(&self, id: &PackId) -> Result<StoredPack> {
        let listed = self.storage.head(FileType::Pack, &id.to_hex()).await?;
        Ok(StoredPack {
            id: *id,
            size: listed.size,
            stored_at: listed.last_modified,
        })
    }

    /// Bytes of every object stored in the repository, of every kind.
    pub async fn stored_bytes(&self) -> Result<u64> {
        let mut total = self.storage.size(FileType::Config, "config").await?;
        for file_type in FileType::ALL.into_iter().filter(|t| *t != FileType::Config) {
            total += self
                .storage
                .list(file_type)
                .await?
                .iter()
                .map(|l| l.size)
                .sum::<u64>();
        }
        Ok(total)
    }

    /// Stores a finished pack under its id (idempotent: the same id is the same content).
    pub(crate) async fn put_pack(&self, id: &PackId, payload: PutPayload) -> Result<()> {
        self.storage
            .put_content(FileType::Pack, &id.to_hex(), payload)
            .await
    }

    /// Deletes a pack; a pack already gone is not an error.
    pub(crate) async fn delete_pack(&self, id: &PackId) -> Result<()> {
        self.storage.delete(FileType::Pack, &id.to_hex()).await
    }
}
