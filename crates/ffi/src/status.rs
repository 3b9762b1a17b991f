//! Status codes, the thread-local last error, and the guard that turns every failure (and
//! every panic) into a status and refuses calls made from inside a callback.

use std::cell::{Cell, RefCell};
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use cairn_repo::{Outcome, RepoError};

/// What a call did. Values are stable (see `CAIRN_ABI_VERSION`); codes shared with the CLI
/// are restic's exit codes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CairnStatus {
    /// Success.
    Ok = 0,
    /// Anything not listed below.
    Failed = 1,
    /// A backup was written but some source data could not be read (snapshot incomplete).
    Incomplete = 3,
    /// No repository at the location.
    RepositoryNotFound = 10,
    /// The repository is locked by another maintenance run.
    Locked = 11,
    /// No key opens with the password.
    WrongPassword = 12,
    /// A required pointer was null, a string not UTF-8, or an option invalid.
    InvalidArgument = 20,
    /// A repository already exists at the location.
    AlreadyInitialized = 21,
    /// Repository data is damaged, missing or hostile.
    Corrupt = 22,
    /// The storage backend failed.
    Storage = 23,
    /// A local file could not be read or written.
    Io = 24,
    /// `cairn_rpo`: some group's recovery point is older than allowed (the CLI's exit code 25).
    RpoBreached = 25,
    /// `cairn_drill`: the drill ran and failed; it is recorded (the CLI's exit code 26).
    DrillFailed = 26,
    /// `cairn_repo_close`: a call on the handle is still running. Nothing was closed: the
    /// handle stays open and usable; close it again once the calls have returned.
    Busy = 40,
    /// The call was made from inside a cairn callback (or on a thread cairn runs its own
    /// work on) and was refused without doing anything: it would have waited for the very
    /// call that is waiting for the callback. Return from the callback first (a callback may
    /// call `cairn_cancel_trigger` to stop the running operation).
    Reentrant = 41,
    /// A bug in cairn (a caught panic); the message says where.
    Internal = 99,
    /// The operation was cancelled.
    Cancelled = 130,
}

impl From<Outcome> for CairnStatus {
    /// The status [`Outcome`]'s table gives (the library's one outcome table; the CLI's exit
    /// codes come from the same rows).
    fn from(outcome: Outcome) -> Self {
        match outcome.status_code() {
            0 => CairnStatus::Ok,
            3 => CairnStatus::Incomplete,
            10 => CairnStatus::RepositoryNotFound,
            11 => CairnStatus::Locked,
            12 => CairnStatus::WrongPassword,
            20 => CairnStatus::InvalidArgument,
            21 => CairnStatus::AlreadyInitialized,
            22 => CairnStatus::Corrupt,
            23 => CairnStatus::Storage,
            24 => CairnStatus::Io,
            25 => CairnStatus::RpoBreached,
            26 => CairnStatus::DrillFailed,
            99 => CairnStatus::Internal,
            130 => CairnStatus::Cancelled,
            _ => CairnStatus::Failed,
        }
    }
}

impl From<&RepoError> for CairnStatus {
    fn from(error: &RepoError) -> Self {
        CairnStatus::from(Outcome::from(error))
    }
}

/// A failure on its way to the caller.
pub(crate) struct Failure {
    pub status: CairnStatus,
    pub message: String,
}

impl Failure {
    pub fn invalid(message: impl Into<String>) -> Self {
        Failure {
            status: CairnStatus::InvalidArgument,
            message: message.into(),
        }
    }
}

