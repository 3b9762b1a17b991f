//! The one place crates/repo maps a file into memory (and so the one `unsafe` in the crate).
//!
//! Why a mapping: the index tables of the local cache (index/table.rs) are tens of bytes per
//! blob, gigabytes for a large repository. Mapped, a lookup reads the page holding its slot
//! and nothing else stays resident: the kernel pages the table in on demand and drops clean
//! pages under memory pressure, where a copy on the heap would count against a pod's memory
//! limit for the whole run. Reading slots with a system call each would cost ten times a
//! lookup in memory.

#![allow(unsafe_code)]

use std::fs::File;

use memmap2::Mmap;

/// Maps the whole of `file`, read-only.
///
/// The caller guarantees what the mapping needs to stay sound: nobody modifies or truncates
/// the file while it is mapped. Index tables are only ever written under a temporary name
/// and renamed into place, never changed after (index/table.rs), and removing a mapped
/// file keeps its pages valid until the mapping is dropped.
pub(crate) fn map_read_only(file: &File) -> std::io::Result<Mmap> {
    // SAFETY: memmap2 requires that the file is not modified while mapped, or reads through
    // the mapping see torn data (or SIGBUS if it shrinks). Index tables are immutable once
    // renamed into place: cairn never opens one for writing, and replaces tables by writing
    // new files. A process outside cairn rewriting the cache under a running cairn is not
    // defended against here, as with any file a program maps; the table's MAC, checked
    // before mapping, catches every change made before the mapping was taken.
    unsafe { Mmap::map(file) }
}

/// Drops the pages of `map` this process holds resident. They stay in the page cache, and
/// the next access maps them again, unchanged.
///
/// Why: a pass that looks every blob up (check's walk of a large snapshot) would otherwise
/// end with the whole table resident. Those pages are clean and the kernel could drop them
/// under pressure, but they count in the process's resident size, which is what a memory
/// limit's accounting and its users watch.
pub(crate) fn release_resident(map: &Mmap) {
    // SAFETY: `MADV_DONTNEED` discards a private mapping's changes, which is why memmap2
    // marks it unsafe. This mapping is read-only and shared (`Mmap::map`): there are no
    // changes to discard, and later reads fault the same file pages back in. Readers on
    // other threads see the same bytes before and after.
    let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
}
