//! Opening, creating and managing a repository: config and keys.

use std::sync::Arc;

use bytes::Bytes;
use cairn_chunker::{Chunker, ChunkerSecret};
use cairn_pack::{BlobEncoder, KdfParams, KeyFile, MasterKeys};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::cache::MetadataCache;
use crate::config::{ChunkerSizes, InitOptions, RepoConfig, FORMAT_VERSION};
use crate::error::{RepoError, Result};
use crate::host::{hostname, username};
use crate::key_hint::{self, OpenOptions};
use crate::lock::{LockGuard, LockStatus, LockTimings, Locks};
use crate::object::{
    config_exists, content_id, create_config, fetch_config, open_config, KeyFiles,
};
use crate::storage::Storage;
use crate::unlock::{remembered_first, try_alone, KeyOrder};
use chrono::{DateTime, Utc};

/// The most key files [`Repository::open_with`] examines per open (restic's `maxKeys`): each
/// may cost a key derivation of up to the KDF ceiling (256 MiB, about half a second), so a
/// store holding many planted key files costs at most this many. A repository with more keys
/// than this is opened with a key hint, or by the key that last opened it on this host.
pub const MAX_KEYS_TRIED: usize = 20;

/// An open repository: its storage, unlocked keys and configuration.
///
/// Cheap to clone (shared state). Reading and writing snapshots, backing up and restoring need
/// the index as well: see [`Repository::load_index`].
#[derive(Clone)]
pub struct Repository {
    pub(crate) storage: Storage,
    pub(crate) keys: Arc<MasterKeys>,
    pub(crate) config: RepoConfig,
    pub(crate) chunker: Chunker,
    pub(crate) encoder: BlobEncoder,
    key_id: String,
    pub(crate) lock_timings: LockTimings,
    /// This host's cache of index files, snapshots and tree packs, if any (cache.rs).
    pub(crate) cache: Option<Arc<MetadataCache>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.storage.location())
            .field("id", &self.config.id)
            .finish_non_exhaustive()
    }
}

/// What a key file records about itself (sealed with the repository's data key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    /// Id of the key file (BLAKE3 of its bytes).
    #[serde(skip)]
    pub id: String,
    /// When it was created (RFC 3339).
    pub created: String,
    /// Host it was created on.
    pub hostname: String,
    /// User who created it.
    pub username: String,
    /// True for the key this repository was opened with.
    #[serde(skip)]
    pub current: bool,
}

impl Repository {
    /// Creates a repository at `storage` with one key for `password`.
    ///
    /// # Errors
    /// [`RepoError::AlreadyInitialized`] if a config exists; [`RepoError::InvalidInput`] if
    /// `options.kdf` is below the floor for new keys; storage errors otherwise. The
    /// config is written last, with a conditional create, so a concurrent or interrupted init
    /// never leaves a repository that looks valid but has no key.
    pub async fn init(
        storage: Storage,
        password: &[u8],
        options: InitOptions,
    ) -> Result<Repository> {
        let keys = MasterKeys::generate().map_err(|source| RepoError::Pack {
            object: "new keys".into(),
            source,
        })?;
        Self::init_with_keys(storage, password, options, keys).await
    }

    /// Like [`Repository::init`] with given master keys (for sharing a chunker secret).
    pub async fn init_with_keys(
        storage: Storage,
        password: &[u8],
        options: InitOptions,
        keys: MasterKeys,
    ) -> Result<Repository> {
        if config_exists(&storage).await? {
            return Err(RepoError::AlreadyInitialized {
                location: storage.location().to_string(),
            });
        }
        let mut id = [0u8; 32];
        cairn_pack::random_bytes(&mut id).map_err(|source| RepoError::Pack {
            object: "repository id".into(),
            source,
        })?;
        let config = RepoConfig {
            version: FORMAT_VERSION,
            id: hex::encode(id),
            chunker: ChunkerSizes {
                min: options.chunker.min() as u32,
                avg: options.chunker.avg() as u32,
                max: options.chunker.max() as u32,
            },
            pack_size: options.pack_size as u64,
            compression: options.compression,
        };
        config.validate()?;
        let keys = Arc::new(keys);
        let key_id = write_key(&storage, &keys, password, options.kdf).await?;
        if !create_config(&storage, &keys, &config).await? {
            // Lost a race with another init: remove our key and report.
            let files = KeyFiles::new(&storage);
            files.delete(&key_id).await?;
            return Err(RepoError::AlreadyInitialized {
                location: storage.location().to_string(),
            });
        }
        Self::assemble(storage, keys, config, key_id)
    }

