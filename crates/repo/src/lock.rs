//! Locks: backup markers and the one maintenance lock (docs/format.md#locks-and-concurrency).
//!
//! Backups never exclude each other or maintenance: each announces itself with a *marker*
//! (`locks/<random id>`) that it refreshes while it runs and removes when it ends. Prune and
//! index rebuilds take the *maintenance lock* (`locks/maintenance`), created with a
//! conditional put so exactly one holder exists. Both are refreshed every
//! [`LockTimings::refresh`] and count as stale once their object has not been rewritten for
//! [`LockTimings::expiry`], judged by the store's modification times. A holder that could not
//! refresh in time must stop before doing anything that relies on the lock:
//! [`LockGuard::check`] tells it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::object::{open_object, seal_object, ObjectKind};
use crate::repository::{hostname, username};
use crate::storage::{FileType, Listed, Storage, MAINTENANCE_LOCK};
use crate::Repository;

/// How often locks are rewritten and when an unrefreshed lock counts as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockTimings {
    /// Interval between refreshes.
    pub refresh: Duration,
    /// A lock not rewritten for this long is stale. Must exceed `refresh` by enough to
    /// absorb a slow store and the clock difference between hosts (default 30 min vs 5).
    pub expiry: Duration,
    /// Prune leaves alone any pack stored less than this before the oldest running backup
    /// began (or before the prune began). Every time compared is the store's, and a pack
    /// of a running backup is stamped after its marker, so this only absorbs differences
    /// between the clocks of a store's own front-end servers. Default 10 s.
    pub clock_margin: Duration,
}

impl Default for LockTimings {
    fn default() -> Self {
        LockTimings {
            refresh: Duration::from_secs(5 * 60),
            expiry: Duration::from_secs(30 * 60),
            clock_margin: Duration::from_secs(10),
        }
    }
}

impl LockTimings {
    /// Validates `refresh < expiry / 2`, so one failed refresh never makes a live lock stale.
    pub fn new(refresh: Duration, expiry: Duration) -> Result<Self> {
        if refresh.is_zero() || refresh * 2 > expiry {
            return Err(RepoError::InvalidInput(format!(
                "lock refresh interval {refresh:?} must be positive and at most half the expiry {expiry:?}"
            )));
        }
        Ok(LockTimings {
            refresh,
            expiry,
            ..Default::default()
        })
    }

    fn expiry_chrono(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.expiry).unwrap_or(chrono::Duration::MAX)
    }
}

/// What kind of lock an object is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// A running backup's marker (shared: any number at once).
    Backup,
    /// The maintenance lock (exclusive).
    Maintenance,
}

/// The sealed content of a lock object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Backup marker or maintenance lock.
    pub kind: LockKind,
    /// Host of the holder.
    pub hostname: String,
    /// User of the holder.
    pub username: String,
    /// Process id of the holder.
    pub pid: u32,
    /// When it was taken, by the holder's clock (RFC 3339).
    pub time: String,
    /// When it was first stored, by the store's clock (set from the first refresh on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Random token identifying the holder (so a refresh never adopts someone else's lock).
    pub token: String,
}

impl LockInfo {
    fn describe(&self) -> String {
        format!(
            "{} lock by {}@{} (pid {}) since {}",
            match self.kind {
                LockKind::Backup => "backup",
                LockKind::Maintenance => "maintenance",
            },
            self.username,
            self.hostname,
            self.pid,
            self.time
        )
    }
}

/// A lock object as found in the repository.
#[derive(Clone, Debug)]
pub struct LockStatus {
    /// Object name under `locks/`.
    pub name: String,
    /// Its content, if it authenticates and decodes.
    pub info: Option<LockInfo>,
    /// Why `info` is missing.
    pub problem: Option<String>,
    /// Last rewrite, by the store's clock.
    pub last_modified: DateTime<Utc>,
    /// Not rewritten for longer than the expiry, as of the time the list was taken.
    pub stale: bool,
}

impl LockStatus {
    /// When the lock was first stored (store clock): the `created` field, or for a lock not
    /// yet refreshed, its modification time.
    pub fn created(&self) -> DateTime<Utc> {
        self.info
            .as_ref()
            .and_then(|i| i.created)
            .unwrap_or(self.last_modified)
    }

    /// True for the maintenance lock.
    pub fn is_maintenance(&self) -> bool {
        self.name == MAINTENANCE_LOCK
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        let who = self
            .info
            .as_ref()
            .map(LockInfo::describe)
            .unwrap_or_else(|| format!("unreadable lock {}", self.name));
        if self.stale {
            format!("{who} (stale: last refreshed {})", self.last_modified)
        } else {
            who
        }
    }
}

