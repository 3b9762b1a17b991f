//! Locks: backup markers and the one maintenance lock (docs/format.md#locks-and-concurrency).
//!
//! Backups never exclude each other or maintenance: each announces itself with a *marker*
//! (`locks/<random id>`) that it refreshes while it runs and removes when it ends. Prune and
//! index rebuilds take the *maintenance lock* (`locks/maintenance`), created with a
//! conditional put so exactly one holder exists. Both are refreshed every
//! [`LockTimings::refresh`] and count as stale once their object has not been rewritten for
//! [`LockTimings::expiry`], judged by the store's modification times. A holder that could not
//! refresh in time must stop before doing anything that relies on the lock:
//! [`LockGuard::check`] tells it, and [`LockGuard::refresh_now`] confirms it by the store's
//! clock.
//!
//! A lapse is final. A holder whose lock went unrefreshed for long enough that another
//! host may have judged it stale (by its own boot clock, or by the gap the store's clock
//! shows between two of its writes) never rewrites it again: a prune may already have
//! deleted what the holder wrote. Refreshes are conditional writes of the version the
//! holder read, so a lock removed by `unlock` and taken by someone else is never
//! overwritten. Lock objects are sealed bound to their name, so a copy under another name
//! does not authenticate and counts for nothing.

mod holder;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::error::{RepoError, Result};
use crate::host::{hostname, username};
use crate::object::{NamedFile, NamedFiles, ObjectKind};
use crate::storage::{FileType, Listed, ObjectVersion, Replaced, Storage, MAINTENANCE_LOCK};
use holder::{boot_time, holder_gone, ProcessIdentity};

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

    /// The longest gap between two writes of a lock, by the store's clock, after which
    /// another host may have seen it stale: the expiry less the store's own clock spread.
    fn safe_gap(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.expiry.saturating_sub(self.clock_margin))
            .unwrap_or(chrono::Duration::MAX)
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
    /// The holder's host boot id (Linux), so a lock from before a reboot is known dead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The holder's process id namespace (Linux), so containers sharing a host name never
    /// judge each other's process ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_ns: Option<String>,
    /// The holder's start time in clock ticks after boot (Linux), so a reused process id
    /// is not taken for the holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_ticks: Option<u64>,
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

    fn identity(&self) -> ProcessIdentity {
        ProcessIdentity {
            boot_id: self.boot_id.clone(),
            pid_ns: self.pid_ns.clone(),
            start_ticks: self.start_ticks,
        }
    }
}

/// A lock object as found in the repository.
#[derive(Clone, Debug)]
pub struct LockStatus {
    /// Object name under `locks/`.
    pub name: String,
    /// Its content, if it authenticates (under this name) and decodes.
    pub info: Option<LockInfo>,
    /// Why `info` is missing.
    pub problem: Option<String>,
    /// Last rewrite, by the store's clock.
    pub last_modified: DateTime<Utc>,
    /// Not rewritten for longer than the expiry, as of the time the list was taken.
    pub stale: bool,
    /// Set when the lock was taken on this host by a process that no longer exists (the
    /// reason); such a lock is dead whatever its age.
    pub holder_gone: Option<String>,
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

    /// Live: authenticates, not stale, holder not known to be gone. Only live locks hold
    /// anything back (prune's protection of running backups, the maintenance lock).
    pub fn is_live(&self) -> bool {
        self.info.is_some() && !self.stale && self.holder_gone.is_none()
    }

    /// Why `unlock` may remove it without `--remove-all`, if it may.
    pub fn dead_reason(&self) -> Option<String> {
        if let Some(problem) = &self.problem {
            return Some(format!(
                "it does not authenticate as locks/{}: {problem}",
                self.name
            ));
        }
        if let Some(gone) = &self.holder_gone {
            return Some(gone.clone());
        }
        self.stale
            .then(|| format!("stale: last refreshed {}", self.last_modified))
    }

    /// One line for messages.
    pub fn describe(&self) -> String {
        let who = self
            .info
            .as_ref()
            .map(LockInfo::describe)
            .unwrap_or_else(|| format!("unreadable lock {}", self.name));
        match self.dead_reason() {
            Some(reason) if self.info.is_some() => format!("{who} ({reason})"),
            _ => who,
        }
    }
}

