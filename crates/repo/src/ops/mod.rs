//! Operations on a repository.

pub mod backup;
pub mod check;
mod content;
pub mod dump_tar;
pub mod forget;
mod patterns;
pub mod progress;
pub mod prune;
pub mod restore;
