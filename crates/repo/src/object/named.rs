//! Sealed files named by their writer rather than by their content (locks): the name is
//! bound into the associated data ([`seal_named`](super::seal_named)), so a copy under
//! another name, or of another kind, does not authenticate. They are the repository's only
//! mutable files, so besides read and create they have a conditional replace.

use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use cairn_pack::MasterKeys;

use super::{open_named, seal_named, ObjectKind};
use crate::error::Result;
use crate::storage::{FileType, Listed, ObjectVersion, Replaced, Storage, Written};

/// A kind of sealed file named by its writer.
pub trait NamedFile: Sized + Send + Sync + 'static {
    /// The directory files of this kind live in.
    const FILE_TYPE: FileType;
    /// The kind bound into their associated data, with the name.
    const KIND: ObjectKind;

    /// The plaintext to seal.
    fn encode_file(&self) -> Vec<u8>;

    /// Decodes authenticated plaintext; `object` names the file in errors.
    fn decode_file(plain: &[u8], object: &str) -> Result<Self>;
}

/// The files of one named kind in a repository, with the keys that seal them.
pub struct NamedFiles<T> {
    storage: Storage,
    keys: Arc<MasterKeys>,
    kind: PhantomData<fn() -> T>,
}

impl<T> Clone for NamedFiles<T> {
    fn clone(&self) -> Self {
        NamedFiles {
            storage: self.storage.clone(),
            keys: Arc::clone(&self.keys),
            kind: PhantomData,
        }
    }
}

impl<T: NamedFile> NamedFiles<T> {
    /// The files of kind `T` in `storage`, sealed with `keys`.
    pub fn new(storage: Storage, keys: Arc<MasterKeys>) -> Self {
        NamedFiles {
            storage,
            keys,
            kind: PhantomData,
        }
    }

    /// Where the files are stored, for messages.
    pub fn location(&self) -> &str {
        self.storage.location()
    }

    /// The file's path in the repository, as errors name it and as its AD binds it.
    pub fn object_name(name: &str) -> String {
        format!("{}/{name}", T::FILE_TYPE.dir())
    }

    /// Seals `value` under `name`.
    pub fn seal(&self, name: &str, value: &T) -> Result<Bytes> {
        seal_named(
            &self.keys,
            T::KIND,
            &Self::object_name(name),
            &value.encode_file(),
        )
    }

    /// Authenticates `sealed` as the file `name` and decodes it.
    pub fn open(&self, name: &str, sealed: &[u8]) -> Result<T> {
        let object = Self::object_name(name);
        let plain = open_named(&self.keys, T::KIND, &object, sealed)?;
        T::decode_file(&plain, &object)
    }

    /// Every stored file of this kind.
    pub async fn list(&self) -> Result<Vec<Listed>> {
        self.storage.list(T::FILE_TYPE).await
    }

    /// The file `name` as stored, unopened ([`RepoError::MissingObject`] if absent).
    ///
    /// [`RepoError::MissingObject`]: crate::RepoError::MissingObject
    pub async fn fetch(&self, name: &str) -> Result<Bytes> {
        self.storage.get(T::FILE_TYPE, name).await
    }

    /// The file `name` as stored, unopened, with the version read.
    pub async fn fetch_versioned(&self, name: &str) -> Result<(Bytes, ObjectVersion)> {
        self.storage.get_versioned(T::FILE_TYPE, name).await
    }

    /// The version of file `name` now.
    pub async fn version(&self, name: &str) -> Result<ObjectVersion> {
        self.storage.head_version(T::FILE_TYPE, name).await
    }

    /// Stores `value` as `name` unless that exists; `None` if it did (left untouched).
    pub async fn create(&self, name: &str, value: &T) -> Result<Option<Written>> {
        let sealed = self.seal(name, value)?;
        self.storage
            .create_written(T::FILE_TYPE, name, sealed.into())
            .await
    }

    /// Replaces `name` with `value` only if it is still the version `expected`.
    pub async fn replace(
        &self,
        name: &str,
        value: &T,
        expected: &ObjectVersion,
    ) -> Result<Replaced> {
        let sealed = self.seal(name, value)?;
        self.storage
            .replace(T::FILE_TYPE, name, sealed.into(), expected)
            .await
    }

    /// Removes `name` (gone already counts as removed).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.storage.delete(T::FILE_TYPE, name).await
    }
}
