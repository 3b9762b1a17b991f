//! Key files (`keys/<id>`): the master keys wrapped by a password (docs/format.md#key-files).
//!
//! They are read before any master key is known, so they are not sealed files: each is
//! named by the BLAKE3 of its bytes, and that name is checked before the file is parsed or
//! any key derivation runs, so a file copied or altered under another name is never
//! mistaken for the key file it claims to be.

use bytes::Bytes;

use super::{check_content_id, content_id};
use crate::error::{RepoError, Result};
use crate::storage::{FileType, Listed, Storage};

/// The key files of the repository in one store.
#[derive(Clone, Copy)]
pub struct KeyFiles<'a> {
    storage: &'a Storage,
}

impl<'a> KeyFiles<'a> {
    /// The key files in `storage`.
    pub fn new(storage: &'a Storage) -> Self {
        KeyFiles { storage }
    }

    /// The key file's object name, as errors name it (`keys/<id>`).
    pub fn object_name(name: &str) -> String {
        format!("keys/{name}")
    }

    /// Every stored key file, with its size (names are not checked here).
    pub async fn list(&self) -> Result<Vec<Listed>> {
        self.storage.list(FileType::Key).await
    }

    /// The bytes of key file `name` as stored, unchecked; `None` if it was removed since it
    /// was listed (a concurrent `key remove`).
    pub async fn fetch(&self, name: &str) -> Result<Option<Bytes>> {
        match self.storage.get(FileType::Key, name).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(RepoError::MissingObject { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The bytes of key file `name`, checked against its name.
    ///
    /// # Errors
    /// [`RepoError::MissingObject`] if it does not exist; [`RepoError::Corrupt`] if its bytes
    /// do not hash to its name.
    pub async fn fetch_checked(&self, name: &str) -> Result<Bytes> {
        let bytes = self.storage.get(FileType::Key, name).await?;
        check_content_id(&Self::object_name(name), name, &bytes)?;
        Ok(bytes)
    }

    /// Stores a key file under the hash of its bytes; returns that name.
    pub async fn store(&self, bytes: Bytes) -> Result<String> {
        let name = content_id(&bytes);
        self.storage
            .put_content(FileType::Key, &name, bytes.into())
            .await?;
        Ok(name)
    }

    /// Removes key file `name` (gone already counts as removed).
    pub async fn delete(&self, name: &str) -> Result<()> {
        self.storage.delete(FileType::Key, name).await
    }
}
