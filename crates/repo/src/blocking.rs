//! A blocking facade for synchronous callers (scripts, tools, tests without async).
//!
//! [`BlockingRepository::open_url`] and [`BlockingRepository::init_url`] start a runtime of
//! their own, so nothing else is needed:
//!
//! ```no_run
//! use cairn_repo::blocking::BlockingRepository;
//! # fn main() -> cairn_repo::Result<()> {
//! let repo = BlockingRepository::open_url("/srv/backups/repo", b"password")?;
//! repo.backup(&["/etc".into()], Default::default())?;
//! repo.restore("latest:/etc", "/tmp/etc-restored".as_ref(), Default::default())?;
//! # Ok(()) }
//! ```
//!
//! A caller that already owns a tokio runtime passes its handle instead
//! ([`BlockingRepository::open`]). Every method blocks the calling thread until the
//! operation completes.
//!
//! # Panics
//! Like `Handle::block_on`, every method panics if called from within an async context
//! (a runtime worker thread); call the async [`Repository`] methods there instead.

use std::future::Future;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};

use crate::ops::backup::{BackupOptions, BackupReport};
use crate::ops::check::{CheckOptions, CheckReport};
use crate::ops::copy::{CopyOptions, CopyReport};
use crate::ops::forget::{ForgetOptions, ForgetReport};
use crate::ops::prune::{PruneOptions, PruneReport};
use crate::ops::restore::{RestoreOptions, RestoreReport};
use crate::ops::stats::StatsReport;
use crate::{
    Index, InitOptions, KdfParams, KeyInfo, RepoError, Repository, Result, SnapshotEntry,
    SnapshotFilter, Storage,
};

/// The runtime a blocking repository drives its work on.
#[derive(Clone, Debug)]
enum Driver {
    /// Started by the repository ([`BlockingRepository::open_url`]); shut down when the
    /// last clone is dropped.
    Owned(Arc<Runtime>),
    /// The caller's.
    Borrowed(Handle),
}

impl Driver {
    fn own() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| RepoError::io("the I/O runtime", e))?;
        Ok(Driver::Owned(Arc::new(runtime)))
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        match self {
            Driver::Owned(runtime) => runtime.block_on(future),
            Driver::Borrowed(handle) => handle.block_on(future),
        }
    }
}

/// A [`Repository`] driven from synchronous code.
#[derive(Clone, Debug)]
pub struct BlockingRepository {
    repo: Repository,
    handle: Driver,
}

impl BlockingRepository {
    /// Opens the repository at `url` (see [`Repository::open_url`]) on a runtime of its own.
    pub fn open_url(url: &str, password: &[u8]) -> Result<Self> {
        let handle = Driver::own()?;
        let repo = handle.block_on(Repository::open_url(url, password))?;
        Ok(BlockingRepository { repo, handle })
    }

    /// Creates a repository at `url` with default options (see [`Repository::init_url`]),
    /// on a runtime of its own.
    pub fn init_url(url: &str, password: &[u8]) -> Result<Self> {
        let handle = Driver::own()?;
        let repo = handle.block_on(Repository::init_url(url, password))?;
        Ok(BlockingRepository { repo, handle })
    }

    /// Creates a repository on the caller's runtime; see [`Repository::init`].
    pub fn init(
        handle: Handle,
        storage: Storage,
        password: &[u8],
        options: InitOptions,
    ) -> Result<Self> {
        let repo = handle.block_on(Repository::init(storage, password, options))?;
        Ok(BlockingRepository {
            repo,
            handle: Driver::Borrowed(handle),
        })
    }

    /// Opens a repository on the caller's runtime; see [`Repository::open`].
    pub fn open(handle: Handle, storage: Storage, password: &[u8]) -> Result<Self> {
        let repo = handle.block_on(Repository::open(storage, password))?;
        Ok(BlockingRepository {
            repo,
            handle: Driver::Borrowed(handle),
        })
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

    /// Restores `spec` (restic's `SNAPSHOT[:PATH]`: `latest`, an id or prefix, optionally a
    /// directory in it) into `target`; see [`Repository::restore_spec`].
    pub fn restore(
        &self,
        spec: &str,
        target: &Path,
        options: RestoreOptions,
    ) -> Result<RestoreReport> {
        self.handle
            .block_on(self.repo.restore_spec(spec, target, options))
    }

    /// See [`Repository::forget`].
    pub fn forget(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        self.handle.block_on(self.repo.forget(options))
    }

    /// See [`Repository::prune`].
    pub fn prune(&self, options: &PruneOptions) -> Result<PruneReport> {
        self.handle.block_on(self.repo.prune(options))
    }

    /// See [`Repository::check`].
    pub fn check(&self, options: &CheckOptions) -> Result<CheckReport> {
        self.handle.block_on(self.repo.check(options))
    }

    /// See [`Repository::stats`].
    pub fn stats(&self, filter: &SnapshotFilter) -> Result<StatsReport> {
        self.handle.block_on(self.repo.stats(filter))
    }

    /// Copies snapshots from this repository into `dest`; see
    /// [`Repository::copy_snapshots`].
    pub fn copy_to(&self, dest: &BlockingRepository, options: &CopyOptions) -> Result<CopyReport> {
        self.handle
            .block_on(self.repo.copy_snapshots(&dest.repo, options))
    }

    /// Runs a restore drill of `spec` (`latest`, an id or prefix); see
    /// [`Repository::drill`].
    pub fn drill(
        &self,
        spec: &str,
        options: &crate::ops::drill::DrillOptions,
    ) -> Result<crate::ops::drill::DrillResult> {
        self.handle.block_on(async {
            let entry = self
                .repo
                .find_snapshot(spec, &SnapshotFilter::default())
                .await?;
            self.repo.drill(&entry, options).await
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
        repo.dump(report.snapshot_id.short(), "s.txt", &mut out)
            .unwrap();
        assert_eq!(out, b"synchronous data");
    }
}
