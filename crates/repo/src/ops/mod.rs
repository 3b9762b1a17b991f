//! Operations on a repository.

pub mod backup;
mod patterns;
pub mod progress;
pub mod restore;