struct GuardState {
    /// The holder's token, as written into the lock.
    token: String,
    /// Boot-clock time at the start of the last refresh that succeeded: the lock's store
    /// time is at least this recent.
    last_ok: Mutex<Duration>,
    /// Set once the lock is lost (removed, taken over or lapsed); final.
    lost: Mutex<Option<String>>,
    /// One refresh at a time: the background refresher and `refresh_now` would otherwise
    /// see each other's conditional writes as someone else's.
    refreshing: tokio::sync::Mutex<()>,
    /// What the lock holds, as last written (with its store-clock creation time once known).
    info: Mutex<LockInfo>,
    /// The version of the lock as this holder last wrote it, when the store confirmed it
    /// (its tag read back right after the write). A refresh then replaces that version
    /// without reading the lock first: the conditional write itself proves it is still
    /// ours. `None` when not known; the next refresh reads the lock and checks its token.
    written: Mutex<Option<ObjectVersion>>,
}

impl GuardState {
    fn lost(&self) -> Option<String> {
        self.lost.lock().expect("lock state").clone()
    }

    fn lose(&self, reason: String) {
        let mut lost = self.lost.lock().expect("lock state");
        if lost.is_none() {
            *lost = Some(reason);
        }
    }
}

/// A held lock or marker, refreshed in the background until released or dropped.
///
/// Dropping without [`LockGuard::release`] stops the refresh and removes the object in the
/// background when a tokio runtime is available; if the process dies instead, the lock goes
/// stale after the expiry, or at once for `unlock` on the same host.
pub struct LockGuard {
    files: NamedFiles<LockInfo>,
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

fn lock_object(name: &str) -> String {
    format!("locks/{name}")
}

/// Confirms a held lock from another task (a backup's uploader confirms the marker around
/// every index file it publishes). Holds no lock itself: it lives no longer than the guard's
/// usefulness, and refreshing a released lock fails as "removed".
#[derive(Clone)]
pub struct LockConfirmer {
    files: NamedFiles<LockInfo>,
    name: String,
    timings: LockTimings,
    state: Arc<GuardState>,
}

impl std::fmt::Debug for LockConfirmer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockConfirmer")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LockConfirmer {
    /// As [`LockGuard::refresh_now`].
    ///
    /// # Errors
    /// As [`LockGuard::refresh_now`].
    pub async fn confirm(&self) -> Result<DateTime<Utc>> {
        let refreshed = refresh_once(&self.files, &self.name, &self.state, &self.timings).await?;
        check_state(&self.state, &self.name, &self.timings)?;
        Ok(refreshed.at)
    }
}

impl LockGuard {
    /// A handle that confirms this lock from another task.
    pub fn confirmer(&self) -> LockConfirmer {
        LockConfirmer {
            files: self.files.clone(),
            name: self.name.clone(),
            timings: self.timings,
            state: Arc::clone(&self.state),
        }
    }

    /// The lock's object name under `locks/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// When the lock was first stored, by the store's clock.
    pub fn created(&self) -> DateTime<Utc> {
        self.created
    }

    /// Ok while others are guaranteed to see this lock as live, as far as this host can
    /// tell without asking the store: it was refreshed recently enough by the boot clock
    /// (which counts suspension), with one refresh interval to spare, and was never lost.
    /// Once this fails it fails for good.
    ///
    /// # Errors
    /// [`RepoError::LockLost`] otherwise; the caller must stop before any step that relies
    /// on the lock.
    pub fn check(&self) -> Result<()> {
        check_state(&self.state, &self.name, &self.timings)
    }

    /// Refreshes now and confirms by the store's clock that the lock never lapsed: the
    /// gap between the store's time of this rewrite and of the previous one is within
    /// the expiry. Returns the store's time of the rewrite (a clock every host of the
    /// repository agrees on).
    ///
    /// # Errors
    /// [`RepoError::LockLost`] if the lock lapsed, was removed or taken over (final);
    /// storage errors otherwise.
    pub async fn refresh_now(&self) -> Result<DateTime<Utc>> {
        self.confirmer().confirm().await
    }

    /// Stops refreshing and removes the lock.
    pub async fn release(mut self) -> Result<()> {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
        self.released = true;
        // A lost lock may be someone else's by now (removed and taken): never delete it.
        // One that lapsed but is still ours goes stale and is ignored, then unlocked.
        if self.state.lost().is_some() {
            return Ok(());
        }
        self.files.delete(&self.name).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(task) = self.refresher.take() {
            task.abort();
        }
        if !self.released && self.state.lost().is_none() {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                let files = self.files.clone();
                let name = self.name.clone();
                handle.spawn(async move {
                    let _ = files.delete(&name).await;
                });
            }
        }
    }
}

