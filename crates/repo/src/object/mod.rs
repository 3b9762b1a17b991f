//! The object layer: how every sealed repository file is sealed, named, read and written.
//!
//! - [`seal`](self#functions): the sealing of one object (`seal_object`, `open_object`, and
//!   the name-bound `seal_named`/`open_named` of locks), docs/format.md#sealed-objects;
//! - [`SealedFile`]: the kinds of content-addressed files (snapshots, index files,
//!   pending-deletion records, drill and check records), each with its typed id
//!   ([`SnapshotId`], [`IndexId`], ...), read and written by one generic path
//!   (`Repository::read_file`, `write_file`, `read_files`);
//! - [`NamedFile`]: files named by their writer (locks), the name bound into the AD, read,
//!   created and conditionally replaced through [`NamedFiles`];
//! - the config (`config_file`): one per repository under a fixed name, fetched before
//!   the keys that open it are known;
//! - key files ([`KeyFiles`]): not sealed (they hold the keys), named by their hash and
//!   checked against it before any key derivation;
//! - [`StoredPack`]: packs as stored objects (`Repository::list_packs`, `stat_pack`).
//!
//! Nothing outside this layer (and the storage under it) reads or writes a repository
//! file: every kind has one way in and one way out.

mod config_file;
mod file;
mod id;
mod key_file;
mod named;
mod pack;
mod seal;

pub use config_file::{config_exists, create_config, fetch_config, open_config, CONFIG_OBJECT};
pub use file::{object_name, open_file, seal_file, SealedFile};
pub use id::{is_full_id, CheckId, DrillId, FileId, IndexId, KeyId, PendingId, SnapshotId};
pub use key_file::KeyFiles;
pub use named::{NamedFile, NamedFiles};
pub use pack::StoredPack;
pub use seal::*;
