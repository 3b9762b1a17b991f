//! Restore drills: prove a snapshot restores and that what it restores is usable.
//!
//! A drill restores a snapshot (or one path of it) into a fresh scratch directory, verifying
//! every blob against its id, runs a command against the result, removes the scratch
//! directory, and records the outcome in the repository ([`DrillRecord`]) so RPO checks and
//! metrics can tell a backup that ran from one that restores.
//!
//! The scratch directory holds `restore/` (the data; the command's working directory and
//! `CAIRN_DRILL_DIR`) and `tmp/` (the command's `TMPDIR`); nothing is restored anywhere else.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;

use crate::error::{RepoError, Result};
use crate::ops::progress::CancelToken;
use crate::ops::restore::RestoreOptions;
use crate::records::{DrillOutcome, DrillRecord};
use crate::snapshot::SnapshotEntry;
use crate::Repository;

/// How to run a drill.
#[derive(Clone, Debug, Default)]
pub struct DrillOptions {
    /// Restore only this path of the snapshot (and what is below it).
    pub path: Option<String>,
    /// Shell command run (`sh -c`) in the restored directory.
    pub command: String,
    /// Kill the command (and everything it started) after this long.
    pub timeout: Option<Duration>,
    /// Where to create the scratch directory (default: the system's temporary directory).
    pub scratch_parent: Option<PathBuf>,
    /// Where the command's stdout and stderr go: `true` sends both to this process's stderr
    /// (so a `--json` caller's stdout stays clean), `false` discards them.
    pub command_output_to_stderr: bool,
    /// Restore owners (when running as root). Off by default: a drill proves that data
    /// restores and is usable, it must not install what a compromised host planted.
    pub owners: bool,
    /// Restore setuid and setgid bits (off by default).
    pub setid: bool,
    /// Create block and character device nodes (off by default; FIFOs are always made).
    pub devices: bool,
    /// Restore `security.*` and `trusted.*` extended attributes (file capabilities, SELinux
    /// labels; off by default). Other attributes (`user.*`, ACLs) are always restored.
    pub security_xattrs: bool,
    /// Variables passed to the command although [`scrubbed_variable`] would remove them
    /// (exact names, e.g. `AWS_PROFILE`).
    pub pass_env: Vec<String>,
    /// Cancellation (restore and command).
    pub cancel: CancelToken,
}

/// A drill's outcome and where it was recorded.
#[derive(Clone, Debug)]
pub struct DrillResult {
    /// Id of the stored record (`drills/<id>`).
    pub record_id: String,
    /// The record.
    pub record: DrillRecord,
}

/// Is `name` a variable kept from the drill command's environment (unless named in
/// [`DrillOptions::pass_env`])? The command is whatever the operator configured, often a
/// script restoring into a database; it needs none of the repository's secrets, and a
/// hostile snapshot's data is exactly what it runs against. Removed:
///
/// - every `CAIRN_*` and `RESTIC_*` variable (passwords, password files and commands,
///   repository locations that may embed credentials, their `*_FROM_*` counterparts for
///   copy), except the `CAIRN_DRILL_*` ones the drill sets;
/// - cloud and storage credentials: `AWS_*`, `AZURE_*`, `GOOGLE_*`, `GCS_*`, `B2_*`,
///   `OS_*` (OpenStack/Swift), `ST_*` (Swift v1), `RCLONE_*`, `OBJECT_STORE_*`.
pub fn scrubbed_variable(name: &str) -> bool {
    const PREFIXES: [&str; 11] = [
        "CAIRN_",
        "RESTIC_",
        "AWS_",
        "AZURE_",
        "GOOGLE_",
        "GCS_",
        "B2_",
        "OS_",
        "ST_",
        "RCLONE_",
        "OBJECT_STORE_",
    ];
    let upper = name.to_ascii_uppercase();
    !upper.starts_with("CAIRN_DRILL_") && PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// Makes a literal path usable as a restore pattern (glob metacharacters bracketed).
fn literal_pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => {
                out.push('[');
                out.push(c);
                out.push(']');
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.trim_start_matches('/'))
}

/// How a drill restores: verified, and without what could grant privileges on this host
/// unless asked (owners, setuid/setgid bits, device nodes, `security.*` and `trusted.*`
/// attributes).
fn restore_options(options: &DrillOptions) -> RestoreOptions {
    RestoreOptions {
        include: options.path.iter().map(|p| literal_pattern(p)).collect(),
        verify: true,
        no_owner: !options.owners,
        no_setid: !options.setid,
        no_devices: !options.devices,
        exclude_xattr: if options.security_xattrs {
            Vec::new()
        } else {
            vec!["security.*".into(), "trusted.*".into()]
        },
        cancel: options.cancel.clone(),
        ..Default::default()
    }
}

/// Removes a directory tree even where restored permissions forbid writing to it.
fn force_remove(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::remove_dir_all(dir).is_ok() || !dir.exists() {
        return Ok(());
    }
    fn open_up(dir: &Path) {
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                open_up(&entry.path());
            }
        }
    }
    open_up(dir);
    std::fs::remove_dir_all(dir)
}

