//! Operations on a repository.

pub mod backup;
pub mod progress;
pub mod restore;
