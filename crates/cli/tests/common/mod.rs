//! Running the `cairn` binary from the CLI tests.

use std::path::Path;
use std::process::{Command, Output};

/// `cairn` with a clean environment holding only `PATH` and the repository and password in
/// the given variables (`CAIRN_*` or restic's `RESTIC_*`).
pub fn cairn_with(repo_var: &str, password_var: &str, repo: &Path, password: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env(repo_var, repo)
        .env(password_var, password);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("cairn runs")
}

/// Runs `cmd`, asserts it succeeded and returns its stdout.
pub fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