fn lost_error(name: &str, reason: String) -> RepoError {
    RepoError::LockLost {
        lock: lock_object(name),
        reason,
    }
}

fn check_state(state: &GuardState, name: &str, timings: &LockTimings) -> Result<()> {
    if let Some(reason) = state.lost() {
        return Err(lost_error(name, reason));
    }
    let age = boot_time().saturating_sub(*state.last_ok.lock().expect("lock state"));
    if age + timings.refresh >= timings.expiry {
        state.lose(format!(
            "lock lapsed: not refreshed for {}s (expiry {}s), so others may have treated this run as gone",
            age.as_secs(),
            timings.expiry.as_secs()
        ));
        return Err(lost_error(name, state.lost().unwrap_or_default()));
    }
    Ok(())
}

/// Store times of a successful refresh.
struct Refreshed {
    /// The rewrite's store time.
    at: DateTime<Utc>,
    /// The lock's first store time, as recorded in it.
    created: DateTime<Utc>,
}

/// Rewrites the lock if it is still ours and has not lapsed; records the loss otherwise.
///
/// Two requests when the version last written is known (a conditional replace of exactly
/// that version, then a HEAD for the store's time of the rewrite), three otherwise (the
/// lock is read back first and its token checked).
async fn refresh_once(
    files: &NamedFiles<LockInfo>,
    name: &str,
    state: &GuardState,
    timings: &LockTimings,
) -> Result<Refreshed> {
    let _one_at_a_time = state.refreshing.lock().await;
    let started = boot_time();
    // A lapse is final: never revive a lock others may already have treated as gone.
    check_state(state, name, timings)?;
    // Taken, not copied: if anything below fails, the next refresh reads the lock again.
    let known = state.written.lock().expect("lock state").take();
    let mut info = state.info.lock().expect("lock state").clone();
    let mut outcome = None;
    if let Some(seen) = known {
        // The first rewrite records the store-clock creation time; prune relies on it.
        info.created.get_or_insert(seen.last_modified);
        // Re-sealing gives a fresh nonce; the rewrite's store time is the refresh time.
        if let Replaced::Done(written) = files.replace(name, &info, &seen).await? {
            outcome = Some((seen, written));
        }
        // Changed since this holder wrote it: read it back below to learn by whom (a
        // store may also retag an object it did not rewrite).
    }
    let (seen, written) = match outcome {
        Some(done) => done,
        None => {
            let (stored, seen) = read_own(files, name, state).await?;
            // The creation time known here (from the HEAD after the create) is the right
            // one; a version read now may have been retagged since.
            info.created = info.created.or(stored.created).or(Some(seen.last_modified));
            match files.replace(name, &info, &seen).await? {
                Replaced::Done(written) => (seen, written),
                Replaced::Changed => return Err(lose(
                    state,
                    name,
                    "it was removed or replaced while being refreshed (by `unlock` and another holder?)"
                        .into(),
                )),
            }
        }
    };
    let created = *info.created.get_or_insert(seen.last_modified);
    let now = files.version(name).await?;
    // The version just written is known only if the HEAD shows the tag the store reported
    // for the write. Otherwise (no tag, a store that reports tags differently, or a
    // takeover in between) the next refresh reads the lock back and checks its token,
    // which catches a takeover as the read-back protocol always did.
    if written.is(&now) {
        *state.written.lock().expect("lock state") = Some(now.clone());
    }
    *state.info.lock().expect("lock state") = info;
    // By the store's clock: how long was the lock left unrefreshed? A frozen process, a
    // paused VM or a stalled network all show here even when this host's clocks did not
    // see the time pass.
    let at = now.last_modified;
    let gap = at.signed_duration_since(seen.last_modified);
    if gap > timings.safe_gap() {
        return Err(lose(
            state,
            name,
            format!(
                "lock lapsed: by the store's clock it went {}s without a refresh (expiry {}s), so others may have treated this run as gone",
                gap.num_seconds(),
                timings.expiry.as_secs()
            ),
        ));
    }
    *state.last_ok.lock().expect("lock state") = started;
    Ok(Refreshed { at, created })
}

