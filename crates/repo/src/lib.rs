//! cairn repositories: storage over `object_store`, keys and config, the index, trees and
//! snapshots, and the operations on them (backup, restore).
//!
//! The library is async at the storage boundary and never starts a runtime of its own: call
//! it from the caller's tokio runtime (the CLI and the C ABI own one), or through
//! [`blocking::BlockingRepository`]. CPU work (chunking, hashing, compression, encryption) runs
//! on rayon's pool.
//!
//! Formats: docs/format.md.

// Nothing here needs unsafe code: system calls go through rustix and nix.
#![forbid(unsafe_code)]

mod access;
pub mod blocking;
pub mod config;
mod error;
pub mod fuzzing;
pub mod index;
mod key_hint;
pub mod lock;
pub mod object;
pub mod ops;
mod outcome;
pub mod pending;
pub mod records;
mod repository;
pub mod snapshot;
pub mod storage;
pub mod tree;

pub use config::{InitOptions, RepoConfig};
pub use error::{ErrorKind, RepoError, Result};
pub use index::Index;
pub use key_hint::{default_cache_dir, OpenOptions};
pub use lock::{LockConfirmer, LockGuard, LockInfo, LockKind, LockStatus, LockTimings};
pub use outcome::Outcome;
pub use records::{CheckRecord, DrillOutcome, DrillRecord};
pub use repository::{KeyInfo, Repository, MAX_KEYS_TRIED};
pub use snapshot::{Snapshot, SnapshotEntry, SnapshotFilter, SnapshotSummary};
pub use storage::{FileType, Storage};
pub use tree::{Name, Node, NodeKind, Tree};

pub use cairn_pack::{BlobId, BlobType, KdfParams, PackId};
