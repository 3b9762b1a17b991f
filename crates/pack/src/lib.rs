//! Key material, blob encoding and packfiles for cairn. No I/O: callers bring the bytes.
//!
//! The path of one chunk: [`MasterKeys::blob_id`] names it, [`BlobEncoder::encode`]
//! compresses and seals it into an [`EncodedBlob`], a [`PackWriter`] collects blobs and
//! [`PackWriter::finish`]es a sealed pack; later [`PackReader`] finds the header from the
//! pack's tail and [`decode_blob`] authenticates, decompresses and id-checks one blob.
//!
//! Byte layouts are specified in docs/format.md; each module names its section.

#![warn(missing_docs)]
// Byte parsing and crypto over slices: nothing here needs unsafe code.
#![forbid(unsafe_code)]

mod blob;
mod crypto;
mod error;
pub mod fuzzing;
mod header;
mod id;
mod keyfile;
mod keys;
mod reader;
mod writer;

pub use blob::{decode_blob, BlobEncoder, Compression, EncodedBlob, MAX_BLOB_LEN};
pub use crypto::{open, random_bytes, seal, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
pub use error::PackError;
pub use header::{
    decode_entry, encode_entry, parse_header_plaintext, PackEntry, ENTRY_LEN, HEADER_PREFIX_LEN,
    HEADER_VERSION,
};
pub use id::{BlobId, BlobType, PackId};
pub use keyfile::{KdfParams, KeyFile, MAX_KEY_FILE_LEN, MAX_KEY_INFO_LEN};
pub use keys::{MasterKeys, MASTER_KEYS_LEN};
pub use reader::{PackReader, TAIL_READ_LEN, TRAILER_LEN};
pub use writer::{FinishedPack, PackWriter, DEFAULT_PACK_SIZE, MAX_PACK_SIZE, MIN_PACK_SIZE};
