//! cairn's C ABI: the whole engine behind opaque handles, for backup tools and node-agent
//! sidecars written in C, Go (cgo) or Python (ctypes). The header `include/cairn.h` is
//! generated from this crate by cbindgen (a test fails when it is out of date).
//!
//! Conventions, for every function:
//! - The return value is a [`CairnStatus`]; on failure `cairn_last_error()` describes it
//!   (per OS thread, valid until this thread's next call); `cairn_last_error_copy()` returns
//!   an owned copy, for callers (Go) whose code moves between OS threads.
//! - No panic crosses the boundary: a panic becomes `CAIRN_STATUS_INTERNAL`.
//! - Null pointers where a value is required, and strings that are not UTF-8, are
//!   `CAIRN_STATUS_INVALID_ARGUMENT`, never a crash.
//! - Strings returned through `char **out` parameters belong to the caller, who frees them
//!   with `cairn_string_free`. Options and results are JSON, so new fields never change a
//!   function's signature.
//! - A `cairn_repo` may be used from several threads at once. Open handles are kept in a
//!   registry: `cairn_repo_close` refuses with `CAIRN_STATUS_BUSY` while a call on the
//!   handle runs, and a closed handle is an error, not a use after free.
//! - Callbacks run on library threads, must be thread-safe and must return normally (an
//!   unwind out of one aborts with a message); cairn calls made from inside one return
//!   `CAIRN_STATUS_REENTRANT`.

#![warn(missing_docs)]
mod callbacks;
mod handle;
mod operations;
mod options;
mod status;
#[cfg(test)]
mod tests;

pub use callbacks::{CairnCancel, CairnProgressFn, CairnReadFn, CairnWriteFn};
pub use handle::CairnRepo;
pub use status::CairnStatus;

use std::ffi::{c_char, CStr};

/// ABI version: bumped whenever a change could break a program built against an earlier
/// header (a signature, a status value, a removed function or JSON field). Adding functions,
/// status values or JSON fields does not bump it.
pub const CAIRN_ABI_VERSION: u32 = 1;

/// The ABI version this library implements ([`CAIRN_ABI_VERSION`]); check it at startup.
#[no_mangle]
pub extern "C" fn cairn_abi_version() -> u32 {
    CAIRN_ABI_VERSION
}

/// The library's version, e.g. "0.1.0". Static: never free it.
#[no_mangle]
pub extern "C" fn cairn_version() -> *const c_char {
    static VERSION: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    VERSION.as_ptr()
}
