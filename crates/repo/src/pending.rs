//! Pending deletions: packs a prune took out of the index but may not delete yet, because a
//! backup that was running could still reference blobs in them
//! (docs/format.md#locks-and-concurrency).

use cairn_pack::PackId;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::index::{IndexFile, IndexPack};
use crate::object::{ObjectKind, PendingId, SealedFile};
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

impl SealedFile for PendingDeletion {
    const FILE_TYPE: FileType = FileType::Pending;
    const KIND: ObjectKind = ObjectKind::Pending;
    type Id = PendingId;

    fn encode_file(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("pending records serialize")
    }

    fn decode_file(plain: &[u8], object: &str) -> Result<Self> {
        Self::decode(plain, object)
    }
}

impl Repository {
    /// Stores a pending-deletion record; returns its id.
    pub(crate) async fn write_pending(&self, record: &PendingDeletion) -> Result<PendingId> {
        self.write_file(record).await
    }

    /// Every pending-deletion record with its id (one completed by a prune between listing
    /// and reading is left out).
    pub async fn read_pending(&self) -> Result<Vec<(PendingId, PendingDeletion)>> {
        self.read_files().await
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn records_round_trip(
            packs in proptest::collection::vec(any::<[u8; 32]>(), 0..20),
            backups in proptest::collection::vec("[0-9a-f]{64}", 0..5),
        ) {
            let record = PendingDeletion {
                time: "2026-11-29T19:00:00+00:00".into(),
                packs: packs.into_iter().map(PackId).collect(),
                backups,
            };
            let text = serde_json::to_vec(&record).unwrap();
            prop_assert_eq!(PendingDeletion::decode(&text, "r").unwrap(), record);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PendingDeletion::decode(&bytes, "r");
        }
    }

    #[test]
    fn malformed_records_are_rejected_with_the_object_named() {
        for text in [
            &br#"{"time":"t","packs":["zz"],"backups":[]}"#[..],
            br#"{"time":"t","packs":"x","backups":[]}"#,
            b"[]",
        ] {
            let err = PendingDeletion::decode(text, "pending/abc").unwrap_err();
            assert!(err.to_string().contains("pending/abc"), "{err}");
        }
    }

    #[tokio::test]
    async fn stored_records_are_authenticated() {
        let options = crate::InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            ..Default::default()
        };
        let repo = Repository::init(crate::Storage::in_memory(), b"pw", options)
            .await
            .unwrap();
        let record = PendingDeletion {
            time: "t".into(),
            packs: vec![PackId([7; 32])],
            backups: vec!["ab".repeat(32)],
        };
        let id = repo.write_pending(&record).await.unwrap();
        assert_eq!(
            repo.read_pending().await.unwrap(),
            vec![(id.clone(), record)]
        );
        // A flipped byte: the content no longer hashes to its name.
        let mut sealed = repo
            .storage
            .get(FileType::Pending, id.as_str())
            .await
            .unwrap()
            .to_vec();
        sealed[30] ^= 1;
        repo.storage
            .overwrite(
                FileType::Pending,
                id.as_str(),
                bytes::Bytes::from(sealed).into(),
            )
            .await
            .unwrap();
        assert!(repo.read_pending().await.is_err());
    }
}
