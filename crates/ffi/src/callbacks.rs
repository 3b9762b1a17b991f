//! Callbacks and cancellation: the caller's function pointers wrapped as Rust closures and
//! readers/writers, and the cancel handle.
//!
//! Every callback must return normally. The callback types use the `"C-unwind"` ABI, so a
//! callback that unwinds anyway (a C++ exception, a Rust panic, `pthread_exit`) is defined
//! behaviour on Rust's side instead of undefined behaviour, and [`call_back`] turns it into
//! an immediate abort with a message naming the callback. Propagating it instead is not an
//! option: callbacks run on library threads (there is no caller frame to unwind into),
//! Rust's `catch_unwind` cannot carry a foreign exception (it aborts), and an operation torn
//! down mid-write would leave its lock and packs half done. `longjmp` and a Go panic that is
//! recovered above the cairn call skip frames without unwinding them; cairn cannot see
//! that, so the header and docs/ffi.md forbid it.

use std::ffi::{c_char, c_void, CString};
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use cairn_repo::ops::progress::{CancelToken, Progress, ProgressFn};

use crate::status::InCallback;

/// Receives progress as a JSON object (`files_done`, `bytes_done`, `total_files`,
/// `total_bytes`, `error_count`, `current_path`, `seconds_elapsed`) about once a second, on a
/// library thread. The string is valid only during the call. Must return normally (see
/// `cairn_read_fn`).
pub type CairnProgressFn =
    Option<unsafe extern "C-unwind" fn(json: *const c_char, user: *mut c_void)>;

/// Fills `buf` with up to `len` bytes of the stream; returns how many (0 = end of stream) or
/// a negative number on error. Called on a library thread, never concurrently.
///
/// Every callback (read, write, progress) must return normally: an exception or panic
/// escaping it aborts the process with a message (the types are `"C-unwind"` on cairn's
/// side, so this is defined, not undefined, behaviour); `longjmp` out of it, or a Go panic
/// recovered above the cairn call, is undefined behaviour. Catch and recover inside the
/// callback and return an error value instead. From inside a callback, calls that open, use
/// or close a `cairn_repo` return `CAIRN_STATUS_REENTRANT` and do nothing;
/// `cairn_cancel_trigger`, `cairn_last_error`, `cairn_last_error_copy`, `cairn_string_free`
/// and the version functions may be called.
pub type CairnReadFn =
    Option<unsafe extern "C-unwind" fn(user: *mut c_void, buf: *mut u8, len: usize) -> isize>;

/// Consumes `len` bytes at `buf`; returns 0 on success, non-zero to abort. Must return
/// normally (see `cairn_read_fn`).
pub type CairnWriteFn =
    Option<unsafe extern "C-unwind" fn(user: *mut c_void, buf: *const u8, len: usize) -> i32>;

/// Aborts the process if dropped, i.e. if the callback it watches unwinds.
struct AbortOnUnwind(&'static str);

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        unwound(self.0)
    }
}

#[cold]
fn unwound(kind: &'static str) -> ! {
    // Ignore a failing stderr: the abort must happen regardless.
    let _ = writeln!(
        std::io::stderr(),
        "cairn: the {kind} callback did not return normally (an exception or panic escaped \
         it); callbacks must catch their own exceptions and return an error value instead. \
         Aborting."
    );
    std::process::abort()
}

/// Runs one call of the caller's `kind` callback: marks the thread as inside a callback (so
/// cairn calls from it are refused) and aborts with a message if it unwinds.
pub(crate) fn call_back<R>(kind: &'static str, call: impl FnOnce() -> R) -> R {
    let _inside = InCallback::enter(kind);
    // The `catch_unwind` guarantees a handler above the callback, so the unwinder's second
    // phase runs and drops `bomb` (an exception nobody catches would otherwise go straight
    // to `std::terminate` without a word); `bomb` aborts with our message before that
    // handler is reached, which matters because `catch_unwind` itself aborts on a foreign
    // exception with a message that names neither cairn nor the callback.
    match catch_unwind(AssertUnwindSafe(|| {
        let bomb = AbortOnUnwind(kind);
        let result = call();
        std::mem::forget(bomb);
        result
    })) {
        Ok(result) => result,
        Err(_) => unwound(kind),
    }
}

