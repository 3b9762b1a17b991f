//! The one way a sealed, content-addressed repository file is read and written: snapshots,
//! index files, pending-deletion records, drill and check records.
//!
//! Reading is always the same four steps, in this order: get the bytes; check that they hash
//! to the file's name (a swapped or planted file fails before any cryptography); authenticate
//! and decrypt with the file kind bound into the associated data (one kind cannot pass for
//! another); decode. Writing seals, names the file by the hash of its sealed bytes and stores
//! it with a create-only put, so a file appears complete or not at all.

use bytes::Bytes;
use cairn_pack::MasterKeys;
use futures::StreamExt;

use super::id::FileId;
use super::{check_content_id, content_id, open_object, seal_object, ObjectKind};
use crate::cache::MetadataCache;
use crate::error::{RepoError, Result};
use crate::storage::FileType;
use crate::Repository;

/// A kind of sealed, content-addressed repository file.
pub trait SealedFile: Sized + Send + 'static {
    /// The directory files of this kind live in.
    const FILE_TYPE: FileType;
    /// The kind bound into their associated data.
    const KIND: ObjectKind;
    /// Their typed id.
    type Id: FileId;

    /// The plaintext to seal.
    fn encode_file(&self) -> Vec<u8>;

    /// Decodes authenticated plaintext; `object` names the file in errors.
    fn decode_file(plain: &[u8], object: &str) -> Result<Self>;
}

/// The file's path in the repository, as errors name it (`snapshots/<id>`).
pub fn object_name<T: SealedFile>(id: &T::Id) -> String {
    format!("{}/{}", T::FILE_TYPE.dir(), id.as_str())
}

/// Checks that `sealed` is the file named `id`, authenticates it and decodes it.
pub fn open_file<T: SealedFile>(keys: &MasterKeys, id: &T::Id, sealed: &[u8]) -> Result<T> {
    let object = object_name::<T>(id);
    check_content_id(&object, id.as_str(), sealed)?;
    let plain = open_object(keys, T::KIND, &object, sealed)?;
    T::decode_file(&plain, &object)
}

/// Seals `value`; returns its id (the hash of the sealed bytes) and the bytes.
pub fn seal_file<T: SealedFile>(keys: &MasterKeys, value: &T) -> Result<(T::Id, Bytes)> {
    let sealed = seal_object(keys, T::KIND, &value.encode_file())?;
    let id = T::Id::from_name(&content_id(&sealed)).expect("a BLAKE3 hex digest is an id");
    Ok((id, sealed))
}

impl Repository {
    /// Reads, authenticates and decodes the file `id`.
    ///
    /// # Errors
    /// [`RepoError::MissingObject`] if it does not exist; [`RepoError::Corrupt`] or
    /// [`RepoError::Pack`] if it is not the file its name says or fails authentication;
    /// storage errors.
    pub(crate) async fn read_file<T: SealedFile>(&self, id: &T::Id) -> Result<T> {
        let name = id.as_str();
        let cache = (self.cache.as_deref()).filter(|_| MetadataCache::keeps(T::FILE_TYPE));
        if let Some(sealed) = cache.and_then(|c| c.get(T::FILE_TYPE, name)) {
            // Authenticated exactly as what comes from the store; a bad entry is refetched.
            match open_file(&self.keys, id, &sealed) {
                Ok(value) => return Ok(value),
                Err(_) => cache.into_iter().for_each(|c| c.remove(T::FILE_TYPE, name)),
            }
        }
        let sealed = self.storage.get(T::FILE_TYPE, name).await?;
        let value = open_file(&self.keys, id, &sealed)?;
        if let Some(cache) = cache {
            cache.put(T::FILE_TYPE, name, &sealed);
        }
        Ok(value)
    }

    /// Seals and stores `value`; returns its id.
    pub(crate) async fn write_file<T: SealedFile>(&self, value: &T) -> Result<T::Id> {
        let (id, sealed) = seal_file(&self.keys, value)?;
        self.storage
            .put_content(T::FILE_TYPE, id.as_str(), sealed.clone().into())
            .await?;
        // Written through: the next run here need not fetch what this one wrote.
        if let Some(cache) = (self.cache.as_deref()).filter(|_| MetadataCache::keeps(T::FILE_TYPE))
        {
            cache.put(T::FILE_TYPE, id.as_str(), &sealed);
        }
        Ok(id)
    }

    /// The ids of every file of one kind (names that are not ids are not files of ours).
    /// The listing also decides what the local cache keeps of that kind: entries the store
    /// no longer lists are dropped.
    pub(crate) async fn list_files<T: SealedFile>(&self) -> Result<Vec<T::Id>> {
        Ok(self
            .list_files_sized::<T>()
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }

    /// Like [`Repository::list_files`], with each file's stored size.
    pub(crate) async fn list_files_sized<T: SealedFile>(&self) -> Result<Vec<(T::Id, u64)>> {
        let listed = self.storage.list(T::FILE_TYPE).await?;
        if let Some(cache) = (self.cache.as_deref()).filter(|_| MetadataCache::keeps(T::FILE_TYPE))
        {
            cache.retain(
                T::FILE_TYPE,
                &listed.iter().map(|l| l.name.as_str()).collect(),
            );
        }
        Ok(listed
            .into_iter()
            .filter_map(|listed| T::Id::from_name(&listed.name).map(|id| (id, listed.size)))
            .collect())
    }

    /// Splits files (id and stored size) into batches to read one after another with
    /// [`Repository::read_these`], so that at most about `budget` stored bytes of them (and
    /// never fewer than one file) are held at once, however many there are.
    pub(crate) fn read_batches<I>(&self, files: Vec<(I, u64)>, budget: u64) -> Vec<Vec<I>> {
        let width = self.reads_in_flight().max(1);
        let mut batches: Vec<Vec<I>> = Vec::new();
        let mut bytes = 0;
        for (id, size) in files {
            match batches.last_mut() {
                Some(batch) if bytes + size <= budget && batch.len() < width => {
                    bytes += size;
                    batch.push(id);
                }
                _ => {
                    bytes = size;
                    batches.push(vec![id]);
                }
            }
        }
        batches
    }
    /// Every file of one kind with its id. A file removed between listing and reading (by a
    /// concurrent forget or prune) is left out; any other failure fails the read.
    pub(crate) async fn read_files<T: SealedFile>(&self) -> Result<Vec<(T::Id, T)>> {
        let ids = self.list_files::<T>().await?;
        self.read_these::<T>(ids)
            .await
            .into_iter()
            .filter_map(|(id, read)| match read {
                Ok(value) => Some(Ok((id, value))),
                Err(RepoError::MissingObject { .. }) => None,
                Err(e) => Some(Err(e)),
            })
            .collect()
    }

    /// Reads the files `ids`, each with its own outcome, for callers that report damaged
    /// files one by one (check) or retry vanished ones (index loading).
    pub(crate) async fn read_these<T: SealedFile>(
        &self,
        ids: Vec<T::Id>,
    ) -> Vec<(T::Id, Result<T>)> {
        futures::stream::iter(ids)
            .map(|id| async move {
                let read = self.read_file::<T>(&id).await;
                (id, read)
            })
            .buffer_unordered(self.reads_in_flight())
            .collect()
            .await
    }

    /// Deletes the file `id` (gone already counts as deleted).
    pub(crate) async fn delete_file<T: SealedFile>(&self, id: &T::Id) -> Result<()> {
        self.storage.delete(T::FILE_TYPE, id.as_str()).await
    }
}
