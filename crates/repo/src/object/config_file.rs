//! The repository config (`config`): one per repository, under a fixed name, sealed with
//! the config kind bound into its associated data (docs/format.md#sealed-objects).
//!
//! It is the one sealed file read before the keys that open it are known: its bytes are
//! fetched first (their hash names the repository in the local caches), then opened once a
//! key file has unlocked the master keys.

use bytes::Bytes;
use cairn_pack::MasterKeys;

use super::{open_object, seal_object, ObjectKind};
use crate::config::RepoConfig;
use crate::error::{RepoError, Result};
use crate::storage::{FileType, Storage};

/// The config's object name, as errors name it.
pub const CONFIG_OBJECT: &str = "config";

/// True if `storage` holds a repository config.
pub async fn config_exists(storage: &Storage) -> Result<bool> {
    storage.exists(FileType::Config, "").await
}

/// The sealed config as stored.
///
/// # Errors
/// [`RepoError::RepositoryNotFound`] when there is none; storage errors.
pub async fn fetch_config(storage: &Storage) -> Result<Bytes> {
    match storage.get(FileType::Config, "").await {
        Ok(bytes) => Ok(bytes),
        Err(RepoError::MissingObject { .. }) => Err(RepoError::RepositoryNotFound {
            location: storage.location().to_string(),
        }),
        Err(e) => Err(e),
    }
}

/// Seals and stores `config` unless a config exists; `Ok(false)` if one does (another
/// `init` won the race), leaving it untouched.
pub async fn create_config(
    storage: &Storage,
    keys: &MasterKeys,
    config: &RepoConfig,
) -> Result<bool> {
    let sealed = seal_object(
        keys,
        ObjectKind::Config,
        &serde_json::to_vec(config).expect("config serializes"),
    )?;
    storage.create(FileType::Config, "", sealed.into()).await
}

/// Opens and validates the sealed config with the unlocked keys. It authenticated, so it
/// was written with the key: a value out of range is damage (or a hostile key holder), not
/// the caller's mistake, and is [`RepoError::Corrupt`].
pub fn open_config(keys: &MasterKeys, sealed: &[u8]) -> Result<RepoConfig> {
    let plain = open_object(keys, ObjectKind::Config, CONFIG_OBJECT, sealed)?;
    let config: RepoConfig = serde_json::from_slice(&plain)
        .map_err(|e| RepoError::corrupt(CONFIG_OBJECT, format!("invalid JSON: {e}")))?;
    config
        .validate()
        .map_err(|e| e.invalid_as_corrupt(CONFIG_OBJECT))?;
    Ok(config)
}
