//! Snapshots of trees built in memory rather than read from a file system.

use std::sync::Arc;

use cairn_pack::{BlobId, BlobType};

use super::{BackupOptions, BackupReport, FileCounts};
use crate::error::{RepoError, Result};
use crate::host::hostname;
use crate::Repository;

/// Stores one blob (a data chunk, or a tree's [`crate::Tree::encode`] bytes) and returns its
/// id; storing the same bytes twice stores them once.
pub type StoreBlob<'a> = dyn FnMut(BlobType, &[u8]) -> Result<BlobId> + 'a;

impl Repository {
    /// Writes a snapshot of a tree built in memory: `build` stores the blobs it needs through
    /// the function it is given (content chunks, then each directory's encoded [`crate::Tree`],
    /// children before parents since a tree names its subtrees by id) and returns the root
    /// tree's id. The snapshot records `paths` and the options' host, tags and time, and is
    /// written the way a backup's is (after its blobs are stored and indexed, under a backup
    /// marker).
    ///
    /// For importers from other formats, and for tests that need snapshots no file system
    /// can hold (the snapshots a compromised host could write: names that collide on a
    /// case-insensitive target, shared subtrees, very deep trees). Trees are validated as
    /// they are encoded, nothing else is: the snapshot holds what `build` made it hold.
    pub async fn backup_built_tree<F>(
        &self,
        paths: Vec<String>,
        options: BackupOptions,
        build: F,
    ) -> Result<BackupReport>
    where
        F: FnOnce(&mut StoreBlob<'_>) -> Result<BlobId> + Send + 'static,
    {
        let host = options.hostname.clone().unwrap_or_else(hostname);
        let prepared = self.prepare(&options).await?;
        let saver = Arc::clone(&prepared.saver);
        let root = tokio::task::spawn_blocking(move || {
            let result = {
                let mut store = |kind: BlobType, bytes: &[u8]| saver.save_now(kind, bytes);
                build(&mut store)
            };
            saver.wait_idle();
            let closed = saver.close();
            result.and_then(|root| closed.map(|_| root))
        })
        .await
        .map_err(RepoError::task("backup task"))
        .and_then(|r| r);
        self.finish_backup(
            prepared,
            &options,
            host,
            paths,
            root,
            None,
            FileCounts::default(),
            Vec::new(),
            Vec::new(),
        )
        .await
    }
}