    /// Creates a repository that chunks exactly as `like` does: its chunk sizes and chunker
    /// secret, with fresh data and blob-id keys. Copies between the two then move chunks one
    /// to one and deduplicate with each other (`init --copy-chunker-params-from`).
    pub async fn init_chunking_like(
        storage: Storage,
        password: &[u8],
        mut options: InitOptions,
        like: &Repository,
    ) -> Result<Repository> {
        let keys =
            MasterKeys::generate_sharing_chunker(like.keys.chunker_secret()).map_err(|source| {
                RepoError::Pack {
                    object: "new keys".into(),
                    source,
                }
            })?;
        options.chunker = like.config.chunker_params()?;
        Self::init_with_keys(storage, password, options, keys).await
    }

    /// Opens a repository with a password; see [`Repository::open_with`]. Tries key files in
    /// listing order and remembers nothing.
    ///
    /// # Errors
    /// As [`Repository::open_with`].
    pub async fn open(storage: Storage, password: &[u8]) -> Result<Repository> {
        Self::open_with(storage, password, &OpenOptions::default()).await
    }

    /// Opens the repository at `url` with `password`. `url` is a path, `file://`,
    /// `s3://bucket/prefix`, `gs://`, `az://`, or restic's `s3:host/bucket` syntax; backend
    /// credentials and settings come from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`)
    /// as for the CLI. For options (`-o` settings, a key hint, a cache directory) use
    /// [`Storage::open_with_options`] and [`Repository::open_with`].
    pub async fn open_url(url: &str, password: &[u8]) -> Result<Repository> {
        Self::open(Storage::open(url)?, password).await
    }

    /// Creates a repository at `url` (as for [`Repository::open_url`]; a local directory is
    /// created) with the default options, and opens it.
    pub async fn init_url(url: &str, password: &[u8]) -> Result<Repository> {
        Self::init(
            Storage::open_or_create(url)?,
            password,
            InitOptions::default(),
        )
        .await
    }

    /// Opens a repository with a password: finds the key file it unlocks.
    ///
    /// Anyone who can write `keys/` decides what this costs, so (docs/format.md#key-files):
    /// key files are fetched one at a time, the hinted ones first (`options.key_hint`, then the
    /// key that last opened this repository if `options.cache_dir` is set); a file whose
    /// content does not hash to its name, or that is larger than any key file, is skipped
    /// before any key derivation; costs above the ceiling are refused unread
    /// ([`KdfParams::new`]); and at most [`MAX_KEYS_TRIED`] key files are examined. On success
    /// the key that opened is remembered in `options.cache_dir` (best effort).
    ///
    /// # Errors
    /// [`RepoError::RepositoryNotFound`] without a config; [`RepoError::WrongPassword`] if no
    /// key opens (its message counts the key derivations run and names every key file that was
    /// skipped, and says so when the limit stopped the search); [`RepoError::Corrupt`] /
    /// [`RepoError::Pack`] for a damaged config; storage errors.
    pub async fn open_with(
        storage: Storage,
        password: &[u8],
        options: &OpenOptions,
    ) -> Result<Repository> {
        let config_bytes = fetch_config(&storage).await?;
        // Names this repository in the hint cache before any key has opened it.
        let cache_name = content_id(&config_bytes);
        let files = KeyFiles::new(&storage);
        // The key that last opened it here is tried alone first: no listing of the keys.
        let first = remembered_first(options, &cache_name);
        let alone = match &first {
            Some(name) => try_alone(files, name, password)
                .await?
                .map(|keys| (keys, name.clone())),
            None => None,
        };
        let (keys, key_id) = match alone {
            Some(unlocked) => unlocked,
            None => {
                let listed = files.list().await?;
                let order = KeyOrder::new(&listed, options, &cache_name, first.as_deref());
                let trial = order.try_keys(files, &listed, password).await?;
                let Some(unlocked) = trial.unlocked else {
                    return Err(RepoError::WrongPassword {
                        location: storage.location().to_string(),
                        detail: trial.detail(listed.len(), order.notes),
                    });
                };
                if let Some(dir) = &options.cache_dir {
                    if order.remembered.as_deref() != Some(unlocked.1.as_str()) {
                        key_hint::write(dir, &cache_name, &unlocked.1);
                    }
                }
                unlocked
            }
        };
        let config = open_config(&keys, &config_bytes)?;
        let mut repo = Self::assemble(storage, Arc::new(keys), config, key_id)?;
        repo.cache = options
            .cache_dir
            .as_ref()
            .and_then(|dir| MetadataCache::open(dir.join(&cache_name), options.cache_limit()))
            .map(Arc::new);
        Ok(repo)
    }

