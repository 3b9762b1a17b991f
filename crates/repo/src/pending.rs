//! Pending deletions: packs a prune took out of the index but may not delete yet, because a
//! backup that was running could still reference blobs in them
//! (docs/format.md#locks-and-concurrency).

use cairn_pack::PackId;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::index::{IndexFile, IndexPack};
use crate::object::{check_content_id, content_id, open_object, seal_object, ObjectKind};
use crate::storage::FileType;
use crate::Repository;

/// One prune's packs awaiting deletion (sealed JSON under `pending/<id>`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingDeletion {
    /// When the prune wrote it (its host's clock, RFC 3339; informational).
    pub time: String,
    /// Packs no longer in the index.
    pub packs: Vec<PackId>,
    /// Backup markers that were live while the prune ran: the packs may be deleted only
    /// after every one of them is gone (or stale), and each of those backups re-indexes any
    /// of these packs its snapshot needs before it removes its marker.
    pub backups: Vec<String>,
}

impl PendingDeletion {
    /// Decodes a record's plaintext.
    pub fn decode(bytes: &[u8], object: &str) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| RepoError::corrupt(object, format!("invalid pending-deletion JSON: {e}")))
    }
}

impl Repository {
    /// Stores a pending-deletion record; returns its id.
    pub(crate) async fn write_pending(&self, record: &PendingDeletion) -> Result<String> {
        let plain = serde_json::to_vec(record).expect("pending record serializes");
        let sealed = seal_object(&self.keys, ObjectKind::Pending, &plain)?;
        let id = content_id(&sealed);
        self.storage
            .put_content(FileType::Pending, &id, sealed.into())
            .await?;
        Ok(id)
    }

    /// Every pending-deletion record with its id.
    pub async fn read_pending(&self) -> Result<Vec<(String, PendingDeletion)>> {
        let listed = self.storage.list(FileType::Pending).await?;
        futures::stream::iter(listed)
            .map(|listed| async move {
                let object = format!("pending/{}", listed.name);
                let sealed = match self.storage.get(FileType::Pending, &listed.name).await {
                    Ok(sealed) => sealed,
                    // Completed by a prune between listing and reading.
                    Err(RepoError::MissingObject { .. }) => return Ok(None),
                    Err(e) => return Err(e),
                };
                check_content_id(&object, &listed.name, &sealed)?;
                let plain = open_object(&self.keys, ObjectKind::Pending, &object, &sealed)?;
                Ok(Some((
                    listed.name,
                    PendingDeletion::decode(&plain, &object)?,
                )))
            })
            .buffer_unordered(8)
            .try_filter_map(|x| async move { Ok(x) })
            .try_collect()
            .await
    }

    /// Puts a pack back into the index (from its own header), so pending deletions keep it.
    pub(crate) async fn reindex_pack(&self, pack: &PackId) -> Result<()> {
        let size = self.storage.size(FileType::Pack, &pack.to_hex()).await?;
        let entries = self.read_pack_header(pack, size).await?;
        self.write_index_file(&IndexFile {
            packs: vec![IndexPack { id: *pack, entries }],
        })
        .await
        .map(|_| ())
    }
}
