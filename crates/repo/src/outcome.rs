//! How an operation ended, and the one table that says what each front end reports for it:
//! the CLI's exit code, the C ABI's status code and the name in JSON output.
//!
//! The CLI is bound to restic's exit codes (K8up and scripts read them), so several outcomes
//! share exit code 1 where the C ABI, which has no such history, tells them apart. The
//! verdict is the same everywhere; only the CLI's number is coarser. Codes the two share
//! (3, 10, 11, 12, 25, 26, 130) are equal.

use crate::error::{ErrorKind, RepoError};

/// How an operation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// Everything was done.
    Success,
    /// The operation finished but some items failed, and it says which: a backup that could
    /// not read some source files (its snapshot is written and marked incomplete), a restore
    /// with errors on single entries, a forget that could not remove some snapshots.
    Incomplete,
    /// `check` ran to the end and found damage (the findings say what).
    Damaged,
    /// `rpo`: some group's newest snapshot is older than allowed.
    RpoBreached,
    /// `drill`: the drill ran and its command or verification failed (it is recorded).
    DrillFailed,
    /// The operation failed.
    Failed(ErrorKind),
}

/// One row of the table: (outcome, CLI exit code, C ABI status code, JSON name).
type Row = (Outcome, u8, i32, &'static str);

/// The table. Every [`Outcome`] has exactly one row (a unit test holds it to that).
const TABLE: [Row; 15] = [
    (Outcome::Success, 0, 0, "success"),
    (Outcome::Incomplete, 3, 3, "incomplete"),
    (Outcome::Damaged, 1, 22, "damaged"),
    (Outcome::RpoBreached, 25, 25, "rpo_breached"),
    (Outcome::DrillFailed, 26, 26, "drill_failed"),
    (
        Outcome::Failed(ErrorKind::RepositoryNotFound),
        10,
        10,
        "repository_not_found",
    ),
    (Outcome::Failed(ErrorKind::Locked), 11, 11, "locked"),
    (
        Outcome::Failed(ErrorKind::WrongPassword),
        12,
        12,
        "wrong_password",
    ),
    (
        Outcome::Failed(ErrorKind::InvalidInput),
        1,
        20,
        "invalid_input",
    ),
    (
        Outcome::Failed(ErrorKind::AlreadyInitialized),
        1,
        21,
        "already_initialized",
    ),
    (Outcome::Failed(ErrorKind::Corrupt), 1, 22, "corrupt"),
    (Outcome::Failed(ErrorKind::Storage), 1, 23, "storage"),
    (Outcome::Failed(ErrorKind::Io), 1, 24, "io"),
    (Outcome::Failed(ErrorKind::Internal), 1, 99, "internal"),
    (Outcome::Failed(ErrorKind::Cancelled), 130, 130, "cancelled"),
];

impl Outcome {
    fn row(self) -> &'static Row {
        TABLE
            .iter()
            .find(|row| row.0 == self)
            .expect("every outcome has a row (tested)")
    }

    /// The CLI's exit code (restic's table: 0, 1, 3, 10, 11, 12, 130; cairn adds 25 and 26).
    pub fn exit_code(self) -> u8 {
        self.row().1
    }

    /// The C ABI's `cairn_status` value.
    pub fn status_code(self) -> i32 {
        self.row().2
    }

    /// The name JSON output gives this outcome (`"outcome"` in the CLI's `exit_error` line
    /// and in the C ABI's error JSON).
    pub fn name(self) -> &'static str {
        self.row().3
    }

    /// Every outcome, in table order.
    pub fn all() -> impl Iterator<Item = Outcome> {
        TABLE.iter().map(|row| row.0)
    }
}

impl From<ErrorKind> for Outcome {
    fn from(kind: ErrorKind) -> Self {
        Outcome::Failed(kind)
    }
}

impl From<&RepoError> for Outcome {
    fn from(error: &RepoError) -> Self {
        Outcome::Failed(error.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [ErrorKind; 10] = [
        ErrorKind::RepositoryNotFound,
        ErrorKind::AlreadyInitialized,
        ErrorKind::WrongPassword,
        ErrorKind::Corrupt,
        ErrorKind::Storage,
        ErrorKind::Io,
        ErrorKind::InvalidInput,
        ErrorKind::Cancelled,
        ErrorKind::Locked,
        ErrorKind::Internal,
    ];

    #[test]
    fn every_outcome_has_one_row_and_rows_are_distinct() {
        for kind in KINDS {
            let outcome = Outcome::Failed(kind);
            assert_eq!(
                TABLE.iter().filter(|row| row.0 == outcome).count(),
                1,
                "{outcome:?}"
            );
        }
        assert_eq!(TABLE.len(), 5 + KINDS.len());
        let mut statuses: Vec<i32> = Outcome::all().map(Outcome::status_code).collect();
        statuses.sort_unstable();
        let before = statuses.len();
        statuses.dedup();
        // Damaged and Corrupt share the C status CORRUPT: both say the data is damaged.
        assert_eq!(statuses.len(), before - 1);
        let mut names: Vec<&str> = Outcome::all().map(Outcome::name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TABLE.len());
    }

    #[test]
    fn restic_codes_are_kept_and_shared_codes_agree() {
        assert_eq!(Outcome::Success.exit_code(), 0);
        assert_eq!(Outcome::Incomplete.exit_code(), 3);
        assert_eq!(
            Outcome::Failed(ErrorKind::RepositoryNotFound).exit_code(),
            10
        );
        assert_eq!(Outcome::Failed(ErrorKind::Locked).exit_code(), 11);
        assert_eq!(Outcome::Failed(ErrorKind::WrongPassword).exit_code(), 12);
        assert_eq!(Outcome::Failed(ErrorKind::Cancelled).exit_code(), 130);
        for outcome in Outcome::all() {
            let exit = outcome.exit_code();
            // Where the CLI does not collapse an outcome into restic's generic 1, the C
            // status is the same number.
            if exit != 1 {
                assert_eq!(i32::from(exit), outcome.status_code(), "{outcome:?}");
            } else {
                assert_ne!(outcome.status_code(), 0, "{outcome:?}");
            }
        }
    }
}