    /// The same repository without the local cache: for `check`, which judges what the
    /// store holds, not what this host remembers.
    pub fn uncached(&self) -> Repository {
        Repository {
            cache: None,
            ..self.clone()
        }
    }

    /// The same repository reading through `cache` instead of its own (none if `None`).
    pub(crate) fn with_cache(&self, cache: Option<MetadataCache>) -> Repository {
        Repository {
            cache: cache.map(Arc::new),
            ..self.clone()
        }
    }

    /// The local metadata cache in use, if any.
    pub fn cache(&self) -> Option<&MetadataCache> {
        self.cache.as_deref()
    }

    fn assemble(
        storage: Storage,
        keys: Arc<MasterKeys>,
        config: RepoConfig,
        key_id: String,
    ) -> Result<Repository> {
        let chunker = Chunker::new(
            config.chunker_params()?,
            &ChunkerSecret::from_bytes(*keys.chunker_secret()),
        );
        let encoder = config.encoder()?;
        Ok(Repository {
            storage,
            keys,
            config,
            chunker,
            encoder,
            key_id,
            lock_timings: LockTimings::default(),
            cache: None,
        })
    }

    /// The repository configuration.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// Objects transferred at once by bulk operations (see
    /// [`Storage::transfer_concurrency`]).
    pub fn transfer_concurrency(&self) -> usize {
        self.storage.transfer_concurrency()
    }

    /// Small reads (trees, metadata files) made at once (see
    /// [`Storage::reads_in_flight`]).
    pub fn reads_in_flight(&self) -> usize {
        self.storage.reads_in_flight()
    }

    /// The id a blob with content `plaintext` has in this repository (keyed: says nothing
    /// about the content to someone without the key). Readers use it to recognize known
    /// content, such as the all-zero chunks a sparse file's holes are stored as.
    pub fn blob_id(&self, plaintext: &[u8]) -> cairn_pack::BlobId {
        self.keys.blob_id(plaintext)
    }

    /// Where this repository's writers cut large directories into parts (keyed, so the
    /// boundaries say nothing about names to someone without the key).
    pub fn splitter(&self) -> crate::tree::Splitter {
        crate::tree::Splitter::new(self.keys.data_key())
    }

    /// Every key file by name, with its bytes (or why they could not be read), for checks
    /// that judge key files without unlocking them.
    pub(crate) async fn key_files(&self) -> Result<Vec<(String, Bytes)>> {
        let files = KeyFiles::new(&self.storage);
        let mut out = Vec::new();
        for listed in files.list().await? {
            // `None`: removed since the listing (a concurrent `key remove`).
            if let Some(bytes) = files.fetch(&listed.name).await? {
                out.push((listed.name, bytes));
            }
        }
        Ok(out)
    }

    /// The storage this repository lives in.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// This repository's locks and backup markers ([`Locks`]).
    pub fn locks(&self) -> Locks {
        Locks::new(
            self.storage.clone(),
            Arc::clone(&self.keys),
            self.lock_timings,
        )
    }

    /// The lock timings this handle uses.
    pub fn lock_timings(&self) -> LockTimings {
        self.lock_timings
    }

    /// Sets the lock timings (every host of a repository should use the same expiry).
    pub fn set_lock_timings(&mut self, timings: LockTimings) {
        self.lock_timings = timings;
    }

    /// Announces a running backup; see [`Locks::lock_backup`].
    pub async fn lock_backup(&self) -> Result<LockGuard> {
        self.locks().lock_backup().await
    }

    /// Takes the exclusive maintenance lock; see [`Locks::lock_maintenance`].
    pub async fn lock_maintenance(&self) -> Result<LockGuard> {
        self.locks().lock_maintenance().await
    }

    /// Every lock, staleness judged by the store's clock; see [`Locks::list_locks`].
    pub async fn list_locks(&self) -> Result<Vec<LockStatus>> {
        self.locks().list_locks().await
    }

    /// Every lock, staleness judged at `now`; see [`Locks::list_locks_at`].
    pub async fn list_locks_at(&self, now: DateTime<Utc>) -> Result<Vec<LockStatus>> {
        self.locks().list_locks_at(now).await
    }

