//! The pack crate's one error type.

use crate::{BlobId, BlobType};

/// Errors raised by `cairn-pack`.
///
/// Variants name what was being decoded and what was expected, so a caller can say which
/// object is damaged. None of them carries key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackError {
    /// Occurs when a key file cannot be opened with the given password: either the password
    /// is wrong or the key file's authenticated fields were altered (the two cannot be told
    /// apart by design).
    #[error("wrong password (or a damaged key file)")]
    WrongPassword,
    /// Occurs when authenticated decryption fails: the bytes were altered, truncated, moved
    /// to another place, or sealed under another key.
    #[error("authentication failed for {what}: data damaged, moved or sealed with another key")]
    Authentication {
        /// What was being decrypted ("pack header", "blob <id>", ...).
        what: String,
    },
    /// Occurs when data is too short or structurally malformed before authentication.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// What was expected.
        reason: String,
    },
    /// Occurs when a decrypted blob's keyed hash differs from the id it is stored under.
    #[error("{blob_type} blob {expected} decodes to content with id {actual}")]
    IdMismatch {
        /// Type of the blob.
        blob_type: BlobType,
        /// The id the header gives.
        expected: BlobId,
        /// The id of the decoded plaintext.
        actual: BlobId,
    },
    /// Occurs when zstd fails to decompress an authenticated blob or yields the wrong length.
    #[error("decompressing blob {id}: {reason}")]
    Decompress {
        /// The blob's id.
        id: BlobId,
        /// What went wrong.
        reason: String,
    },
    /// Occurs when parameters (compression level, KDF cost, pack size) are out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// Occurs when the operating system's random number generator fails.
    #[error("operating system random number generator failed: {0}")]
    Random(String),
    /// Occurs when a blob or pack exceeds the format's size limits.
    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

pub(crate) fn malformed(what: &'static str, reason: impl Into<String>) -> PackError {
    PackError::Malformed {
        what,
        reason: reason.into(),
    }
}