impl From<RepoError> for Failure {
    fn from(error: RepoError) -> Self {
        Failure {
            status: CairnStatus::from(&error),
            message: error.to_string(),
        }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
    /// Set while this thread runs one of the caller's callbacks: names the callback.
    static IN_CALLBACK: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// Marks the current thread as running the caller's `kind` callback until dropped, so that
/// a cairn call made from inside it is refused ([`CairnStatus::Reentrant`]).
pub(crate) struct InCallback {
    previous: Option<&'static str>,
}

impl InCallback {
    pub fn enter(kind: &'static str) -> Self {
        InCallback {
            previous: IN_CALLBACK.with(|slot| slot.replace(Some(kind))),
        }
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        IN_CALLBACK.with(|slot| slot.set(self.previous));
    }
}

/// Why a call must not run on this thread, if it must not.
///
/// Every call that takes, opens or closes a `cairn_repo` blocks its thread on the handle's
/// runtime until the work is done. From inside a callback that would wait for the very call
/// that is waiting for the callback (a deadlock), nest one runtime inside another (tokio
/// panics) or free the handle the running call uses; so such calls are refused up front.
fn refusal() -> Option<Failure> {
    if let Some(kind) = IN_CALLBACK.with(Cell::get) {
        return Some(Failure {
            status: CairnStatus::Reentrant,
            message: format!(
                "cairn was called from inside a {kind} callback: calls that open, use or \
                 close a cairn_repo are refused there; return from the callback first (it \
                 may call cairn_cancel_trigger to stop the running operation)"
            ),
        });
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        return Some(Failure {
            status: CairnStatus::Reentrant,
            message: "cairn was called on a thread that runs an async runtime (one of \
                      cairn's own threads, or a tokio runtime of the caller): blocking cairn \
                      calls are refused there; call from a thread of your own"
                .into(),
        });
    }
    None
}

fn set_last_error(message: &str) {
    // Interior NULs would truncate the message; replace them rather than lose it.
    let text = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
}

/// Runs `body`, converting its error or panic into a status and the last error. A call
/// made from inside a callback is refused before `body` runs (see [`refusal`]).
pub(crate) fn guard(body: impl FnOnce() -> Result<CairnStatus, Failure>) -> CairnStatus {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = None);
    if let Some(failure) = refusal() {
        set_last_error(&failure.message);
        return failure.status;
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(failure)) => {
            set_last_error(&failure.message);
            failure.status
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            set_last_error(&format!("internal error (please report): {what}"));
            CairnStatus::Internal
        }
    }
}

/// Borrows a required C string as UTF-8.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn required_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if ptr.is_null() {
        return Err(Failure::invalid(format!("{what} is null")));
    }
    // SAFETY: the caller passes a NUL-terminated string that outlives this call.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| Failure::invalid(format!("{what} is not valid UTF-8")))
}

/// Borrows an optional C string (null = absent).
///
/// # Safety
/// As for [`required_str`].
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<&'a str>, Failure> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: as for `required_str`.
        unsafe { required_str(ptr, what) }.map(Some)
    }
}

/// Hands a string to the caller through `out` (which may be null: then it is dropped).
///
/// # Safety
/// `out` is null or points to writable storage for one pointer.
pub(crate) unsafe fn give_string(out: *mut *mut c_char, text: String) -> Result<(), Failure> {
    if out.is_null() {
        return Ok(());
    }
    let text = CString::new(text).map_err(|_| Failure::invalid("result contains a NUL byte"))?;
    // SAFETY: `out` is non-null and points to writable storage for one pointer.
    unsafe { *out = text.into_raw() };
    Ok(())
}

/// The message of this thread's last failed call, or null if it succeeded. Owned by the
/// library: valid only until this OS thread's next call of a function that returns a
/// `cairn_status`; do not free. The message is per OS thread: read it on the thread that
/// made the failed call, before that thread makes another call. Where a caller cannot be
/// sure of both (Go: a goroutine may move to another OS thread between two cgo calls, and
/// another goroutine may then call cairn on the first thread), use
/// `cairn_last_error_copy` with the thread pinned (see docs/ffi.md).
#[no_mangle]
pub extern "C" fn cairn_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null(), |s| s.as_ptr())
    })
}

/// A copy of this thread's last error message (what `cairn_last_error` returns), or null if
/// the last call succeeded. The copy belongs to the caller: it stays valid whatever cairn
/// calls follow, on any thread, until the caller frees it with `cairn_string_free`. Reading
/// it does not change the last error. It is still this OS thread's message: call it on the
/// thread that made the failed call, before that thread makes another call (Go: between
/// `runtime.LockOSThread()` and `runtime.UnlockOSThread()`, see docs/ffi.md).
#[no_mangle]
pub extern "C" fn cairn_last_error_copy() -> *mut c_char {
    LAST_ERROR.with(|slot| {
        slot.borrow()
            .as_ref()
            .map_or(std::ptr::null_mut(), |s| s.clone().into_raw())
    })
}

/// Frees a string cairn returned through an out parameter or from `cairn_last_error_copy`.
/// Null is ignored.
///
/// # Safety
/// `text` must come from cairn and not have been freed.
#[no_mangle]
pub unsafe extern "C" fn cairn_string_free(text: *mut c_char) {
    if !text.is_null() {
        // SAFETY: it came from `CString::into_raw` (`give_string`, `cairn_last_error_copy`).
        drop(unsafe { CString::from_raw(text) });
    }
}

#[cfg(test)]
mod outcome_tests {
    use super::*;

    #[test]
    fn every_outcome_has_its_own_status() {
        for outcome in Outcome::all() {
            let status = CairnStatus::from(outcome);
            assert_eq!(status as i32, outcome.status_code(), "{outcome:?}");
        }
    }
}