/// The first regular file below `dir` (depth first).
fn first_file(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let kind = entry.file_type().ok()?;
        if kind.is_file() {
            return Some(entry.path());
        }
        if kind.is_dir() {
            if let Some(found) = first_file(&entry.path()) {
                return Some(found);
            }
        }
    }
    None
}

/// What running the command came to.
struct CommandRun {
    outcome: DrillOutcome,
    exit_code: Option<i32>,
    error: Option<String>,
}

fn run_command(
    options: &DrillOptions,
    restore_dir: &Path,
    tmp_dir: &Path,
    single_file: Option<&Path>,
    snapshot: &str,
) -> Result<CommandRun> {
    let mut command = drill_command(options, restore_dir, tmp_dir, single_file, snapshot)?;
    let mut child = command.spawn().map_err(|e| {
        RepoError::InvalidInput(format!(
            "drill: cannot run sh -c {:?}: {e}",
            options.command
        ))
    })?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(CommandRun::exited(status)),
            Ok(None) => {}
            Err(e) => {
                return Err(RepoError::InvalidInput(format!(
                    "drill: waiting for the command: {e}"
                )))
            }
        }
        let timed_out = options.timeout.is_some_and(|t| started.elapsed() >= t);
        if timed_out || options.cancel.is_cancelled() {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            if !timed_out {
                return Err(RepoError::Cancelled);
            }
            return Ok(CommandRun {
                outcome: DrillOutcome::TimedOut,
                exit_code: None,
                error: Some(format!(
                    "command timed out after {}",
                    humantime::format_duration(options.timeout.unwrap_or_default())
                )),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `sh -c COMMAND` in the restored tree, with the drill's variables, credentials scrubbed
/// from its environment (unless passed on), in a process group of its own (so a timeout
/// kills whatever it started too).
fn drill_command(
    options: &DrillOptions,
    restore_dir: &Path,
    tmp_dir: &Path,
    single_file: Option<&Path>,
    snapshot: &str,
) -> Result<Command> {
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        let keep = name
            .to_str()
            .is_none_or(|n| !scrubbed_variable(n) || options.pass_env.iter().any(|p| p == n));
        if !keep {
            command.env_remove(&name);
        }
    }
    command
        .arg("-c")
        .arg(&options.command)
        .current_dir(restore_dir)
        .env("CAIRN_DRILL_DIR", restore_dir)
        .env("CAIRN_DRILL_SNAPSHOT", snapshot)
        .env("TMPDIR", tmp_dir)
        .stdin(Stdio::null())
        .process_group(0);
    if let Some(file) = single_file {
        command.env("CAIRN_DRILL_FILE", file);
    }
    if options.command_output_to_stderr {
        let stderr = || -> Result<Stdio> {
            use std::os::fd::AsFd;
            let fd = std::io::stderr()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| RepoError::InvalidInput(format!("drill: duplicating stderr: {e}")))?;
            Ok(Stdio::from(fd))
        };
        command.stdout(stderr()?).stderr(stderr()?);
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    Ok(command)
}

impl CommandRun {
    /// The verdict on a command that ended with `status`.
    fn exited(status: std::process::ExitStatus) -> CommandRun {
        match status.code() {
            Some(0) => CommandRun {
                outcome: DrillOutcome::Passed,
                exit_code: Some(0),
                error: None,
            },
            Some(code) => CommandRun {
                outcome: DrillOutcome::CommandFailed,
                exit_code: Some(code),
                error: Some(format!("command exited with status {code}")),
            },
            None => CommandRun {
                outcome: DrillOutcome::CommandFailed,
                exit_code: None,
                error: Some(format!(
                    "command killed by signal {}",
                    status.signal().unwrap_or(0)
                )),
            },
        }
    }
}

impl Repository {
    /// Runs a drill of `entry` and records it. Returns `Ok` with a failed record when the
    /// restore or the command failed (the record says why, naming a damaged object); errors
    /// only when the drill could not be carried out or recorded at all (bad options, a
    /// storage outage while recording, cancellation).
    pub async fn drill(
        &self,
        entry: &SnapshotEntry,
        options: &DrillOptions,
    ) -> Result<DrillResult> {
        if options.command.trim().is_empty() {
            return Err(RepoError::InvalidInput(
                "drill: a command to run against the restored data is required".into(),
            ));
        }
        let started_at = Utc::now();
        let started = Instant::now();
        let parent = options
            .scratch_parent
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let scratch = tempfile::Builder::new()
            .prefix("cairn-drill-")
            .tempdir_in(&parent)
            .map_err(|e| RepoError::io(&parent, e))?;
        let restore_dir = scratch.path().join("restore");
        let tmp_dir = scratch.path().join("tmp");
        for dir in [&restore_dir, &tmp_dir] {
            std::fs::create_dir(dir).map_err(|e| RepoError::io(dir, e))?;
        }

        let mut record = DrillRecord {
            snapshot: entry.id.to_string(),
            path: options.path.clone(),
            time: started_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            command: options.command.clone(),
            outcome: DrillOutcome::RestoreFailed,
            exit_code: None,
            error: None,
            duration_seconds: 0.0,
            files_restored: 0,
            bytes_restored: 0,
            hostname: crate::host::hostname(),
        };
        let restored = self.drill_restore(entry, options, &restore_dir).await;
        match restored {
            Err(RepoError::Cancelled) => return Err(RepoError::Cancelled),
            Err(e) => record.error = Some(e.to_string()),
            Ok((files, bytes, single_file)) => {
                record.files_restored = files;
                record.bytes_restored = bytes;
                let (options, restore_dir, tmp_dir, id) = (
                    options.clone(),
                    restore_dir.clone(),
                    tmp_dir.clone(),
                    entry.id.clone(),
                );
                let run = tokio::task::spawn_blocking(move || {
                    run_command(
                        &options,
                        &restore_dir,
                        &tmp_dir,
                        single_file.as_deref(),
                        id.as_str(),
                    )
                })
                .await
                .map_err(RepoError::task("drill task"))??;
                record.outcome = run.outcome;
                record.exit_code = run.exit_code;
                record.error = run.error;
            }
        }
        let path = scratch.keep();
        force_remove(&path).map_err(|e| RepoError::io(&path, e))?;
        record.duration_seconds = started.elapsed().as_secs_f64();
        let record_id = self.write_record(&record).await?.into();
        Ok(DrillResult { record_id, record })
    }

    /// Restores and verifies into `dir`; returns files and bytes restored and, when the
    /// restore is a single regular file (a stream backup), its path.
    async fn drill_restore(
        &self,
        entry: &SnapshotEntry,
        options: &DrillOptions,
        dir: &Path,
    ) -> Result<(u64, u64, Option<PathBuf>)> {
        let index = self.load_index().await?;
        if let Some(path) = &options.path {
            // A path the snapshot lacks is an error, not an empty (passing) drill.
            self.find_node(&index, &entry.snapshot, path).await?;
        }
        let restore = restore_options(options);
        let report = self.restore(index, &entry.snapshot, dir, restore).await?;
        if let Some((path, problem)) = report.errors.first() {
            return Err(RepoError::corrupt(
                format!("snapshot {}", entry.id),
                format!(
                    "{} of {} restored items failed verification; first: {}: {problem}",
                    report.errors.len(),
                    report.files_restored + report.dirs_restored + report.others_restored,
                    path.display()
                ),
            ));
        }
        let single_file = if report.files_restored == 1 && report.others_restored == 0 {
            first_file(dir)
        } else {
            None
        };
        Ok((report.files_restored, report.bytes_restored, single_file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_escape_glob_metacharacters() {
        assert_eq!(literal_pattern("var/lib/pg"), "/var/lib/pg");
        assert_eq!(literal_pattern("/a*b?[c]{d}"), "/a[*]b[?][[]c[]][{]d[}]");
        let set = crate::ops::patterns::compile(&[literal_pattern("/x/a*b")], "t")
            .unwrap()
            .unwrap();
        assert!(set.is_match("/x/a*b"));
        assert!(!set.is_match("/x/aXb"));
    }

    #[test]
    fn drills_restore_without_privileges_unless_asked() {
        let plain = restore_options(&DrillOptions::default());
        assert!(plain.verify && plain.no_owner && plain.no_setid && plain.no_devices);
        assert_eq!(plain.exclude_xattr, ["security.*", "trusted.*"]);
        let all = restore_options(&DrillOptions {
            owners: true,
            setid: true,
            devices: true,
            security_xattrs: true,
            ..Default::default()
        });
        assert!(!all.no_owner && !all.no_setid && !all.no_devices);
        assert!(all.exclude_xattr.is_empty() && all.include_xattr.is_empty());
    }

    #[test]
    fn secrets_are_scrubbed_and_drill_variables_kept() {
        for name in [
            "CAIRN_PASSWORD",
            "CAIRN_PASSWORD_FILE",
            "CAIRN_PASSWORD_COMMAND",
            "CAIRN_FROM_PASSWORD",
            "CAIRN_FROM_REPOSITORY",
            "CAIRN_REPOSITORY",
            "RESTIC_PASSWORD",
            "RESTIC_FROM_PASSWORD_FILE",
            "RESTIC_REST_PASSWORD",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "GOOGLE_APPLICATION_CREDENTIALS",
            "B2_ACCOUNT_KEY",
            "OS_PASSWORD",
            "aws_secret_access_key",
        ] {
            assert!(scrubbed_variable(name), "{name}");
        }
        for name in [
            "CAIRN_DRILL_DIR",
            "PATH",
            "HOME",
            "PGPASSWORD",
            "TMPDIR",
            "LANG",
        ] {
            assert!(!scrubbed_variable(name), "{name}");
        }
    }
}
