//! A blocking facade for synchronous callers (the C ABI, scripts, tests without async).
//!
//! The library never creates a runtime on its own: the caller passes a handle to one it owns,
//! e.g. `tokio::runtime::Runtime::new()?.handle().clone()`. Every method blocks the calling
//! thread until the operation completes.
//!
//! # Panics
//! Like `Handle::block_on`, every method panics if called from within an async context
//! (a runtime worker thread); call the async [`Repository`] methods there instead.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::runtime::Handle;

use crate::ops::backup::{BackupOptions, BackupReport};
use crate::ops::restore::{RestoreOptions, RestoreReport};
use crate::{
    Index, InitOptions, KdfParams, KeyInfo, Repository, Result, SnapshotEntry, SnapshotFilter,
    Storage,
};

/// A [`Repository`] driven from synchronous code on a caller-owned runtime.
#[derive(Clone, Debug)]
pub struct BlockingRepository {
    repo: Repository,
    handle: Handle,
}

impl BlockingRepository {
    /// Creates a repository; see [`Repository::init`].
    pub fn init(
        handle: Handle,
        storage: Storage,
        password: &[u8],
        options: InitOptions,
    ) -> Result<Self> {
        let repo = handle.block_on(Repository::init(storage, password, options))?;
        Ok(BlockingRepository { repo, handle })
    }

    /// Opens a repository; see [`Repository::open`].
    pub fn open(handle: Handle, storage: Storage, password: &[u8]) -> Result<Self> {
        let repo = handle.block_on(Repository::open(storage, password))?;
        Ok(BlockingRepository { repo, handle })
    }

    /// The async repository, for callers that also have async code.
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// See [`Repository::load_index`].
    pub fn load_index(&self) -> Result<Arc<Index>> {
        self.handle.block_on(self.repo.load_index())
    }

    /// See [`Repository::backup`].
    pub fn backup(&self, paths: &[PathBuf], options: BackupOptions) -> Result<BackupReport> {
        self.handle
            .block_on(async { self.repo.backup(paths, options).await })
    }

    /// See [`Repository::backup_stream`].
    pub fn backup_stream<R: Read + Send + 'static>(
        &self,
        reader: R,
        filename: &str,
        options: BackupOptions,
    ) -> Result<BackupReport> {
        self.handle
            .block_on(async { self.repo.backup_stream(reader, filename, options).await })
    }

    /// See [`Repository::list_snapshots`].
    pub fn list_snapshots(&self, filter: &SnapshotFilter) -> Result<Vec<SnapshotEntry>> {
        self.handle.block_on(self.repo.list_snapshots(filter))
    }

    /// Restores the snapshot `spec` (`latest`, id or prefix); loads the index first.
    pub fn restore(
        &self,
        spec: &str,
        target: &Path,
        options: RestoreOptions,
    ) -> Result<RestoreReport> {
        self.handle.block_on(async {
            let entry = self
                .repo
                .find_snapshot(spec, &SnapshotFilter::default())
                .await?;
            let index = self.repo.load_index().await?;
            self.repo
                .restore(index, &entry.snapshot, target, options)
                .await
        })
    }

    /// Writes the file at `path` of snapshot `spec` to `writer`; returns the bytes written.
    pub fn dump<W: std::io::Write + Send>(&self, spec: &str, path: &str, writer: W) -> Result<u64> {
        self.handle.block_on(async {
            let entry = self
                .repo
                .find_snapshot(spec, &SnapshotFilter::default())
                .await?;
            let index = self.repo.load_index().await?;
            let node = self.repo.find_node(&index, &entry.snapshot, path).await?;
            self.repo.dump(&index, &node, writer).await
        })
    }

    /// See [`Repository::add_key`].
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        self.handle.block_on(self.repo.add_key(password, kdf))
    }

    /// See [`Repository::list_keys`].
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        self.handle.block_on(self.repo.list_keys())
    }

    /// See [`Repository::remove_key`].
    pub fn remove_key(&self, id_or_prefix: &str) -> Result<String> {
        self.handle.block_on(self.repo.remove_key(id_or_prefix))
    }

    /// See [`Repository::change_password`].
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<String> {
        let handle = self.handle.clone();
        handle.block_on(self.repo.change_password(new_password, kdf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_round_trip() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let options = InitOptions {
            kdf: KdfParams::new(64, 1, 1).unwrap(),
            ..Default::default()
        };
        let repo = BlockingRepository::init(
            runtime.handle().clone(),
            Storage::in_memory(),
            b"pw",
            options,
        )
        .unwrap();
        let report = repo
            .backup_stream(
                std::io::Cursor::new(b"synchronous data".to_vec()),
                "s.txt",
                BackupOptions::default(),
            )
            .unwrap();
        assert_eq!(
            repo.list_snapshots(&SnapshotFilter::default())
                .unwrap()
                .len(),
            1
        );
        let mut out = Vec::new();
        repo.dump(&report.snapshot_id[..8], "s.txt", &mut out)
            .unwrap();
        assert_eq!(out, b"synchronous data");
    }
}
