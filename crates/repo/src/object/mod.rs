//! The object layer: how every sealed repository file is sealed, named, read and written.
//!
//! - [`seal`](self#functions): the sealing of one object (`seal_object`, `open_object`, and
//!   the name-bound `seal_named`/`open_named` of locks), docs/format.md#sealed-objects;
//! - [`SealedFile`]: the kinds of content-addressed files (snapshots, index files,
//!   pending-deletion records, drill and check records), each with its typed id
//!   ([`SnapshotId`], [`IndexId`], ...), read and written by one generic path
//!   (`Repository::read_file`, `write_file`, `read_files`);
//! - [`StoredPack`]: packs as stored objects (`Repository::list_packs`, `stat_pack`).

mod file;
mod id;
mod pack;
mod seal;

pub use file::{object_name, open_file, seal_file, SealedFile};
pub use id::{is_full_id, CheckId, DrillId, FileId, IndexId, KeyId, PendingId, SnapshotId};
pub use pack::StoredPack;
pub use seal::*;