/// Reads the lock back and checks that it is still this holder's: it exists,
/// authenticates under its name and carries this holder's token.
async fn read_own(
    files: &NamedFiles<LockInfo>,
    name: &str,
    state: &GuardState,
) -> Result<(LockInfo, ObjectVersion)> {
    let (sealed, seen) = match files.fetch_versioned(name).await {
        Ok(found) => found,
        Err(RepoError::MissingObject { .. }) => {
            return Err(lose(state, name, "it was removed (by `unlock`?)".into()))
        }
        Err(e) => return Err(e),
    };
    let info = files.open(name, &sealed).map_err(|e| {
        lose(
            state,
            name,
            format!("it was replaced by an object that does not authenticate: {e}"),
        )
    })?;
    // A different token means someone removed this lock and took it: never adopt.
    if info.token != state.token {
        return Err(lose(
            state,
            name,
            format!("taken over by {}", info.describe()),
        ));
    }
    Ok((info, seen))
}

/// Records the loss (final) and returns the error saying why.
fn lose(state: &GuardState, name: &str, reason: String) -> RepoError {
    state.lose(reason);
    lost_error(name, state.lost().unwrap_or_default())
}

impl NamedFile for LockInfo {
    const FILE_TYPE: FileType = FileType::Lock;
    const KIND: ObjectKind = ObjectKind::Lock;

    fn encode_file(&self) -> Vec<u8> {
        encode_lock(self)
    }

    fn decode_file(plain: &[u8], object: &str) -> Result<Self> {
        parse_lock_info(plain, object)
    }
}

fn encode_lock(info: &LockInfo) -> Vec<u8> {
    serde_json::to_vec(info).expect("lock info serializes")
}

/// Parses a lock's plaintext (after authentication).
pub(crate) fn parse_lock_info(plain: &[u8], object: &str) -> Result<LockInfo> {
    serde_json::from_slice(plain)
        .map_err(|e| RepoError::corrupt(object, format!("invalid lock JSON: {e}")))
}

fn new_info(kind: LockKind) -> LockInfo {
    let mut token = [0u8; 16];
    getrandom::fill(&mut token).expect("OS random source");
    let identity = ProcessIdentity::current();
    LockInfo {
        kind,
        hostname: hostname(),
        username: username(),
        pid: std::process::id(),
        time: chrono::Local::now().to_rfc3339(),
        created: None,
        token: hex::encode(token),
        boot_id: identity.boot_id,
        pid_ns: identity.pid_ns,
        start_ticks: identity.start_ticks,
    }
}

fn random_name() -> String {
    let mut id = [0u8; 32];
    getrandom::fill(&mut id).expect("OS random source");
    hex::encode(id)
}

/// The repository's locks and backup markers: taking, listing and removing them
/// (docs/format.md#locks-and-concurrency). Made by [`crate::Repository::locks`]; cheap to clone.
#[derive(Clone)]
pub struct Locks {
    files: NamedFiles<LockInfo>,
    lock_timings: LockTimings,
}

impl std::fmt::Debug for Locks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locks")
            .field("storage", &self.files.location())
            .field("timings", &self.lock_timings)
            .finish_non_exhaustive()
    }
}

impl Locks {
    /// Locks of the repository in `storage`, sealed with `keys`, kept fresh by `timings`.
    pub(crate) fn new(
        storage: Storage,
        keys: Arc<cairn_pack::MasterKeys>,
        timings: LockTimings,
    ) -> Self {
        Locks {
            files: NamedFiles::new(storage, keys),
            lock_timings: timings,
        }
    }

