//! Operations on a repository.

pub mod backup;
mod beneath;
pub mod check;
mod content;
pub mod copy;
pub mod drill;
mod dump;
pub mod dump_tar;
pub mod forget;
pub mod import;
pub mod metrics;
mod patterns;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rpo;
pub mod stats;
pub mod wire;
