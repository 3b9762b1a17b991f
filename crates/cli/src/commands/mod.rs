//! One module per command.

pub mod backup;
pub mod check;
pub mod copy;
pub mod drill;
pub mod dump;
pub mod forget;
pub mod init;
pub mod key;
pub mod list;
pub mod ls;
pub mod metrics;
pub mod mount;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rpo;
pub mod snapshots;
pub mod stats;
pub mod unlock;
