//! Object storage: the one place that maps repository files to object paths and talks to
//! `object_store`.

mod layout;
mod private_local;
mod requests;
mod url;

pub use layout::{FileType, MAINTENANCE_LOCK};
use requests::RequestLog;
pub use requests::{Op, RequestKind, Requests};
pub use url::{parse_location, CA_CERTIFICATE_OPTION};

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion,
};

use crate::error::{RepoError, Result};

/// A repository's storage: an object store plus the prefix the repository lives under.
///
/// Contract: `put_*` are atomic (an object is visible whole or not at all); `create` never
/// overwrites; content-addressed writes are idempotent.
#[derive(Clone, Debug)]
pub struct Storage {
    store: Arc<dyn ObjectStore>,
    location: String,
    remote: bool,
    /// Requests at once, when the user chose (`-o s3.connections=N`).
    connections: Option<usize>,
    /// True when the tag a write reports identifies that write: object stores' ETags and
    /// version ids. A local file's tag (inode, mtime, size) may repeat for another write
    /// in the same clock tick, so the local store reports none ([`Written`] empty).
    tags_identify_writes: bool,
    log: Arc<RequestLog>,
}

/// Small reads (trees, index files, snapshots) in flight at once by default: enough to
/// hide a 20-50 ms round trip, few enough for any store's rate limits.
pub const DEFAULT_READS_IN_FLIGHT: usize = 16;

/// True for the backend option that sets how many requests are made at once: restic's
/// `s3.connections` (and `gs.`, `azure.`, `b2.`, `rest.`, ... of the other backends), or
/// plain `connections`.
pub fn is_connections_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key == "connections"
        || key
            .split_once('.')
            .is_some_and(|(backend, rest)| rest == "connections" && !backend.is_empty())
}

/// Backend options as (key, value) pairs.
type Settings = Vec<(String, String)>;

/// Splits the connections option off the backend options and parses it.
fn split_connections(options: &[(String, String)]) -> Result<(Option<usize>, Settings)> {
    let mut connections = None;
    let mut rest = Vec::new();
    for (key, value) in options {
        if !is_connections_option(key) {
            rest.push((key.clone(), value.clone()));
            continue;
        }
        match value.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => connections = Some(n),
            _ => {
                return Err(RepoError::InvalidInput(format!(
                    "backend option {key}={value:?}: a number of connections from 1 to 1024"
                )))
            }
        }
    }
    Ok((connections, rest))
}

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: usize = 64 << 20;

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// The object's name within its directory (an id in hex for most types).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// When the store last wrote it (the store's clock, not this host's).
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

/// The version of an object a reader saw: what [`Storage::replace`] compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The store's entity tag, if it reports one.
    pub e_tag: Option<String>,
    /// The store's version id, if it keeps versions.
    pub version: Option<String>,
    /// When the store last wrote the object (the store's clock).
    pub last_modified: chrono::DateTime<chrono::Utc>,
}

impl ObjectVersion {
    fn of(meta: &object_store::ObjectMeta) -> Self {
        ObjectVersion {
            e_tag: meta.e_tag.clone(),
            version: meta.version.clone(),
            last_modified: meta.last_modified,
        }
    }

    /// True if `meta` describes this version: same tag, version id and time.
    fn is(&self, meta: &object_store::ObjectMeta) -> bool {
        *self == ObjectVersion::of(meta)
    }
}

/// What the store said of an object it just wrote: the tag and version a later
/// [`Storage::head_version`] must show if nobody wrote it since. Either may be absent (the
/// store reports none), and then nothing can be concluded from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// The new object's entity tag.
    pub e_tag: Option<String>,
    /// The new object's version id.
    pub version: Option<String>,
}

impl Written {
    fn of(result: object_store::PutResult) -> Self {
        Written {
            e_tag: result.e_tag,
            version: result.version,
        }
    }

