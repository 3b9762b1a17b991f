//! The backup's half of the prune protocol: after its snapshot is written, a backup that a
//! prune saw running re-indexes every pack that prune set aside and the snapshot needs, so
//! the pending deletion (which waits for this backup's marker to go) never removes them.

use std::collections::HashSet;

use cairn_pack::{BlobId, PackId};

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::object::SnapshotId;
use crate::snapshot::Snapshot;
use crate::walk::TreeWalker;
use crate::Repository;

impl Repository {
    /// Makes `snapshot` safe from pending deletions that name `marker`. `start` is the index
    /// the backup deduplicated against. Costs one list of `pending/` unless a prune ran
    /// during the backup; then a walk of the snapshot's trees, re-indexing (from its own
    /// header) every pack holding a blob the snapshot uses that the current index lacks.
    pub(crate) async fn protect_snapshot(
        &self,
        marker: &str,
        start: &Index,
        snapshot: &Snapshot,
    ) -> Result<()> {
        // Only a backup some prune saw running can need a pack that prune set aside.
        let named = self
            .read_pending()
            .await?
            .iter()
            .any(|(_, record)| record.backups.iter().any(|b| b == marker));
        if !named {
            return Ok(());
        }
        let current = self.load_index().await?;
        let mut needed: HashSet<PackId> = HashSet::new();
        let note = |id: &BlobId, needed: &mut HashSet<PackId>| -> Result<()> {
            if current.contains(id) {
                return Ok(());
            }
            // The pack is set aside by this prune or by one whose record this backup has not
            // seen yet; either way it waits for this backup's marker, so it still exists.
            match start.get(id) {
                Some(location) => {
                    needed.insert(location.pack);
                    Ok(())
                }
                None => Err(RepoError::corrupt(
                    format!("blob {id}"),
                    "the new snapshot references it, but no index has it",
                )),
            }
        };
        note(&snapshot.tree, &mut needed)?;
        TreeWalker::new(self, &current)
            .with_fallback(start)
            .walk([snapshot.tree], |reached| {
                for node in &reached.tree?.nodes {
                    if let Some(subtree) = &node.subtree {
                        note(subtree, &mut needed)?;
                    }
                    for blob in &node.content {
                        note(blob, &mut needed)?;
                    }
                }
                Ok(())
            })
            .await?;
        for pack in needed {
            self.reindex_pack(&pack).await?;
        }
        Ok(())
    }

    /// Writes `snapshot` as a backup must: the marker confirmed by the store's clock first
    /// (a backup stalled past its marker's expiry may have deduplicated against packs a
    /// prune has since deleted, and a frozen process may not have seen the time pass), then
    /// protected from pending deletions and confirmed again; if either fails the snapshot is
    /// withdrawn rather than left possibly lacking data. Returns its id. Used by backup,
    /// copy and repair alike.
    pub(crate) async fn write_protected_snapshot(
        &self,
        marker: &crate::lock::LockGuard,
        start: &Index,
        snapshot: &Snapshot,
    ) -> Result<SnapshotId> {
        marker.refresh_now().await?;
        let id = self.write_snapshot(snapshot).await?;
        let protected = match self.protect_snapshot(marker.name(), start, snapshot).await {
            Ok(()) => marker.refresh_now().await.map(drop),
            Err(e) => Err(e),
        };
        if let Err(e) = protected {
            let _ = self.delete_snapshot(&id).await;
            return Err(e);
        }
        Ok(id)
    }
}
