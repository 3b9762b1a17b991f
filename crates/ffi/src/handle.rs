//! The repository handle: a repository and the runtime its calls run on, and the registry
//! of open handles that makes `cairn_repo_close` safe against calls still running.
//!
//! Why a registry: the caller holds a raw pointer. Without one, `cairn_repo_close` on one
//! thread frees the handle under a call running on another (use after free), and a second
//! close, or a call after close, dereferences freed memory. With one, every call looks its
//! pointer up (never dereferencing it) and takes a reference-counted lease for its duration;
//! close refuses with `CAIRN_STATUS_BUSY` while a lease is out and otherwise removes the
//! handle, so a call on a closed handle finds nothing and fails cleanly. The lookup is one
//! uncontended mutex and a map probe per call, nothing beside the work a call does.

use std::collections::BTreeMap;
use std::ffi::c_char;
use std::sync::{Arc, Mutex, PoisonError};

use cairn_repo::{Repository, Storage};

use crate::options::{parse, RepoJson};
use crate::status::{guard, optional_str, required_str, CairnStatus, Failure};

/// An open repository. Create with `cairn_repo_init` or `cairn_repo_open`; free with
/// `cairn_repo_close`. Thread-safe: calls on one handle may run concurrently, and
/// `cairn_repo_close` refuses (`CAIRN_STATUS_BUSY`) while any of them runs.
pub struct CairnRepo {
    pub(crate) runtime: tokio::runtime::Runtime,
    /// Written only by a password change (which switches the key in use).
    pub(crate) shared: std::sync::RwLock<Repository>,
}

impl CairnRepo {
    /// The repository (a cheap clone of shared state).
    pub(crate) fn repo(&self) -> Repository {
        self.shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Runs a future to completion on this handle's runtime.
    pub(crate) fn run<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }
}

/// The open handles, by address (the pointer the caller holds). Each entry holds one
/// reference; every running call holds another (its lease), taken under this lock, so an
/// entry whose count is 1 under the lock has no call running and none can start.
static OPEN: Mutex<BTreeMap<usize, Arc<CairnRepo>>> = Mutex::new(BTreeMap::new());

fn open_handles() -> std::sync::MutexGuard<'static, BTreeMap<usize, Arc<CairnRepo>>> {
    // Nothing panics while holding the lock; if something did, the map is still whole.
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cairn")
        .build()
        .map_err(|e| Failure {
            status: CairnStatus::Failed,
            message: format!("cannot start the I/O runtime: {e}"),
        })
}

/// Opens (or with `create`, initialises) a repository into `*out`: the body of
/// `cairn_repo_open` and `cairn_repo_init`.
///
/// # Safety
/// As for `cairn_repo_init`: the strings are NUL-terminated or null, `out` is writable.
unsafe fn connect(
    url: *const c_char,
    password: *const c_char,
    options_json: *const c_char,
    create: bool,
    out: *mut *mut CairnRepo,
) -> Result<CairnStatus, Failure> {
    if out.is_null() {
        return Err(Failure::invalid("out is null"));
    }
    // SAFETY: `url` is null (refused) or a NUL-terminated string (this function's # Safety contract).
    let url = unsafe { required_str(url, "url") }?;
    // SAFETY: `password` is null (refused) or a NUL-terminated string (this function's # Safety contract).
    let password = unsafe { required_str(password, "password") }?;
    let options: RepoJson = parse(
        // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
        unsafe { optional_str(options_json, "options") }?,
        "repository",
    )?;
    let storage = Storage::open_with_options(url, create, &options.backend())?;
    let init = options.init_options()?;
    let runtime = runtime()?;
    let repo = runtime.block_on(async {
        if create {
            Repository::init(storage, password.as_bytes(), init).await
        } else {
            let open = cairn_repo::OpenOptions {
                key_hint: options.key_hint.clone(),
                cache_dir: None,
                ..Default::default()
            };
            Repository::open_with(storage, password.as_bytes(), &open).await
        }
    })?;
    let handle = Arc::new(CairnRepo {
        runtime,
        shared: std::sync::RwLock::new(repo),
    });
    let pointer = Arc::as_ptr(&handle).cast_mut();
    open_handles().insert(pointer as usize, handle);
    // SAFETY: `out` is non-null and writable.
    unsafe { *out = pointer };
    Ok(CairnStatus::Ok)
}