    /// True when `seen` is certainly the object this write stored: the store reported a
    /// tag (or version) for the write and `seen` carries the same one.
    pub fn is(&self, seen: &ObjectVersion) -> bool {
        match (&self.e_tag, &self.version) {
            (None, None) => false,
            (e_tag, version) => {
                e_tag
                    .as_ref()
                    .is_none_or(|t| seen.e_tag.as_ref() == Some(t))
                    && version
                        .as_ref()
                        .is_none_or(|v| seen.version.as_ref() == Some(v))
            }
        }
    }
}

/// What a conditional [`Storage::replace`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Replaced {
    /// The object was still the version read and is now the new content.
    Done(Written),
    /// The object was changed or removed since it was read; nothing was written.
    Changed,
}

impl Storage {
    /// Wraps an object store already rooted at the repository. `location` is for messages.
    pub fn new(store: Arc<dyn ObjectStore>, location: impl Into<String>) -> Self {
        let location = location.into();
        let parsed = url::parse(&location);
        let remote = !matches!(parsed, Ok(url::Location::Local(_) | url::Location::Memory));
        let tags_identify_writes = !matches!(parsed, Ok(url::Location::Local(_)));
        Storage {
            store,
            location,
            remote,
            connections: None,
            tags_identify_writes,
            log: Arc::default(),
        }
    }

    /// Objects transferred at once by bulk operations (pack uploads, restore reads): a local
    /// disk writes a pack faster than the pipeline fills the next, while a network store
    /// hides latency with more. Each one in flight holds up to a pack (16 MiB) in memory.
    /// The connections option, when given, sets it.
    pub fn transfer_concurrency(&self) -> usize {
        match (self.connections, self.remote) {
            (Some(n), _) => n,
            (None, true) => 4,
            (None, false) => 1,
        }
    }

    /// Small reads (trees, metadata files) made at once: the connections option when given,
    /// else [`DEFAULT_READS_IN_FLIGHT`].
    pub fn reads_in_flight(&self) -> usize {
        self.connections.unwrap_or(DEFAULT_READS_IN_FLIGHT)
    }

    /// This storage with `connections` requests at once (see [`is_connections_option`]).
    pub fn with_connections(mut self, connections: usize) -> Storage {
        self.connections = Some(connections.max(1));
        self
    }

    /// Opens the store a repository location names (see [`parse_location`]).
    pub fn open(location: &str) -> Result<Self> {
        let store = parse_location(location)?;
        Ok(Storage::new(store, location))
    }

    /// Like [`Storage::open`], creating a local directory if it does not exist (for `init`).
    pub fn open_or_create(location: &str) -> Result<Self> {
        let store = url::open_location(location, true, &[])?;
        Ok(Storage::new(store, location))
    }

    /// Opens a location with backend options that take precedence over the environment
    /// (object_store config keys such as `aws_endpoint`, `aws_access_key_id`,
    /// `aws_allow_http`). Local directories are created if `create_local` is set.
    pub fn open_with_options(
        location: &str,
        create_local: bool,
        options: &[(String, String)],
    ) -> Result<Self> {
        let (connections, options) = split_connections(options)?;
        let store = url::open_location(location, create_local, &options)?;
        let mut storage = Storage::new(store, location);
        storage.connections = connections;
        Ok(storage)
    }

    /// The same repository location through a wrapper of its object store (request
    /// accounting, fault injection in tests). Everything else is kept.
    pub fn map_store(
        &self,
        wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>,
    ) -> Storage {
        Storage {
            store: wrap(Arc::clone(&self.store)),
            location: self.location.clone(),
            remote: self.remote,
            connections: self.connections,
            tags_identify_writes: self.tags_identify_writes,
            log: Arc::clone(&self.log),
        }
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// A fresh in-memory store (tests).
    pub fn in_memory() -> Self {
        Storage::new(Arc::new(object_store::memory::InMemory::new()), "memory://")
    }

    /// Requests made through this storage and its clones so far.
    pub fn requests(&self) -> Requests {
        self.log.snapshot()
    }

    fn count(&self, file_type: FileType, op: Op) {
        self.log.record(file_type, op);
    }

    /// The location this storage was opened with.
    pub fn location(&self) -> &str {
        &self.location
    }

    fn storage_error(path: &ObjectPath, source: object_store::Error) -> RepoError {
        match source {
            object_store::Error::NotFound { .. } => RepoError::MissingObject {
                object: path.to_string(),
            },
            source => RepoError::Storage {
                object: path.to_string(),
                source,
            },
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, file_type: FileType, name: &str) -> Result<Bytes> {
        let path = file_type.path(name);
        self.count(file_type, Op::Get);
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| Self::storage_error(&path, e))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| Self::storage_error(&path, e))?;
        self.log.read(file_type, bytes.len() as u64);
        Ok(bytes)
    }

