//! The local backend with restic's permissions: object files 0600 and directories 0700, so
//! no other local user can copy `keys/` and guess passwords offline.
//!
//! object_store's `LocalFileSystem` creates files and directories with the process umask
//! (usually 0644 and 0755) and has no setting for modes, and changing the umask would change
//! it for the whole process (restore, the C ABI's host program). So this wraps it:
//!
//! - before a write, the directories the object needs are created here, each with the
//!   repository's directory mode (and, since the store fsyncs, the new entry made durable);
//! - after a write succeeds, the file is `chmod`ed to the file mode. The file exists with the
//!   umask's mode for that moment, but inside a directory nobody else can enter.
//!
//! As restic does, a repository whose `config` is group-readable is kept group-accessible:
//! files 0640 and directories 0750 (`chmod -R g+rX` once, and cairn keeps it so). Directories
//! and files that already exist keep their modes; only what cairn creates is restricted.

use std::fmt;
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result, UploadPart,
};

/// File and directory modes for what cairn creates in a local repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Modes {
    pub file: u32,
    pub dir: u32,
}

impl Modes {
    /// Owner only (restic's default).
    pub const PRIVATE: Modes = Modes {
        file: 0o600,
        dir: 0o700,
    };
    /// Owner and group read (restic's, for a repository whose config is group-readable).
    pub const GROUP_READABLE: Modes = Modes {
        file: 0o640,
        dir: 0o750,
    };

    /// The modes for the repository rooted at `root`: group-readable if its `config` is.
    pub fn for_repository(root: &Path) -> Modes {
        match std::fs::metadata(root.join("config")) {
            Ok(meta) if meta.permissions().mode() & 0o040 != 0 => Modes::GROUP_READABLE,
            _ => Modes::PRIVATE,
        }
    }
}

/// Creates `dir` and any missing parents with `mode` (exactly, whatever the umask), leaving
/// existing directories as they are. With `fsync`, each new directory's entry is made durable
/// (object_store does the same for the directories it creates).
pub(crate) fn create_dirs(dir: &Path, mode: u32, fsync: bool) -> std::io::Result<()> {
    match std::fs::metadata(dir) {
        // Something else in the way is reported by the write that follows.
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    // A bare relative name ("repo") has the empty path as its parent: the current directory.
    let parent = dir.parent().map(|p| {
        if p.as_os_str().is_empty() {
            Path::new(".")
        } else {
            p
        }
    });
    if let Some(parent) = parent.filter(|p| *p != Path::new(".")) {
        create_dirs(parent, mode, fsync)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
            if let (true, Some(parent)) = (fsync, parent) {
                std::fs::File::open(parent)?.sync_all()?;
            }
            Ok(())
        }
        // Made by a concurrent writer since we looked.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// A `LocalFileSystem` that creates its directories and files with [`Modes`].
#[derive(Debug)]
pub(crate) struct PrivateLocalStore {
    inner: LocalFileSystem,
    modes: Modes,
    fsync: bool,
}

impl PrivateLocalStore {
    pub fn new(inner: LocalFileSystem, modes: Modes, fsync: bool) -> Self {
        PrivateLocalStore {
            inner,
            modes,
            fsync,
        }
    }

    fn io_error(path: &Path, source: std::io::Error) -> object_store::Error {
        object_store::Error::Generic {
            store: "LocalFileSystem",
            source: format!("{}: {source}", path.display()).into(),
        }
    }

    /// Creates the directories `location` needs, with the directory mode.
    async fn prepare(&self, location: &ObjectPath) -> Result<PathBuf> {
        let path = self.inner.path_to_filesystem(location)?;
        let (mode, fsync) = (self.modes.dir, self.fsync);
        let dir = path.parent().map(Path::to_path_buf);
        if let Some(dir) = dir {
            tokio::task::spawn_blocking(move || {
                create_dirs(&dir, mode, fsync).map_err(|e| Self::io_error(&dir, e))
            })
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "LocalFileSystem",
                source: Box::new(e),
            })??;
        }
        Ok(path)
    }

    /// Gives a just-written file the file mode.
    async fn restrict(path: PathBuf, mode: u32) -> Result<()> {
        tokio::task::spawn_blocking(move || {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| Self::io_error(&path, e))
        })
        .await
        .map_err(|e| object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?
    }
}

impl fmt::Display for PrivateLocalStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl ObjectStore for PrivateLocalStore {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let path = self.prepare(location).await?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        Self::restrict(path, self.modes.file).await?;
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let path = self.prepare(location).await?;
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        Ok(Box::new(PrivateUpload {
            inner,
            path,
            mode: self.modes.file,
        }))
    }

    async fn get_opts(&self, location: &ObjectPath, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &ObjectPath, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<ObjectPath>>,
    ) -> BoxStream<'static, Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&ObjectPath>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&ObjectPath>,
        offset: &ObjectPath,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&ObjectPath>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    // Copies are hard links and renames keep the inode: the file keeps its mode. The target's
    // directories are prepared as for a write.
    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> Result<()> {
        self.prepare(to).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: RenameOptions,
    ) -> Result<()> {
        self.prepare(to).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

/// A multipart upload whose file gets the file mode once complete.
#[derive(Debug)]
struct PrivateUpload {
    inner: Box<dyn MultipartUpload>,
    path: PathBuf,
    mode: u32,
}

#[async_trait]
impl MultipartUpload for PrivateUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> Result<PutResult> {
        let result = self.inner.complete().await?;
        PrivateLocalStore::restrict(self.path.clone(), self.mode).await?;
        Ok(result)
    }

    async fn abort(&mut self) -> Result<()> {
        self.inner.abort().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn writes_are_private_and_existing_modes_kept() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
        let store = PrivateLocalStore::new(
            LocalFileSystem::new_with_prefix(root).unwrap(),
            Modes::for_repository(root),
            true,
        );
        store
            .put(
                &ObjectPath::from("data/ab/abc"),
                Bytes::from_static(b"x").into(),
            )
            .await
            .unwrap();
        let mut upload = store
            .put_multipart(&ObjectPath::from("index/def"))
            .await
            .unwrap();
        upload
            .put_part(Bytes::from_static(b"y").into())
            .await
            .unwrap();
        upload.complete().await.unwrap();
        assert_eq!(mode(&root.join("data")), 0o700);
        assert_eq!(mode(&root.join("data/ab")), 0o700);
        assert_eq!(mode(&root.join("data/ab/abc")), 0o600);
        assert_eq!(mode(&root.join("index")), 0o700);
        assert_eq!(mode(&root.join("index/def")), 0o600);
        // The root existed: its mode is the owner's business.
        assert_eq!(mode(root), 0o755);
        assert_eq!(
            &store
                .get(&ObjectPath::from("data/ab/abc"))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()[..],
            b"x"
        );
    }

    #[test]
    fn group_readable_config_keeps_the_repository_group_readable() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Modes::for_repository(dir.path()), Modes::PRIVATE);
        let config = dir.path().join("config");
        std::fs::write(&config, b"c").unwrap();
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(Modes::for_repository(dir.path()), Modes::PRIVATE);
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(Modes::for_repository(dir.path()), Modes::GROUP_READABLE);
    }
}
