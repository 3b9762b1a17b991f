//! The repository handle: a repository and the runtime its calls run on.

use std::ffi::c_char;

use cairn_repo::{Repository, Storage};

use crate::options::{parse, RepoJson};
use crate::status::{guard, optional_str, required_str, CairnStatus, Failure};

/// An open repository. Create with `cairn_repo_init` or `cairn_repo_open`; free with
/// `cairn_repo_close`. Thread-safe: calls on one handle may run concurrently.
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
    // SAFETY (all three): the caller passes NUL-terminated strings or null.
    let url = unsafe { required_str(url, "url") }?;
    let password = unsafe { required_str(password, "password") }?;
    let options: RepoJson = parse(
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
            };
            Repository::open_with(storage, password.as_bytes(), &open).await
        }
    })?;
    let handle = Box::new(CairnRepo {
        runtime,
        shared: std::sync::RwLock::new(repo),
    });
    // SAFETY: `out` is non-null and writable.
    unsafe { *out = Box::into_raw(handle) };
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
/// `{"backend": {...}}`.
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

/// Closes a handle and frees everything it holds. Null is ignored.
///
/// # Safety
/// `repo` is null or a live handle on which no call is running; it is invalid afterwards.
#[no_mangle]
pub unsafe extern "C" fn cairn_repo_close(repo: *mut CairnRepo) {
    if repo.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: it came from `Box::into_raw` in `connect`.
        let handle = unsafe { Box::from_raw(repo) };
        // Background work (lock removal) gets a moment, then the runtime stops.
        let CairnRepo { runtime, shared } = *handle;
        drop(shared);
        runtime.shutdown_timeout(std::time::Duration::from_secs(2));
        Ok(CairnStatus::Ok)
    });
}

/// Borrows the handle behind a pointer.
pub(crate) unsafe fn handle<'a>(repo: *const CairnRepo) -> Result<&'a CairnRepo, Failure> {
    // SAFETY: the caller passes null or a live handle.
    unsafe { repo.as_ref() }.ok_or_else(|| Failure::invalid("repo is null"))
}