    /// Reads a whole object with the version the store served.
    pub async fn get_versioned(
        &self,
        file_type: FileType,
        name: &str,
    ) -> Result<(Bytes, ObjectVersion)> {
        let path = file_type.path(name);
        self.count(file_type, Op::Get);
        let result = self
            .store
            .get_opts(&path, GetOptions::default())
            .await
            .map_err(|e| Self::storage_error(&path, e))?;
        let version = ObjectVersion::of(&result.meta);
        let bytes = result
            .bytes()
            .await
            .map_err(|e| Self::storage_error(&path, e))?;
        self.log.read(file_type, bytes.len() as u64);
        Ok((bytes, version))
    }

    /// Replaces an object only if it is still the version `expected` that was read: a
    /// conditional write (`PutMode::Update`, S3's `If-Match`) where the store has one.
    ///
    /// The local store has no conditional overwrite (object_store refuses
    /// `PutMode::Update` there), so it is built from two atomic steps the file system has:
    /// the object is renamed aside (`rename(2)`), compared with `expected`, and the new
    /// content created where it was with the same exclusive create that locks are taken
    /// with. If the aside copy is not the expected version it is put back (unless
    /// something new was created meanwhile) and [`Replaced::Changed`] returned. Exclusion
    /// is never broken: between the steps the object is briefly absent, so a competitor can
    /// take it then, and this replace then reports [`Replaced::Changed`] instead of
    /// overwriting the competitor.
    pub async fn replace(
        &self,
        file_type: FileType,
        name: &str,
        payload: PutPayload,
        expected: &ObjectVersion,
    ) -> Result<Replaced> {
        let path = file_type.path(name);
        self.count(file_type, Op::Put);
        self.log.written(file_type, payload.content_length() as u64);
        if expected.e_tag.is_some() || expected.version.is_some() {
            let options = PutOptions {
                mode: PutMode::Update(UpdateVersion {
                    e_tag: expected.e_tag.clone(),
                    version: expected.version.clone(),
                }),
                ..Default::default()
            };
            match self.store.put_opts(&path, payload.clone(), options).await {
                Ok(result) => return Ok(Replaced::Done(Written::of(result))),
                Err(
                    object_store::Error::Precondition { .. }
                    | object_store::Error::NotFound { .. }
                    | object_store::Error::AlreadyExists { .. },
                ) => return Ok(Replaced::Changed),
                Err(object_store::Error::NotImplemented { .. }) => {}
                Err(e) => return Err(Self::storage_error(&path, e)),
            }
        }
        self.replace_by_rename(&path, payload, expected).await
    }

