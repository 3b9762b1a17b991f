//! One module per command.

pub mod backup;
pub mod check;
pub mod dump;
pub mod init;
pub mod key;
pub mod ls;
pub mod restore;
pub mod snapshots;
pub mod stats;