struct GuardState {
    /// The holder's token, as written into the lock.
    token: String,
    /// Start of the last refresh that succeeded: the lock's store time is at least this.
    last_ok: Mutex<Instant>,
    /// Set once the lock is known to be gone or taken over.
    lost: Mutex<Option<String>>,
}

/// A held lock or marker, refreshed in the background until released or dropped.
///
/// Dropping without [`LockGuard::release`] stops the refresh and removes the object in the
/// background when a tokio runtime is available; if the process dies instead, the lock goes
/// stale after the expiry.
pub struct LockGuard {
    storage: Storage,
    name: String,
    created: DateTime<Utc>,
    timings: LockTimings,
    state: Arc<GuardState>,
    refresher: Option<tokio::task::JoinHandle<()>>,
    released: bool,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockGuard")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LockGuard {
    /// The lock's object name under `locks/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the lock was first stored, by the store's clock.
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    /// Ok while others are guaranteed to see this lock as live: it was refreshed recently
    /// enough (with one refresh interval to spare) and nobody removed it.
    ///
    /// # Errors
    /// [`RepoError::LockLost`] otherwise; the caller must stop before any step that relies
    /// on the lock.
    pub fn check(&self) -> Result<()> {
        if let Some(reason) = self.state.lost.lock().expect("lock state").clone() {
            return Err(RepoError::LockLost {
                lock: format!("locks/{}", self.name),
                reason,
            });
        }
        let age = self.state.last_ok.lock().expect("lock state").elapsed();
        if age + self.timings.refresh >= self.timings.expiry {
            return Err(RepoError::LockLost {
                lock: format!("locks/{}", self.name),
                reason: format!(
                    "not refreshed for {}s (expiry {}s): others may already treat it as stale",
                    age.as_secs(),
                    self.timings.expiry.as_secs()
                ),
            });
        }
        Ok(())
    }

    /// Refreshes now and returns the store's time of the rewrite (a clock every host of
    /// the repository agrees on).
    pub async fn refresh_now(&self, keys: &cairn_pack::MasterKeys) -> Result<DateTime<Utc>> {
        refresh_once(&self.storage, keys, &self.name, &self.state).await?;
        self.check()?;
        Ok(self
            .storage
            .head(FileType::Lock, &self.name)
            .await?
            .last_modified)
    }

    /// Stops refreshing and removes the lock.
    pub async fn release(mut self) -> Result<()> {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
        self.released = true;
        self.storage.delete(FileType::Lock, &self.name).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
        if !self.released {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let storage = self.storage.clone();
                let name = self.name.clone();
                handle.spawn(async move {
                    let _ = storage.delete(FileType::Lock, &name).await;
                });
            }
        }
    }
}

/// Rewrites the lock if it is still ours; records the loss otherwise.
async fn refresh_once(
    storage: &Storage,
    keys: &cairn_pack::MasterKeys,
    name: &str,
    state: &GuardState,
) -> Result<()> {
    let started = Instant::now();
    let object = format!("locks/{name}");
    let lose = |reason: String| {
        *state.lost.lock().expect("lock state") = Some(reason.clone());
        RepoError::LockLost {
            lock: object.clone(),
            reason,
        }
    };
    let sealed = match storage.get(FileType::Lock, name).await {
        Ok(sealed) => sealed,
        Err(RepoError::MissingObject { .. }) => {
            return Err(lose("it was removed (by `unlock`?)".into()))
        }
        Err(e) => return Err(e),
    };
    let info = decode_lock(keys, &object, &sealed)?;
    // A different token means someone removed this lock as stale and took it: never adopt.
    if info.token != state.token {
        return Err(lose(format!("taken over by {}", info.describe())));
    }
    // Re-sealing gives a fresh nonce; the rewrite's store time is the refresh time.
    let sealed = seal_object(keys, ObjectKind::Lock, &encode_lock(&info))?;
    storage
        .overwrite(FileType::Lock, name, sealed.into())
        .await?;
    *state.last_ok.lock().expect("lock state") = started;
    Ok(())
}

fn encode_lock(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec(info).expect("lock info serializes")
}

fn decode_lock(keys: &cairn_pack::MasterKeys, object: &str, sealed: &[u8]) -> Result<LockInfo> {
    let plain = open_object(keys, ObjectKind::Lock, object, sealed)?;
    parse_lock_info(&plain, object)
}

/// Parses a lock's plaintext (after authentication).
pub(crate) fn parse_lock_info(plain: &[u8], object: &str) -> Result<LockInfo> {
    serde_json::from_slice(plain)
        .map_err(|e| RepoError::corrupt(object, format!("invalid lock JSON: {e}")))
}

fn new_info(kind: LockKind) -> LockInfo {
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).expect("OS random source");
    LockInfo {
        kind,
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
        time: chrono::Local::now().to_rfc3339(),
        created: None,
        token: hex::encode(token),
    }
}

