//! cairn repositories: storage over `object_store`, keys and config, the index, trees and
//! snapshots, and the operations on them (backup, restore).
//!
//! The library is async at the storage boundary: call it from the caller's tokio runtime
//! (the CLI and the C ABI own one), or through [`blocking::BlockingRepository`], which
//! starts one of its own when the caller has none. CPU work (chunking, hashing, compression, encryption) runs
//! on rayon's pool.
//!
//! Formats: docs/format.md.
//!
//! # Quick start
//!
//! Open (or create) a repository from a URL and a password, back up a directory and a
//! stream, list, restore, forget + prune, check:
//!
//! ```
//! use cairn_repo::ops::check::CheckOptions;
//! use cairn_repo::ops::forget::{ForgetOptions, KeepPolicy};
//! use cairn_repo::ops::prune::PruneOptions;
//! use cairn_repo::{Repository, SnapshotFilter};
//!
//! # #[tokio::main]
//! # async fn main() -> cairn_repo::Result<()> {
//! # let dir = std::env::temp_dir().join(format!("cairn-quickstart-{}", std::process::id()));
//! # let source = dir.join("source");
//! # std::fs::create_dir_all(&source).unwrap();
//! # std::fs::write(source.join("hello.txt"), "hello").unwrap();
//! # let url = dir.join("repo");
//! # let url = url.to_str().unwrap();
//! // `url`: a path, or s3://bucket/prefix, gs://..., az://... (credentials from the environment)
//! let repo = Repository::init_url(url, b"password").await?; // later: Repository::open_url
//! repo.backup(&[source.clone()], Default::default()).await?;
//! repo.backup_stream(&b"-- a database dump"[..], "db.sql", Default::default()).await?;
//! for entry in repo.list_snapshots(&SnapshotFilter::default()).await? {
//!     println!("{} {:?}", entry.short_id(), entry.snapshot.paths);
//! }
//! repo.restore_spec("latest", &dir.join("restored"), Default::default()).await?;
//! let keep_last = KeepPolicy { last: Some(1), ..Default::default() };
//! repo.forget(&ForgetOptions { policy: keep_last, ..Default::default() }).await?;
//! repo.prune(&PruneOptions::default()).await?;
//! assert!(repo.check(&CheckOptions::default()).await?.is_ok());
//! # assert_eq!(std::fs::read(dir.join("restored/db.sql")).unwrap(), b"-- a database dump");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
//!
//! Synchronous callers use [`blocking::BlockingRepository`], which can own its runtime
//! (`BlockingRepository::open_url`). `examples/quickstart.rs` is the same as a program.
//!
//! # Where things live
//!
//! - Reading or writing a sealed repository file (snapshot, index file, pending deletion,
//!   drill or check record): [`object`] — the [`object::SealedFile`] trait, typed ids
//!   ([`object::SnapshotId`], [`object::IndexId`], ...) and one generic read (get, check the
//!   name, authenticate, decode) and write; packs as stored objects: [`object::StoredPack`].
//! - Reading blobs: [`blobs`] — one blob, a pack's blobs in coalesced ranges, or in a
//!   consumer's own order with read-ahead through [`blobs::ReadAhead`] (from blocking
//!   threads too: nothing bridges into the runtime with `block_on`).
//! - Walking trees: [`walk::TreeWalker`], used by check, prune's reachability, a backup's
//!   protection step, restore and stats: each distinct tree read once, reads kept in flight.
//! - Deciding what an outcome is reported as (CLI exit code, C ABI status, JSON name):
//!   [`Outcome`], one table.
//! - Unlocking (which key files are tried, in what order): `unlock.rs`; locks and the
//!   backup/prune protocol: [`lock`].
//! - Options as JSON (the C ABI's form, any embedder's): [`ops::wire`].
//! - Storage requests and their accounting: [`storage::Storage`], [`storage::Requests`].

#![warn(missing_docs)]
// System calls go through rustix and nix. The one exception is mapping the cache's index
// tables (index/mapped.rs, which allows it for itself and says why it is sound): `deny`
// rather than `forbid` only so that one module can opt out; every other module stays free
// of unsafe code.
#![deny(unsafe_code)]

mod access;
pub mod blobs;
pub mod blocking;
pub mod cache;
pub mod config;
mod error;
pub mod fuzzing;
mod host;
pub mod index;
mod key_hint;
pub mod lock;
pub mod object;
pub mod ops;
mod outcome;
pub mod pending;
pub mod records;
mod repository;
pub mod restic;
pub mod snapshot;
pub mod storage;
pub mod tree;
mod unlock;
pub mod walk;

pub use config::{InitOptions, RepoConfig};
pub use error::{ErrorKind, RepoError, Result};
pub use index::Index;
pub use key_hint::{default_cache_dir, OpenOptions};
pub use lock::{LockConfirmer, LockGuard, LockInfo, LockKind, LockStatus, LockTimings, Locks};
pub use object::{IndexId, KeyId, SnapshotId};
pub use outcome::Outcome;
pub use records::{CheckRecord, DrillOutcome, DrillRecord};
pub use repository::{KeyInfo, Repository, MAX_KEYS_TRIED};
pub use snapshot::{Snapshot, SnapshotEntry, SnapshotFilter, SnapshotSummary};
pub use storage::{FileType, Storage};
pub use tree::{Name, Node, NodeKind, Tree};

pub use cairn_pack::{BlobId, BlobType, KdfParams, PackId};