/// The caller's user-data pointer. The caller promises it may be used from the thread the
/// library calls back on (documented in the header), so it may cross threads.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut c_void);
// SAFETY: see the type's documentation: the caller vouches for the pointer's thread-safety.
unsafe impl Send for UserData {}
// SAFETY: as above.
unsafe impl Sync for UserData {}

pub(crate) fn progress(callback: CairnProgressFn, user: *mut c_void) -> Option<ProgressFn> {
    let callback = callback?;
    let user = UserData(user);
    Some(Arc::new(move |p: &Progress| {
        let json = serde_json::json!({
            "files_done": p.files_done,
            "bytes_done": p.bytes_done,
            "total_files": p.total_files,
            "total_bytes": p.total_bytes,
            "error_count": p.error_count,
            "current_path": p.current_path,
            "seconds_elapsed": p.elapsed.as_secs(),
        });
        if let Ok(text) = CString::new(json.to_string()) {
            let user = user;
            // SAFETY: the caller supplied a valid function taking these arguments.
            call_back("progress", || unsafe { callback(text.as_ptr(), user.0) });
        }
    }))
}

/// A `Read` over the caller's read callback.
pub(crate) struct CallbackReader {
    pub read: unsafe extern "C-unwind" fn(*mut c_void, *mut u8, usize) -> isize,
    pub user: UserData,
}

impl std::io::Read for CallbackReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (read, user, len, ptr) = (self.read, self.user, buf.len(), buf.as_mut_ptr());
        // SAFETY: `buf` is valid for `buf.len()` writable bytes for the duration of the call.
        let n = call_back("read", || unsafe { read(user.0, ptr, len) });
        if n < 0 {
            return Err(std::io::Error::other(format!("read callback failed ({n})")));
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(std::io::Error::other(format!(
                "read callback claimed {n} bytes into a {}-byte buffer",
                buf.len()
            )));
        }
        Ok(n)
    }
}

/// A `Write` over the caller's write callback.
pub(crate) struct CallbackWriter {
    pub write: unsafe extern "C-unwind" fn(*mut c_void, *const u8, usize) -> i32,
    pub user: UserData,
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (write, user) = (self.write, self.user);
        // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
        let rc = call_back("write", || unsafe {
            write(user.0, buf.as_ptr(), buf.len())
        });
        if rc != 0 {
            return Err(std::io::Error::other(format!(
                "write callback failed ({rc})"
            )));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asks running operations to stop. Create with `cairn_cancel_new`, pass to operations,
/// trigger from any thread, free with `cairn_cancel_free` once no operation uses it.
pub struct CairnCancel {
    pub(crate) token: CancelToken,
}

/// A new, untriggered cancel handle.
#[no_mangle]
pub extern "C" fn cairn_cancel_new() -> *mut CairnCancel {
    Box::into_raw(Box::new(CairnCancel {
        token: CancelToken::new(),
    }))
}

/// Triggers it: operations using it stop as soon as they safely can (a backup uploads and
/// indexes what it packed, so the next backup reuses it, and writes no snapshot). Any thread.
///
/// # Safety
/// `cancel` is null or a live handle from `cairn_cancel_new`.
#[no_mangle]
pub unsafe extern "C" fn cairn_cancel_trigger(cancel: *const CairnCancel) {
    // SAFETY: per the contract above.
    if let Some(cancel) = unsafe { cancel.as_ref() } {
        cancel.token.cancel();
    }
}

/// Frees a cancel handle. Null is ignored.
///
/// # Safety
/// `cancel` is null or a live handle no running operation uses.
#[no_mangle]
pub unsafe extern "C" fn cairn_cancel_free(cancel: *mut CairnCancel) {
    if !cancel.is_null() {
        // SAFETY: it came from `Box::into_raw` in `cairn_cancel_new`.
        drop(unsafe { Box::from_raw(cancel) });
    }
}

/// The cancel token behind a caller's cancel handle (a fresh one for null).
///
/// # Safety
/// `cancel` is null or a live handle from `cairn_cancel_new` (not yet freed).
pub(crate) unsafe fn token(cancel: *const CairnCancel) -> CancelToken {
    // SAFETY: the caller passes null or a live handle.
    unsafe { cancel.as_ref() }
        .map(|c| c.token.clone())
        .unwrap_or_default()
}
