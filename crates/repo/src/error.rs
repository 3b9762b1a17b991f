//! The repository crate's one public error type.

use std::path::PathBuf;

use cairn_pack::PackError;

/// What a caller can do about an error. [`crate::Outcome`] holds the one table that turns
/// it into a CLI exit code, a C ABI status and a JSON name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No repository at the location (restic exit code 10).
    RepositoryNotFound,
    /// A repository already exists there.
    AlreadyInitialized,
    /// No key opens with the password (restic exit code 12).
    WrongPassword,
    /// Repository data is damaged, missing or hostile.
    Corrupt,
    /// The storage backend failed (network, permissions, full disk).
    Storage,
    /// A local file or directory could not be read or written.
    Io,
    /// The caller passed something invalid (URL, snapshot id, option).
    InvalidInput,
    /// The operation was cancelled (restic exit code 130).
    Cancelled,
    /// The repository is locked by another maintenance run, or this run lost its lock
    /// (restic exit code 11).
    Locked,
    /// A bug in cairn: a task panicked or an invariant broke. The error keeps the source.
    Internal,
}

/// Errors raised by `cairn-repo`. Each names the object or path concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RepoError {
    /// Occurs when no `config` object exists at the repository location.
    #[error("repository does not exist at {location}")]
    RepositoryNotFound {
        /// The repository location.
        location: String,
    },
    /// Occurs when `init` finds a repository (its `config`) already there.
    #[error("repository at {location} is already initialized")]
    AlreadyInitialized {
        /// The repository location.
        location: String,
    },
    /// Occurs when no key file opens with the given password.
    #[error("wrong password: no key of the repository at {location} opens with it{detail}")]
    WrongPassword {
        /// The repository location.
        location: String,
        /// How the search went, starting with "; " (empty when there is nothing to add): how
        /// many key derivations ran, which key files were skipped and why, and whether the
        /// limit on key files tried stopped the search.
        detail: String,
    },
    /// Occurs when a storage operation fails.
    #[error("storage error on {object}: {source}")]
    Storage {
        /// The object path (relative to the repository).
        object: String,
        /// The backend's error.
        #[source]
        source: object_store::Error,
    },
    /// Occurs when an object the repository refers to is missing.
    #[error("{object} is missing from the repository")]
    MissingObject {
        /// The object path.
        object: String,
    },
    /// Occurs when an object fails authentication or its content is inconsistent.
    #[error("{object} is damaged: {reason}")]
    Corrupt {
        /// The object (path, or blob and the pack holding it).
        object: String,
        /// What was expected.
        reason: String,
    },
    /// Occurs when decrypting or decoding through `cairn-pack` fails.
    #[error("{object}: {source}")]
    Pack {
        /// The object concerned.
        object: String,
        /// The underlying error.
        #[source]
        source: PackError,
    },
    /// Occurs when a local file operation fails.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Occurs when an argument is invalid (URL, snapshot id, pattern, parameter).
    #[error("{0}")]
    InvalidInput(String),
    /// Occurs when the repository's format version is newer than this program knows.
    #[error(
        "repository format version {found} is not supported (this cairn reads up to {supported})"
    )]
    UnsupportedVersion {
        /// The version in the config.
        found: u32,
        /// The newest version this build reads.
        supported: u32,
    },
    /// Occurs when an operation is cancelled through its cancel token.
    #[error("operation cancelled")]
    Cancelled,
    /// Occurs when the chunker refuses its parameters or its input.
    #[error("{object}: {source}")]
    Chunker {
        /// What was being chunked or configured.
        object: String,
        /// The chunker's error.
        #[source]
        source: cairn_chunker::ChunkerError,
    },
    /// Occurs when a task cairn runs fails for a reason that is a bug in cairn, not in the
    /// input: a worker task panicked (the source carries its message) or was aborted.
    #[error("internal error in {what}: {source}")]
    Internal {
        /// The work that failed (e.g. "restore task").
        what: String,
        /// The cause: a task's join error, with a panic's message.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Occurs when maintenance finds the repository's maintenance lock held.
    #[error("repository is already locked: {holder}{hint}")]
    Locked {
        /// Who holds it (host, pid, since when).
        holder: String,
        /// What to do about it.
        hint: String,
    },
    /// Occurs when a lock or backup marker could not be kept fresh (the process stalled past
    /// the lock expiry, or the lock was removed): continuing could race with maintenance.
    #[error("lost lock {lock}: {reason}")]
    LockLost {
        /// The lock object.
        lock: String,
        /// Why.
        reason: String,
    },
}

impl RepoError {
    /// The coarse kind, for exit codes and status codes.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RepoError::RepositoryNotFound { .. } => ErrorKind::RepositoryNotFound,
            RepoError::AlreadyInitialized { .. } => ErrorKind::AlreadyInitialized,
            RepoError::WrongPassword { .. } => ErrorKind::WrongPassword,
            RepoError::Storage { .. } => ErrorKind::Storage,
            RepoError::MissingObject { .. }
            | RepoError::Corrupt { .. }
            | RepoError::Pack { .. } => ErrorKind::Corrupt,
            RepoError::UnsupportedVersion { .. } => ErrorKind::Corrupt,
            RepoError::Io { .. } => ErrorKind::Io,
            RepoError::InvalidInput(_) => ErrorKind::InvalidInput,
            RepoError::Cancelled => ErrorKind::Cancelled,
            RepoError::Locked { .. } | RepoError::LockLost { .. } => ErrorKind::Locked,
            RepoError::Chunker { source, .. } => match source {
                cairn_chunker::ChunkerError::Io(_) => ErrorKind::Io,
                _ => ErrorKind::InvalidInput,
            },
            RepoError::Internal { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RepoError::Io {
            path: path.into(),
            source,
        }
    }

    /// Maps a failed worker task (`spawn_blocking`, `spawn`) to [`RepoError::Internal`],
    /// keeping the join error (and so a panic's message) as the source.
    pub(crate) fn task(what: &'static str) -> impl FnOnce(tokio::task::JoinError) -> RepoError {
        move |source| RepoError::Internal {
            what: what.to_string(),
            source: Box::new(source),
        }
    }

    /// The same error, reported as damage to `object` if it says the input was invalid: for
    /// data that authenticated (so it was written with the key) yet fails validation, which
    /// is corruption or a hostile writer, not a caller's mistake.
    pub(crate) fn invalid_as_corrupt(self, object: &str) -> Self {
        match self {
            RepoError::InvalidInput(reason) => RepoError::corrupt(object, reason),
            RepoError::Chunker { source, .. } => RepoError::corrupt(object, source.to_string()),
            other => other,
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        RepoError::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = RepoError> = std::result::Result<T, E>;