    /// The store's clock now; see [`Locks::store_time`].
    pub async fn store_time(&self) -> Result<DateTime<Utc>> {
        self.locks().store_time().await
    }

    /// Removes dead locks (all with `remove_all`); see [`Locks::unlock`].
    pub async fn unlock(&self, remove_all: bool) -> Result<Vec<(String, String)>> {
        self.locks().unlock(remove_all).await
    }

    /// Adds a key file for `password`; returns its id.
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] when `kdf` is below the floor for new keys
    /// ([`KdfParams::check_new_key`]); storage errors.
    pub async fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<String> {
        write_key(&self.storage, &self.keys, password, kdf).await
    }

    /// Lists every key with its info. A key file that does not hash to its name, does not
    /// parse or whose info does not authenticate is an error naming it, not skipped.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let files = KeyFiles::new(&self.storage);
        let mut out = Vec::new();
        for listed in files.list().await? {
            let object = KeyFiles::object_name(&listed.name);
            let bytes = files.fetch_checked(&listed.name).await?;
            let key_file = KeyFile::parse(&bytes).map_err(|source| RepoError::Pack {
                object: object.clone(),
                source,
            })?;
            let info = key_file
                .info(&self.keys)
                .map_err(|source| RepoError::Pack {
                    object: object.clone(),
                    source,
                })?;
            let mut info: KeyInfo = serde_json::from_slice(&info)
                .map_err(|e| RepoError::corrupt(&object, format!("key info: {e}")))?;
            info.current = listed.name == self.key_id;
            info.id = listed.name;
            out.push(info);
        }
        Ok(out)
    }

    /// Removes a key (by full id or unique prefix). Never removes the key in use, so the last
    /// key can never be removed.
    pub async fn remove_key(&self, id_or_prefix: &str) -> Result<String> {
        let files = KeyFiles::new(&self.storage);
        let keys = files.list().await?;
        let matches: Vec<_> = keys
            .iter()
            .filter(|k| k.name.starts_with(id_or_prefix))
            .collect();
        let key = match matches.as_slice() {
            [one] => one.name.clone(),
            [] => {
                return Err(RepoError::InvalidInput(format!(
                    "no key with id {id_or_prefix}"
                )))
            }
            _ => {
                return Err(RepoError::InvalidInput(format!(
                    "key id prefix {id_or_prefix} is ambiguous"
                )))
            }
        };
        if key == self.key_id {
            return Err(RepoError::InvalidInput(
                "refusing to remove the key this repository was opened with (add another key and open with it first)".into(),
            ));
        }
        files.delete(&key).await?;
        Ok(key)
    }

    /// Replaces the current key with one for `new_password`: the new key is written first,
    /// then the old one removed, so an interruption leaves both (never neither).
    ///
    /// # Errors
    /// As [`Repository::add_key`].
    pub async fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<String> {
        let new_id = write_key(&self.storage, &self.keys, new_password, kdf).await?;
        let files = KeyFiles::new(&self.storage);
        files.delete(&self.key_id).await?;
        self.key_id = new_id.clone();
        Ok(new_id)
    }
}

async fn write_key(
    storage: &Storage,
    keys: &Arc<MasterKeys>,
    password: &[u8],
    kdf: KdfParams,
) -> Result<String> {
    // The weakest key sets the repository's security: no new key below the floor. This
    // crate's own unit tests are exempt (they make hundreds of throwaway repositories);
    // integration tests and other crates use `KdfParams::insecure_for_tests`.
    if let Err(e) = kdf.check_new_key() {
        if !cfg!(test) {
            return Err(RepoError::InvalidInput(format!("new key: {e}")));
        }
    }
    let info = KeyInfo {
        id: String::new(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        hostname: hostname(),
        username: username(),
        current: false,
    };
    let info = serde_json::to_vec(&info).expect("key info serializes");
    let keys = Arc::clone(keys);
    let password = Zeroizing::new(password.to_vec());
    let key_file =
        tokio::task::spawn_blocking(move || KeyFile::create(&keys, &password, kdf, &info))
            .await
            .map_err(RepoError::task("key derivation task"))?
            .map_err(|source| RepoError::Pack {
                object: "new key file".into(),
                source,
            })?;
    KeyFiles::new(storage)
        .store(Bytes::from(key_file.to_bytes()))
        .await
}
