//! Callbacks and cancellation: the caller's function pointers wrapped as Rust closures and
//! readers/writers, and the cancel handle.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use cairn_repo::ops::progress::{CancelToken, Progress, ProgressFn};

/// Receives progress as a JSON object (`files_done`, `bytes_done`, `total_files`,
/// `total_bytes`, `error_count`, `current_path`, `seconds_elapsed`) about once a second, on a
/// library thread. The string is valid only during the call.
pub type CairnProgressFn = Option<unsafe extern "C" fn(json: *const c_char, user: *mut c_void)>;

/// Fills `buf` with up to `len` bytes of the stream; returns how many (0 = end of stream) or
/// a negative number on error. Called on a library thread, never concurrently.
pub type CairnReadFn =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *mut u8, len: usize) -> isize>;

/// Consumes `len` bytes at `buf`; returns 0 on success, non-zero to abort.
pub type CairnWriteFn =
    Option<unsafe extern "C" fn(user: *mut c_void, buf: *const u8, len: usize) -> i32>;

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
            unsafe { callback(text.as_ptr(), user.0) };
        }
    }))
}

/// A `Read` over the caller's read callback.
pub(crate) struct CallbackReader {
    pub read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize,
    pub user: UserData,
}

impl std::io::Read for CallbackReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` writable bytes for the duration of the call.
        let n = unsafe { (self.read)(self.user.0, buf.as_mut_ptr(), buf.len()) };
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
    pub write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> i32,
    pub user: UserData,
}

impl std::io::Write for CallbackWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call.
        let rc = unsafe { (self.write)(self.user.0, buf.as_ptr(), buf.len()) };
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

pub(crate) unsafe fn token(cancel: *const CairnCancel) -> CancelToken {
    // SAFETY: the caller passes null or a live handle.
    unsafe { cancel.as_ref() }
        .map(|c| c.token.clone())
        .unwrap_or_default()
}