    async fn replace_by_rename(
        &self,
        path: &ObjectPath,
        payload: PutPayload,
        expected: &ObjectVersion,
    ) -> Result<Replaced> {
        // Not the version expected: changed, and nothing to move (a rename would hide
        // someone else's object for a moment).
        match self.store.head(path).await {
            Ok(meta) if expected.is(&meta) => {}
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(Replaced::Changed),
            Err(e) => return Err(Self::storage_error(path, e)),
        }
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).expect("OS random source");
        // Not a valid name of any file type, so listings never show it.
        let aside = ObjectPath::from(format!("{path}.replaced-{}", hex::encode(nonce)));
        match self.store.rename(path, &aside).await {
            Ok(()) => {}
            Err(object_store::Error::NotFound { .. }) => return Ok(Replaced::Changed),
            Err(e) => return Err(Self::storage_error(path, e)),
        }
        let seen = self
            .store
            .head(&aside)
            .await
            .map_err(|e| Self::storage_error(&aside, e))?;
        if !expected.is(&seen) {
            // Someone else's object: put it back where it was, unless yet another one
            // was created there meanwhile (that one is then the current holder).
            match self.store.rename_if_not_exists(&aside, path).await {
                Ok(()) => {}
                Err(object_store::Error::AlreadyExists { .. }) => {
                    let _ = self.store.delete(&aside).await;
                }
                Err(e) => return Err(Self::storage_error(path, e)),
            }
            return Ok(Replaced::Changed);
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        // The local store's tags do not identify a write (see `tags_identify_writes`).
        let created = match self.store.put_opts(path, payload, options).await {
            Ok(_) => Replaced::Done(Written::default()),
            Err(object_store::Error::AlreadyExists { .. }) => Replaced::Changed,
            Err(e) => return Err(Self::storage_error(path, e)),
        };
        match self.store.delete(&aside).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(created),
            Err(e) => Err(Self::storage_error(&aside, e)),
        }
    }

    /// Reads `range` of an object. The returned length always equals the range's length.
    pub async fn get_range(
        &self,
        file_type: FileType,
        name: &str,
        range: Range<u64>,
    ) -> Result<Bytes> {
        let path = file_type.path(name);
        let want = range.end - range.start;
        self.count(file_type, Op::Get);
        let bytes = self
            .store
            .get_range(&path, range.clone())
            .await
            .map_err(|e| Self::storage_error(&path, e))?;
        if bytes.len() as u64 != want {
            return Err(RepoError::corrupt(
                path.to_string(),
                format!("range {range:?} returned {} bytes", bytes.len()),
            ));
        }
        self.log.read(file_type, want);
        Ok(bytes)
    }

    /// Size of an object.
    pub async fn size(&self, file_type: FileType, name: &str) -> Result<u64> {
        Ok(self.head(file_type, name).await?.size)
    }

    /// Size and modification time of an object.
    pub async fn head(&self, file_type: FileType, name: &str) -> Result<Listed> {
        let meta = self.head_meta(file_type, name).await?;
        Ok(Listed {
            name: name.to_string(),
            size: meta.size,
            last_modified: meta.last_modified,
        })
    }

    /// The version of an object now: tag, version id and modification time.
    pub async fn head_version(&self, file_type: FileType, name: &str) -> Result<ObjectVersion> {
        Ok(ObjectVersion::of(&self.head_meta(file_type, name).await?))
    }

    async fn head_meta(&self, file_type: FileType, name: &str) -> Result<object_store::ObjectMeta> {
        let path = file_type.path(name);
        self.count(file_type, Op::Head);
        self.store
            .head(&path)
            .await
            .map_err(|e| Self::storage_error(&path, e))
    }

    /// True if the object exists.
    pub async fn exists(&self, file_type: FileType, name: &str) -> Result<bool> {
        match self.size(file_type, name).await {
            Ok(_) => Ok(true),
            Err(RepoError::MissingObject { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes an object that must not exist yet. Returns `Ok(false)` if it already existed
    /// (the existing object is left untouched).
    pub async fn create(
        &self,
        file_type: FileType,
        name: &str,
        payload: PutPayload,
    ) -> Result<bool> {
        Ok(self
            .create_written(file_type, name, payload)
            .await?
            .is_some())
    }

    /// As [`Storage::create`], returning what the store said of the new object (`None` if
    /// it already existed).
    pub async fn create_written(
        &self,
        file_type: FileType,
        name: &str,
        payload: PutPayload,
    ) -> Result<Option<Written>> {
        let path = file_type.path(name);
        self.count(file_type, Op::Put);
        self.log.written(file_type, payload.content_length() as u64);
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, payload, options).await {
            Ok(result) if self.tags_identify_writes => Ok(Some(Written::of(result))),
            Ok(_) => Ok(Some(Written::default())),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(Self::storage_error(&path, e)),
        }
    }

    /// Writes a content-addressed object: idempotent, an existing object of that name (which
    /// has the same content by construction) is kept.
    pub async fn put_content(
        &self,
        file_type: FileType,
        name: &str,
        payload: PutPayload,
    ) -> Result<()> {
        self.create(file_type, name, payload).await.map(|_| ())
    }

    /// Replaces or creates an object (only for objects that are not content-addressed).
    pub async fn overwrite(
        &self,
        file_type: FileType,
        name: &str,
        payload: PutPayload,
    ) -> Result<()> {
        let path = file_type.path(name);
        self.count(file_type, Op::Put);
        self.log.written(file_type, payload.content_length() as u64);
        self.store
            .put(&path, payload)
            .await
            .map(|_| ())
            .map_err(|e| Self::storage_error(&path, e))
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, file_type: FileType, name: &str) -> Result<()> {
        let path = file_type.path(name);
        self.count(file_type, Op::Delete);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Self::storage_error(&path, e)),
        }
    }

    /// Lists every object of a type (recursively for packs), skipping names that are not
    /// valid for that type (such as a local store's temporary files).
    pub async fn list(&self, file_type: FileType) -> Result<Vec<Listed>> {
        let prefix = file_type.dir();
        self.count(file_type, Op::List);
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| Self::storage_error(&prefix, e))?;
        let mut out: Vec<Listed> = metas
            .into_iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?.to_string();
                file_type.is_valid_name(&name).then_some(Listed {
                    name,
                    size: meta.size,
                    last_modified: meta.last_modified,
                })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connections_option_sets_requests_at_once() {
        let opts = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let storage = Storage::open_with_options("memory:", false, &[]).unwrap();
        assert_eq!(storage.transfer_concurrency(), 1);
        assert_eq!(storage.reads_in_flight(), DEFAULT_READS_IN_FLIGHT);
        for key in [
            "s3.connections",
            "gs.connections",
            "azure.connections",
            "connections",
        ] {
            let storage = Storage::open_with_options("memory:", false, &opts(&[(key, "3")]));
            let storage = storage.unwrap();
            assert_eq!(
                (storage.transfer_concurrency(), storage.reads_in_flight()),
                (3, 3)
            );
            // Wrapping the store keeps it.
            assert_eq!(storage.map_store(|s| s).reads_in_flight(), 3);
        }
        for bad in ["0", "many", "100000"] {
            let err =
                Storage::open_with_options("memory:", false, &opts(&[("s3.connections", bad)]));
            assert!(err.is_err(), "{bad}");
        }
        assert!(!is_connections_option("s3.connection"));
        assert!(!is_connections_option(".connections"));
    }

    #[tokio::test]
    async fn create_is_exclusive_and_content_put_idempotent() {
        let storage = Storage::in_memory();
        assert!(storage
            .create(FileType::Config, "", Bytes::from_static(b"a").into())
            .await
            .unwrap());
        assert!(!storage
            .create(FileType::Config, "", Bytes::from_static(b"b").into())
            .await
            .unwrap());
        assert_eq!(&storage.get(FileType::Config, "").await.unwrap()[..], b"a");
        let id = "ab".repeat(32);
        storage
            .put_content(FileType::Pack, &id, Bytes::from_static(b"p").into())
            .await
            .unwrap();
        storage
            .put_content(FileType::Pack, &id, Bytes::from_static(b"p").into())
            .await
            .unwrap();
        let listed = storage.list(FileType::Pack).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].size), (id.as_str(), 1));
        assert_eq!(
            &storage.get_range(FileType::Pack, &id, 0..1).await.unwrap()[..],
            b"p"
        );
        assert!(matches!(
            storage.get(FileType::Snapshot, &id).await,
            Err(RepoError::MissingObject { .. })
        ));
        storage.delete(FileType::Pack, &id).await.unwrap();
        storage.delete(FileType::Pack, &id).await.unwrap();
        // Above the threshold: multipart, same result.
        let big = bytes::Bytes::from(vec![9u8; MULTIPART_THRESHOLD + 1000]);
        let parts: PutPayload = [big.slice(..1000), big.slice(1000..)].into_iter().collect();
        storage
            .put_content(FileType::Pack, &id, parts)
            .await
            .unwrap();
        assert_eq!(storage.get(FileType::Pack, &id).await.unwrap(), big);
        storage.delete(FileType::Pack, &id).await.unwrap();
        assert!(!storage.exists(FileType::Pack, &id).await.unwrap());
    }
}