/// Creates a repository at `url` (a path, file://, s3://, gs://, az:// or restic's syntax)
/// protected by `password`, and opens it into `*out`.
///
/// `options_json` may be null or a JSON object: `{"compression": 3 | null, "pack_size_mib":
/// 16, "kdf_memory_kib": 65536, "kdf_time_cost": 3, "kdf_parallelism": 1, "backend":
/// {"aws_endpoint": "...", ...}}`.
///
/// # Safety
/// Strings are NUL-terminated or null; `out` points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn cairn_repo_init(
    url: *const c_char,
    password: *const c_char,
    options_json: *const c_char,
    out: *mut *mut CairnRepo,
) -> CairnStatus {
    // SAFETY: forwarded contract.
    guard(|| unsafe { connect(url, password, options_json, true, out) })
}

/// Opens the repository at `url` with `password` into `*out`. `options_json` may be null or
/// `{"backend": {...}, "key_hint": "ID"}`: `key_hint` is a key id or unique prefix tried
/// first (as restic's `--key-hint`); at most 20 key files are tried, so a repository with
/// more keys needs the hint. A key file whose content does not match its name is skipped
/// before any password derivation.
///
/// # Safety
/// As for `cairn_repo_init`.
#[no_mangle]
pub unsafe extern "C" fn cairn_repo_open(
    url: *const c_char,
    password: *const c_char,
    options_json: *const c_char,
    out: *mut *mut CairnRepo,
) -> CairnStatus {
    // SAFETY: forwarded contract.
    guard(|| unsafe { connect(url, password, options_json, false, out) })
}

/// Closes a handle and frees everything it holds. Null is ignored (`CAIRN_STATUS_OK`).
///
/// Returns `CAIRN_STATUS_BUSY` while another thread's call on the handle is still running:
/// then nothing happened, the handle stays open and usable, and the caller closes it again
/// once that call has returned. A handle that is not open (closed already, or not from
/// `cairn_repo_open`/`cairn_repo_init`) gives `CAIRN_STATUS_INVALID_ARGUMENT`. From inside a
/// callback it gives `CAIRN_STATUS_REENTRANT`. After `CAIRN_STATUS_OK` the pointer is
/// invalid; cairn detects its later use only until a new handle happens to get the same
/// address, so do not rely on that.
///
/// (It returned void before; binaries built against that header ignore the value and keep
/// working, so the ABI version did not change.)
///
/// The pointer is looked up among the open handles, never dereferenced: any value is safe.
#[no_mangle]
pub extern "C" fn cairn_repo_close(repo: *mut CairnRepo) -> CairnStatus {
    guard(|| {
        if repo.is_null() {
            return Ok(CairnStatus::Ok);
        }
        let handle = {
            let mut open = open_handles();
            let Some(handle) = open.get(&(repo as usize)) else {
                return Err(Failure::invalid(not_open()));
            };
            let running = Arc::strong_count(handle) - 1;
            if running > 0 {
                return Err(Failure {
                    status: CairnStatus::Busy,
                    message: format!(
                        "cairn_repo_close: {running} call(s) on this handle are still \
                         running; the handle stays open, close it once they have returned"
                    ),
                });
            }
            open.remove(&(repo as usize))
        };
        // Outside the lock: stopping the runtime may wait up to two seconds.
        if let Some(handle) = handle.and_then(|h| Arc::try_unwrap(h).ok()) {
            // Background work (lock removal) gets a moment, then the runtime stops.
            let CairnRepo { runtime, shared } = handle;
            drop(shared);
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        }
        Ok(CairnStatus::Ok)
    })
}

fn not_open() -> &'static str {
    "repo is not an open cairn_repo (closed already, or not from cairn_repo_open or \
     cairn_repo_init)"
}

/// A running call's hold on an open handle: while it lives, `cairn_repo_close` refuses.
pub(crate) type Lease = Arc<CairnRepo>;

/// Looks the caller's pointer up among the open handles and leases it for this call. The
/// pointer is never dereferenced, so a closed or bogus one is an error, not a crash.
pub(crate) fn handle(repo: *const CairnRepo) -> Result<Lease, Failure> {
    if repo.is_null() {
        return Err(Failure::invalid("repo is null"));
    }
    open_handles()
        .get(&(repo as usize))
        .cloned()
        .ok_or_else(|| Failure::invalid(not_open()))
}