impl Repository {
    /// The lock timings this handle uses.
    pub fn lock_timings(&self) -> LockTimings {
        self.lock_timings
    }

    /// Sets the lock timings (every host of a repository should use the same expiry).
    pub fn set_lock_timings(&mut self, timings: LockTimings) {
        self.lock_timings = timings;
    }

    /// Every lock object, with staleness judged at `now` (the store's clock if the caller
    /// has it, else this host's).
    pub async fn list_locks_at(&self, now: DateTime<Utc>) -> Result<Vec<LockStatus>> {
        let listed = self.storage.list(FileType::Lock).await?;
        let expiry = self.lock_timings.expiry_chrono();
        let statuses: Vec<Result<Option<LockStatus>>> = futures::stream::iter(listed)
            .map(
                |Listed {
                     name,
                     last_modified,
                     ..
                 }| async move {
                    let object = format!("locks/{name}");
                    let (info, problem) = match self.storage.get(FileType::Lock, &name).await {
                        Ok(sealed) => match decode_lock(&self.keys, &object, &sealed) {
                            Ok(info) => (Some(info), None),
                            Err(e) => (None, Some(e.to_string())),
                        },
                        // Released between listing and reading.
                        Err(RepoError::MissingObject { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    Ok(Some(LockStatus {
                        stale: now.signed_duration_since(last_modified) > expiry,
                        name,
                        info,
                        problem,
                        last_modified,
                    }))
                },
            )
            .buffer_unordered(8)
            .collect()
            .await;
        let mut out = Vec::new();
        for status in statuses {
            out.extend(status?);
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every lock object, staleness judged by this host's clock.
    pub async fn list_locks(&self) -> Result<Vec<LockStatus>> {
        self.list_locks_at(Utc::now()).await
    }

    /// Announces a running backup: writes a fresh marker and keeps it refreshed.
    pub async fn lock_backup(&self) -> Result<LockGuard> {
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).expect("OS random source");
        let name = hex::encode(id);
        self.take_lock(name, LockKind::Backup).await
    }

    /// Takes the exclusive maintenance lock.
    ///
    /// # Errors
    /// [`RepoError::Locked`] naming the holder if it is taken (stale or not: a stale lock is
    /// removed only by [`Repository::unlock`], never silently).
    pub async fn lock_maintenance(&self) -> Result<LockGuard> {
        self.take_lock(MAINTENANCE_LOCK.to_string(), LockKind::Maintenance)
            .await
    }

    async fn take_lock(&self, name: String, kind: LockKind) -> Result<LockGuard> {
        let mut info = new_info(kind);
        let sealed = seal_object(&self.keys, ObjectKind::Lock, &encode_lock(&info))?;
        let started = Instant::now();
        if !self
            .storage
            .create(FileType::Lock, &name, sealed.into())
            .await?
        {
            let holder = self
                .list_locks()
                .await?
                .into_iter()
                .find(|l| l.name == name);
            let (holder, hint) = match holder {
                Some(l) if l.stale => (
                    l.describe(),
                    "; it is stale: if its holder is gone, remove it with `cairn unlock`".into(),
                ),
                Some(l) => (l.describe(), String::new()),
                None => ("a lock released just now".into(), "; try again".into()),
            };
            return Err(RepoError::Locked { holder, hint });
        }
        let created = self
            .storage
            .head(FileType::Lock, &name)
            .await?
            .last_modified;
        info.created = Some(created);
        let state = Arc::new(GuardState {
            token: info.token.clone(),
            last_ok: Mutex::new(started),
            lost: Mutex::new(None),
        });
        // Record the store-clock creation time at once; prune relies on it.
        let sealed = seal_object(&self.keys, ObjectKind::Lock, &encode_lock(&info))?;
        self.storage
            .overwrite(FileType::Lock, &name, sealed.into())
            .await?;
        let refresher = {
            let storage = self.storage.clone();
            let keys = Arc::clone(&self.keys);
            let name = name.clone();
            let state = Arc::clone(&state);
            let every = self.lock_timings.refresh;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    match refresh_once(&storage, &keys, &name, &state).await {
                        Err(RepoError::LockLost { .. }) => return,
                        // A transient failure is retried next round; the guard's check
                        // fails if they persist until the lock could be considered stale.
                        _ => continue,
                    }
                }
            })
        };
        Ok(LockGuard {
            storage: self.storage.clone(),
            name,
            created,
            timings: self.lock_timings,
            state,
            refresher: Some(refresher),
            released: false,
        })
    }

    /// Removes stale locks (all locks with `remove_all`); returns the names removed.
    ///
    /// Removing a live lock is unsafe: a running prune or backup relies on it. Only do that
    /// when every process using the repository is known to be stopped.
    pub async fn unlock(&self, remove_all: bool) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for lock in self.list_locks().await? {
            if remove_all || lock.stale {
                self.storage.delete(FileType::Lock, &lock.name).await?;
                removed.push(lock.name);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InitOptions;

    async fn repo() -> Repository {
        let options = InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            ..Default::default()
        };
        Repository::init(Storage::in_memory(), b"pw", options)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn maintenance_lock_is_exclusive_and_released() {
        let repo = repo().await;
        let held = repo.lock_maintenance().await.unwrap();
        held.check().unwrap();
        let err = repo.lock_maintenance().await.unwrap_err();
        assert!(matches!(err, RepoError::Locked { .. }), "{err}");
        assert!(err.to_string().contains("maintenance lock by"), "{err}");
        // Markers coexist with it and with each other.
        let a = repo.lock_backup().await.unwrap();
        let b = repo.lock_backup().await.unwrap();
        assert_ne!(a.name(), b.name());
        let locks = repo.list_locks().await.unwrap();
        assert_eq!(locks.len(), 3);
        assert!(locks.iter().all(|l| !l.stale && l.info.is_some()));
        assert_eq!(locks.iter().filter(|l| l.is_maintenance()).count(), 1);
        held.release().await.unwrap();
        a.release().await.unwrap();
        b.release().await.unwrap();
        assert!(repo.list_locks().await.unwrap().is_empty());
        repo.lock_maintenance()
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn stale_locks_are_reported_and_only_they_are_unlocked() {
        let mut repo = repo().await;
        repo.set_lock_timings(
            LockTimings::new(Duration::from_secs(3600), Duration::from_secs(7200)).unwrap(),
        );
        let held = repo.lock_maintenance().await.unwrap();
        let marker = repo.lock_backup().await.unwrap();
        // Seen from three hours later, both are stale.
        let later = Utc::now() + chrono::Duration::hours(3);
        let locks = repo.list_locks_at(later).await.unwrap();
        assert!(locks.iter().all(|l| l.stale));
        let err = repo.lock_maintenance().await.unwrap_err();
        assert!(!err.to_string().contains("stale"), "fresh lock: {err}");
        assert!(repo.unlock(false).await.unwrap().is_empty());
        assert_eq!(repo.unlock(true).await.unwrap().len(), 2);
        // The holders notice on their next refresh.
        let keys = Arc::clone(&repo.keys);
        assert!(matches!(
            held.refresh_now(&keys).await,
            Err(RepoError::LockLost { .. })
        ));
        assert!(matches!(held.check(), Err(RepoError::LockLost { .. })));
        assert!(marker.refresh_now(&keys).await.is_err());
    }

    #[tokio::test]
    async fn a_lock_taken_over_is_never_adopted() {
        let repo = repo().await;
        let held = repo.lock_maintenance().await.unwrap();
        repo.unlock(true).await.unwrap();
        let other = repo.lock_maintenance().await.unwrap();
        let err = held.refresh_now(&repo.keys).await.unwrap_err();
        assert!(err.to_string().contains("taken over"), "{err}");
        // The new holder is untouched.
        other.refresh_now(&repo.keys).await.unwrap();
        other.check().unwrap();
    }

    #[tokio::test]
    async fn check_fails_once_refreshes_lapse() {
        let mut repo = repo().await;
        repo.set_lock_timings(
            LockTimings::new(Duration::from_secs(10), Duration::from_secs(60)).unwrap(),
        );
        let held = repo.lock_backup().await.unwrap();
        held.check().unwrap();
        // As if the process had been stopped for 55 s: within one refresh of the expiry.
        *held.state.last_ok.lock().unwrap() = Instant::now() - Duration::from_secs(55);
        let err = held.check().unwrap_err();
        assert!(err.to_string().contains("not refreshed for 55s"), "{err}");
        // A successful refresh restores it.
        held.refresh_now(&repo.keys).await.unwrap();
        held.check().unwrap();
        assert!(LockTimings::new(Duration::from_secs(40), Duration::from_secs(60)).is_err());
        assert!(LockTimings::new(Duration::ZERO, Duration::from_secs(60)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn lock_json_round_trips_and_never_panics(
            host in ".{0,20}", pid in proptest::prelude::any::<u32>(),
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let mut info = new_info(LockKind::Maintenance);
            info.hostname = host;
            info.pid = pid;
            let text = encode_lock(&info);
            proptest::prop_assert_eq!(parse_lock_info(&text, "l").unwrap(), info);
            let _ = parse_lock_info(&bytes, "l");
        }
    }

    #[test]
    fn lock_info_round_trips() {
        let info = new_info(LockKind::Backup);
        let text = encode_lock(&info);
        let back: LockInfo = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, info);
        assert!(String::from_utf8(text)
            .unwrap()
            .contains("\"kind\":\"backup\""));
    }
}