    /// Every lock object, with staleness judged at `now` (the store's clock: see
    /// [`Locks::store_time`]) and holders on this host checked for existence.
    pub async fn list_locks_at(&self, now: DateTime<Utc>) -> Result<Vec<LockStatus>> {
        let listed = self.files.list().await?;
        let expiry = self.lock_timings.expiry_chrono();
        let host = hostname();
        let here = ProcessIdentity::current();
        let (host, here) = (&host, &here);
        let statuses: Vec<Result<Option<LockStatus>>> = futures::stream::iter(listed)
            .map(
                |Listed {
                     name,
                     last_modified,
                     ..
                 }| async move {
                    let (info, problem) = match self.files.fetch(&name).await {
                        Ok(sealed) => match self.files.open(&name, &sealed) {
                            Ok(info) => (Some(info), None),
                            Err(e) => (None, Some(e.to_string())),
                        },
                        // Released between listing and reading.
                        Err(RepoError::MissingObject { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let holder_gone = info
                        .as_ref()
                        .and_then(|i| holder_gone(&i.hostname, i.pid, &i.identity(), host, here));
                    Ok(Some(LockStatus {
                        stale: now.signed_duration_since(last_modified) > expiry,
                        name,
                        info,
                        problem,
                        last_modified,
                        holder_gone,
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

    /// Every lock object, staleness judged by the store's clock.
    pub async fn list_locks(&self) -> Result<Vec<LockStatus>> {
        self.list_locks_at(self.store_time().await?).await
    }

    /// The store's current time: the modification time of a probe object written now
    /// (a backup marker, removed at once). Hosts' clocks disagree; the store's is the one
    /// every host sees.
    pub async fn store_time(&self) -> Result<DateTime<Utc>> {
        let name = random_name();
        self.files
            .create(&name, &new_info(LockKind::Backup))
            .await?;
        let at = self.files.version(&name).await;
        self.files.delete(&name).await?;
        Ok(at?.last_modified)
    }

    /// Announces a running backup: writes a fresh marker and keeps it refreshed.
    pub async fn lock_backup(&self) -> Result<LockGuard> {
        self.take_lock(random_name(), LockKind::Backup).await
    }

    /// Takes the exclusive maintenance lock.
    ///
    /// # Errors
    /// [`RepoError::Locked`] naming the holder if it is taken (stale or not: a dead lock is
    /// removed only by [`Locks::unlock`], never silently).
    pub async fn lock_maintenance(&self) -> Result<LockGuard> {
        self.take_lock(MAINTENANCE_LOCK.to_string(), LockKind::Maintenance)
            .await
    }

    async fn take_lock(&self, name: String, kind: LockKind) -> Result<LockGuard> {
        let info = new_info(kind);
        let started = boot_time();
        let Some(written) = self.files.create(&name, &info).await? else {
            let holder = self
                .list_locks()
                .await?
                .into_iter()
                .find(|l| l.name == name);
            let (holder, hint) = match holder {
                Some(l) => match l.dead_reason() {
                    Some(_) => (
                        l.describe(),
                        "; its holder is gone: remove it with `cairn unlock` and try again".into(),
                    ),
                    None => (l.describe(), String::new()),
                },
                None => ("a lock released just now".into(), "; try again".into()),
            };
            return Err(RepoError::Locked { holder, hint });
        };
        let state = Arc::new(GuardState {
            token: info.token.clone(),
            last_ok: Mutex::new(started),
            lost: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
            info: Mutex::new(info),
            written: Mutex::new(None),
        });
        // The store's time of the creation: the lock's `created`, and where the first
        // refresh's store-clock gap starts. When the store tags objects and the tag read
        // back is the one just written, that is one HEAD; otherwise the lock is rewritten
        // at once, as a refresh (read back, token checked), which records the time in it.
        let tagged = written.e_tag.is_some() || written.version.is_some();
        let now = if tagged {
            Some(self.files.version(&name).await)
        } else {
            None
        };
        let created = match now {
            Some(Ok(now)) if written.is(&now) => {
                state.info.lock().expect("lock state").created = Some(now.last_modified);
                *state.written.lock().expect("lock state") = Some(now.clone());
                Ok(now.last_modified)
            }
            Some(Err(e)) => Err(e),
            _ => refresh_once(&self.files, &name, &state, &self.lock_timings)
                .await
                .map(|refreshed| refreshed.created),
        };
        let created = match created {
            Ok(created) => created,
            Err(e) => {
                // Lost means taken by someone else meanwhile: theirs now, left alone.
                if state.lost().is_none() {
                    let _ = self.files.delete(&name).await;
                }
                return Err(e);
            }
        };
        let refresher = {
            let files = self.files.clone();
            let name = name.clone();
            let state = Arc::clone(&state);
            let timings = self.lock_timings;
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(timings.refresh).await;
                    match refresh_once(&files, &name, &state, &timings).await {
                        Err(RepoError::LockLost { .. }) => return,
                        // A transient failure is retried next round; the guard's check
                        // fails for good if they persist until the lock could be stale.
                        _ => continue,
                    }
                }
            })
        };
        Ok(LockGuard {
            files: self.files.clone(),
            name,
            created,
            timings: self.lock_timings,
            state,
            refresher: Some(refresher),
            released: false,
        })
    }

    /// Removes dead locks: stale by the store's clock, taken on this host by a process that
    /// no longer exists, or not authenticating under their name (all locks with
    /// `remove_all`). Returns the names removed with the reason.
    ///
    /// Removing a live lock is unsafe: a running prune or backup relies on it. Only do that
    /// when every process using the repository is known to be stopped.
    pub async fn unlock(&self, remove_all: bool) -> Result<Vec<(String, String)>> {
        let mut removed = Vec::new();
        for lock in self.list_locks().await? {
            let reason = match lock.dead_reason() {
                Some(reason) => reason,
                None if remove_all => "--remove-all".to_string(),
                None => continue,
            };
            self.files.delete(&lock.name).await?;
            removed.push((lock.name, reason));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::seal_named;
    use crate::{InitOptions, Repository};

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
        assert!(matches!(
            held.refresh_now().await,
            Err(RepoError::LockLost { .. })
        ));
        assert!(matches!(held.check(), Err(RepoError::LockLost { .. })));
        assert!(marker.refresh_now().await.is_err());
    }

    /// Requests (put, head, get) made on locks since `before`.
    fn lock_requests(repo: &Repository, before: &crate::storage::Requests) -> (u64, u64, u64) {
        let now = repo.storage().requests().since(before);
        now.of(FileType::Lock)
            .map_or((0, 0, 0), |k| (k.put, k.head, k.get))
    }

    #[tokio::test]
    async fn taking_and_refreshing_a_lock_costs_two_requests_each() {
        let repo = repo().await;
        let before = repo.storage().requests();
        let held = repo.lock_maintenance().await.unwrap();
        // The exclusive create, then a HEAD for its store time: no rewrite, no read.
        assert_eq!(lock_requests(&repo, &before), (1, 1, 0));
        let before = repo.storage().requests();
        held.refresh_now().await.unwrap();
        held.refresh_now().await.unwrap();
        // Each refresh: the conditional rewrite of the version last written, a HEAD.
        assert_eq!(lock_requests(&repo, &before), (2, 2, 0));
        // The creation time was recorded by the first rewrite, as the store saw it.
        let status = repo.list_locks().await.unwrap().remove(0);
        assert_eq!(Some(held.created()), status.info.unwrap().created);
    }

    #[tokio::test]
    async fn a_lock_retagged_but_still_ours_is_read_back_and_kept() {
        let repo = repo().await;
        let held = repo.lock_maintenance().await.unwrap();
        // Same bytes, new version: the store's tag changes without anyone taking the lock.
        let bytes = repo.storage.get(FileType::Lock, held.name()).await.unwrap();
        repo.storage
            .overwrite(FileType::Lock, held.name(), bytes.into())
            .await
            .unwrap();
        let before = repo.storage().requests();
        held.refresh_now().await.unwrap();
        // The rewrite of the stale version fails; the lock is read, found ours, rewritten.
        assert_eq!(lock_requests(&repo, &before), (2, 1, 1));
        held.check().unwrap();
        let before = repo.storage().requests();
        held.refresh_now().await.unwrap();
        assert_eq!(
            lock_requests(&repo, &before),
            (1, 1, 0),
            "back on the short path"
        );
    }

    #[tokio::test]
    async fn a_lock_taken_over_is_never_adopted() {
        let repo = repo().await;
        let held = repo.lock_maintenance().await.unwrap();
        repo.unlock(true).await.unwrap();
        let other = repo.lock_maintenance().await.unwrap();
        let err = held.refresh_now().await.unwrap_err();
        assert!(err.to_string().contains("taken over"), "{err}");
        // The new holder is untouched, also when the loser releases or drops its guard.
        other.refresh_now().await.unwrap();
        other.check().unwrap();
        held.release().await.unwrap();
        other.refresh_now().await.unwrap();
        other.check().unwrap();
    }

    #[tokio::test]
    async fn on_the_local_store_every_refresh_reads_the_lock_back() {
        // Its tags (inode, mtime, size) may repeat for another write: never trusted.
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("repo");
        let storage = Storage::open_or_create(location.to_str().unwrap()).unwrap();
        let options = InitOptions {
            kdf: cairn_pack::KdfParams::new(8 * 1024, 1, 1).unwrap(),
            ..Default::default()
        };
        let repo = Repository::init(storage, b"pw", options).await.unwrap();
        let before = repo.storage().requests();
        let held = repo.lock_maintenance().await.unwrap();
        // The create, then a read-back refresh (get, conditional rewrite, head).
        assert_eq!(lock_requests(&repo, &before), (2, 1, 1));
        let before = repo.storage().requests();
        held.refresh_now().await.unwrap();
        assert_eq!(lock_requests(&repo, &before), (1, 1, 1));
        repo.unlock(true).await.unwrap();
        let other = repo.lock_maintenance().await.unwrap();
        assert!(held.refresh_now().await.is_err());
        drop(held);
        tokio::task::yield_now().await;
        other.refresh_now().await.unwrap();
        other.check().unwrap();
    }

    #[tokio::test]
    async fn a_lapsed_lock_stays_lost() {
        let mut repo = repo().await;
        repo.set_lock_timings(
            LockTimings::new(Duration::from_secs(10), Duration::from_secs(60)).unwrap(),
        );
        let held = repo.lock_backup().await.unwrap();
        held.check().unwrap();
        held.refresh_now().await.unwrap();
        // As if the host had been suspended for 55 s: within one refresh of the expiry.
        *held.state.last_ok.lock().unwrap() = boot_time() - Duration::from_secs(55);
        let err = held.check().unwrap_err();
        assert!(err.to_string().contains("not refreshed for 55s"), "{err}");
        // No refresh revives it, and the object is left as it was (never rewritten).
        let before = repo.storage.get(FileType::Lock, held.name()).await.unwrap();
        let err = held.refresh_now().await.unwrap_err();
        assert!(err.to_string().contains("lapsed"), "{err}");
        assert!(held.check().is_err());
        assert_eq!(
            repo.storage.get(FileType::Lock, held.name()).await.unwrap(),
            before
        );
        assert!(LockTimings::new(Duration::from_secs(40), Duration::from_secs(60)).is_err());
        assert!(LockTimings::new(Duration::ZERO, Duration::from_secs(60)).is_err());
    }

    #[tokio::test]
    async fn a_lock_copied_under_another_name_counts_for_nothing() {
        let repo = repo().await;
        let held = repo.lock_maintenance().await.unwrap();
        let bytes = repo
            .storage
            .get(FileType::Lock, MAINTENANCE_LOCK)
            .await
            .unwrap();
        let copy = "c".repeat(64);
        repo.storage
            .overwrite(FileType::Lock, &copy, bytes.into())
            .await
            .unwrap();
        let locks = repo.list_locks().await.unwrap();
        let copied = locks.iter().find(|l| l.name == copy).unwrap();
        assert!(copied.info.is_none() && !copied.is_live(), "{copied:?}");
        assert!(locks.iter().find(|l| l.is_maintenance()).unwrap().is_live());
        // unlock removes the copy, not the live lock.
        let removed = repo.unlock(false).await.unwrap();
        assert_eq!(removed.len(), 1);
        assert_eq!(removed[0].0, copy);
        assert!(
            removed[0].1.contains("does not authenticate"),
            "{removed:?}"
        );
        held.refresh_now().await.unwrap();
        held.release().await.unwrap();
    }

    #[tokio::test]
    async fn a_lock_of_a_dead_process_on_this_host_is_removed_by_unlock() {
        let repo = repo().await;
        // A maintenance lock as a killed prune on this host leaves it: pid gone.
        let mut info = new_info(LockKind::Maintenance);
        info.pid = 4_194_305; // above any pid_max: no such process
        let object = lock_object(MAINTENANCE_LOCK);
        let sealed =
            seal_named(&repo.keys, ObjectKind::Lock, &object, &encode_lock(&info)).unwrap();
        repo.storage
            .create(FileType::Lock, MAINTENANCE_LOCK, sealed.into())
            .await
            .unwrap();
        // A live marker of this very process stays.
        let marker = repo.lock_backup().await.unwrap();
        let err = repo.lock_maintenance().await.unwrap_err();
        assert!(err.to_string().contains("no longer exists"), "{err}");
        assert!(err.to_string().contains("cairn unlock"), "{err}");
        let removed = repo.unlock(false).await.unwrap();
        assert_eq!(removed.len(), 1, "{removed:?}");
        assert_eq!(removed[0].0, MAINTENANCE_LOCK);
        marker.refresh_now().await.unwrap();
        repo.lock_maintenance()
            .await
            .unwrap()
            .release()
            .await
            .unwrap();
        marker.release().await.unwrap();
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
