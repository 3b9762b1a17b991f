//! cairn as K8up's `RESTIC_BINARY`: the command sequence K8up's backup, prune, check,
//! restore and archive jobs run, with the repository and password in `RESTIC_*` variables
//! only, and the output parsed the way K8up parses it.
//!
//! Reference (read, not copied): k8up-io/k8up at commit 80a2ae8c, `restic/cli/*.go`
//! (`init.go`, `unlock.go`, `snapshots.go`, `wait.go`, `backup.go`, `stdinbackup.go`,
//! `prune.go`, `check.go`, `restore.go`, `archive.go`), `restic/logging/logging.go` (the
//! JSON line parser: one object per line, stdout and stderr alike, dispatched on
//! `message_type`; a line that is not JSON is only logged) and `restic/dto/snapshot.go`.
//! Facts this test relies on from there:
//! - every call is `restic <cmd> <flags...> <args...>`, flags from a Go map (so in no fixed
//!   order); the environment is the pod's plus `RESTIC_PROGRESS_FPS`;
//! - `init` runs on every job and an existing repository is recognised by "already
//!   initialized" on stderr;
//! - exit code 3 counts as success for every command;
//! - `list --json --no-lock locks` prints one line per lock, and any line means "locked";
//! - a stdin backup is named `/<hostname>-<container><ext>`;
//! - `forget --prune` gets `--host=<name>` (with `=`);
//! - a folder restore is `restore <id>:<paths[0]> --target DIR [--verify] [--delete]`,
//!   probed first with `ls --json <id>` (line 0 a snapshot, then nodes);
//! - the archive job `dump`s `<id> <paths[last]>` (a tar for a directory) or the one file
//!   of a stdin snapshot.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "../../repo/tests/common/s3_server.rs"]
mod s3_server;

/// The pod: repository and password only as `RESTIC_*`, plus whatever the backend needs.
struct Pod {
    env: Vec<(String, String)>,
    host: String,
}

impl Pod {
    fn restic(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RESTIC_PROGRESS_FPS", "0.016667")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args);
        cmd
    }

    /// Runs a command as K8up's `Command.Wait` judges it: exit 0 or 3 is success.
    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = self.restic(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cairn runs");
        if let Some(data) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(data).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    fn succeed(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let out = self.run(args, stdin);
        assert!(
            matches!(out.status.code(), Some(0 | 3)),
            "restic {args:?} failed ({:?}): {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// What K8up's `BackupOutputParser` extracts from a backup's output.
#[derive(Default)]
struct BackupLog {
    summary: Option<Value>,
    errors: usize,
    status_lines: usize,
    other_lines: usize,
}

/// Parses stdout and stderr line by line as `restic/logging/logging.go` does.
fn parse_backup_output(out: &Output) -> BackupLog {
    let mut log = BackupLog::default();
    for stream in [&out.stdout, &out.stderr] {
        for line in String::from_utf8_lossy(stream).lines() {
            let Ok(envelope) = serde_json::from_str::<Value>(line) else {
                log.other_lines += 1;
                continue;
            };
            match envelope["message_type"].as_str() {
                Some("summary") => {
                    assert!(log.summary.is_none(), "two summary lines");
                    log.summary = Some(envelope);
                }
                Some("status") => {
                    assert!(envelope["percent_done"].is_number(), "{envelope}");
                    log.status_lines += 1;
                }
                Some("error") => {
                    assert!(envelope["error"].is_object(), "{envelope}");
                    log.errors += 1;
                }
                _ => log.other_lines += 1,
            }
        }
    }
    log
}

/// The summary fields K8up's `BackupSummary` and `parseSummary` read, with their JSON types.
fn assert_k8up_summary(summary: &Value, files_new: u64) -> String {
    for field in [
        "files_new",
        "files_changed",
        "files_unmodified",
        "dirs_new",
        "dirs_changed",
        "dirs_unmodified",
        "data_blobs",
        "tree_blobs",
        "data_added",
        "total_files_processed",
        "total_bytes_processed",
    ] {
        assert!(summary[field].is_u64(), "summary {field}: {summary}");
    }
    assert!(summary["total_duration"].is_f64(), "{summary}");
    assert_eq!(summary["files_new"], files_new, "{summary}");
    let id = summary["snapshot_id"]
        .as_str()
        .expect("snapshot_id")
        .to_string();
    assert_eq!(id.len(), 64, "{summary}");
    id
}

/// `snapshots --json` decoded into K8up's `dto.Snapshot` fields.
fn snapshots(pod: &Pod, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["snapshots", "--json"];
    args.extend_from_slice(filters);
    let out = pod.succeed(&args, None);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).expect("one JSON array");
    for snap in &list {
        for field in ["id", "time", "tree", "paths", "hostname", "username"] {
            assert!(!snap[field].is_null(), "snapshot lacks {field}: {snap}");
        }
        assert!(snap["uid"].is_u64() && snap["gid"].is_u64(), "{snap}");
        chrono::DateTime::parse_from_rfc3339(snap["time"].as_str().unwrap()).expect("RFC 3339");
    }
    list
}

fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (name, data) in files {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, data).unwrap();
    }
}

fn read_tree(root: &Path) -> HashMap<PathBuf, Vec<u8>> {
    let mut out = HashMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(
                    entry.path().strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(entry.path()).unwrap(),
                );
            }
        }
    }
    out
}

fn k8up_flow(pod: &Pod, work: &Path) {
    let host = pod.host.as_str();
    // Job start: init (twice: the second finds the repository), unlock, snapshots.
    pod.succeed(&["init"], None);
    let again = pod.run(&["init"], None);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already initialized"),
        "second init: {}",
        String::from_utf8_lossy(&again.stderr)
    );
    pod.succeed(&["unlock"], None);
    assert!(snapshots(pod, &[]).is_empty());

    // Application-aware backup: a database dump streamed through stdin.
    let dump: Vec<u8> = (0..20_000u32)
        .flat_map(|i| format!("INSERT INTO t VALUES ({i}, 'row {i}');\n").into_bytes())
        .collect();
    let stdin_name = format!("/{host}-postgres.sql");
    let out = pod.succeed(
        &[
            "backup",
            "--json",
            "--stdin-filename",
            &stdin_name,
            "--host",
            host,
            "--stdin",
            "--tag",
            "k8up",
        ],
        Some(&dump),
    );
    let log = parse_backup_output(&out);
    assert_eq!(log.errors, 0);
    let stdin_snapshot = assert_k8up_summary(log.summary.as_ref().expect("summary line"), 1);

    // Folder backups: one run per subdirectory of BACKUP_DIR.
    let data = work.join("data");
    write_tree(
        &data.join("app1"),
        &[
            ("config.yaml", b"replicas: 3\n"),
            ("uploads/a.bin", &[1u8; 300_000]),
            ("uploads/b.bin", &[2u8; 70_000]),
        ],
    );
    write_tree(&data.join("app2"), &[("state.json", b"{\"ok\":true}")]);
    let mut folder_snapshots = Vec::new();
    for (subdir, files) in [("app1", 3), ("app2", 1)] {
        let path = data.join(subdir);
        let out = pod.succeed(
            &[
                "backup",
                "--host",
                host,
                "--json",
                path.to_str().unwrap(),
                "--tag",
                "k8up",
            ],
            None,
        );
        let log = parse_backup_output(&out);
        assert_eq!(log.errors, 0);
        folder_snapshots.push(assert_k8up_summary(log.summary.as_ref().unwrap(), files));
    }
    let app1 = data.join("app1").to_str().unwrap().to_string();
    let listed = snapshots(pod, &["--tag", "k8up", "--path", &app1]);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], folder_snapshots[0]);
    assert_eq!(listed[0]["hostname"], host);
    assert_eq!(listed[0]["paths"][0], app1);
    assert_eq!(snapshots(pod, &[]).len(), 3);

    // A second run of app1 after a change, so forget has something to remove.
    std::fs::write(data.join("app1/config.yaml"), b"replicas: 5\n").unwrap();
    pod.succeed(&["backup", "--host", host, "--json", &app1], None);

    // Prune and check jobs: wait for locks (none), then forget --prune, then check.
    let locks = pod.succeed(&["list", "--json", "--no-lock", "locks"], None);
    assert!(
        String::from_utf8_lossy(&locks.stdout).trim().is_empty(),
        "locks left behind: {}",
        String::from_utf8_lossy(&locks.stdout)
    );
    let host_flag = format!("--host={host}");
    pod.succeed(
        &[
            "forget",
            "--prune",
            "--keep-daily",
            "7",
            "--keep-last",
            "1",
            "--keep-within",
            "1h",
            &host_flag,
        ],
        None,
    );
    pod.succeed(&["check"], None);
    assert_eq!(snapshots(pod, &[]).len(), 4, "keep-within 1h keeps all");
    pod.succeed(&["forget", "--prune", "--keep-last", "1", &host_flag], None);
    let remaining = snapshots(pod, &[]);
    assert_eq!(remaining.len(), 3, "one per group (host, paths)");
    assert!(!remaining.iter().any(|s| s["id"] == folder_snapshots[0]));
    pod.succeed(&["check"], None);

    // Folder restore: probe with ls --json, then restore <id>:<paths[0]>.
    let latest_app1 = snapshots(pod, &["--path", &app1]);
    let id = latest_app1[0]["id"].as_str().unwrap().to_string();
    let out = pod.succeed(&["ls", "--json", &id], None);
    let mut lines = String::from_utf8(out.stdout).unwrap();
    lines.truncate(lines.trim_end().len());
    let mut lines = lines.lines();
    let head: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(head["id"], id);
    assert_eq!(head["paths"][0], app1);
    let nodes: Vec<Value> = lines.map(|l| serde_json::from_str(l).unwrap()).collect();
    let files = nodes.iter().filter(|n| n["type"] == "file").count();
    assert_eq!(files, 3);
    for node in &nodes {
        for field in ["name", "type", "path", "mtime", "struct_type"] {
            assert!(!node[field].is_null(), "node lacks {field}: {node}");
        }
    }
    let target = work.join("restore");
    write_tree(&target, &[("stale.txt", b"not in the snapshot")]);
    let spec = format!("{id}:{app1}");
    pod.succeed(
        &[
            "restore",
            &spec,
            "--target",
            target.to_str().unwrap(),
            "--verify",
            "--delete",
        ],
        None,
    );
    assert_eq!(read_tree(&target), read_tree(&data.join("app1")));

    // Archive job: dump a folder snapshot as tar, and the stdin snapshot's one file.
    let app2 = data.join("app2").to_str().unwrap().to_string();
    let app2_id = snapshots(pod, &["--path", &app2])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let out = pod.succeed(&["dump", &app2_id, &app2], None);
    let mut archive = tar::Archive::new(&out.stdout[..]);
    let mut names = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("state.json") {
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            assert_eq!(content, b"{\"ok\":true}");
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n.ends_with("state.json")), "{names:?}");
    let out = pod.succeed(&["ls", "--json", &stdin_snapshot], None);
    let text = String::from_utf8(out.stdout).unwrap();
    let file_nodes: Vec<Value> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|n| n["type"] == "file")
        .collect();
    assert_eq!(file_nodes.len(), 1, "a stdin snapshot holds one file");
    assert_eq!(file_nodes[0]["path"], stdin_name);
    let out = pod.succeed(
        &[
            "dump",
            &stdin_snapshot,
            file_nodes[0]["path"].as_str().unwrap(),
        ],
        None,
    );
    assert!(
        out.stdout == dump,
        "the dumped stream differs from the backed-up one"
    );

    // Statistics, as restic prints them.
    let out = pod.succeed(&["stats", "--json"], None);
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        stats["total_size"].as_u64().unwrap() > dump.len() as u64,
        "{stats}"
    );
    assert!(stats["total_file_count"].as_u64().unwrap() >= 5, "{stats}");
    assert_eq!(stats["snapshots_count"], 3, "{stats}");

    // A stale lock left by a killed pod: unlock --remove-all clears what list shows.
    pod.succeed(&["unlock", "--remove-all"], None);
    let locks = pod.succeed(&["list", "--json", "--no-lock", "locks"], None);
    assert!(locks.stdout.is_empty());
}

#[test]
fn k8up_flow_on_a_local_repository() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let pod = Pod {
        env: vec![
            ("RESTIC_REPOSITORY".into(), repo.to_str().unwrap().into()),
            ("RESTIC_PASSWORD".into(), "k8up password".into()),
        ],
        host: "node-a".into(),
    };
    k8up_flow(&pod, work.path());
}

#[test]
fn k8up_flow_on_s3() {
    let Some(server) = s3_server::S3Server::start() else {
        return;
    };
    server.create_bucket("k8up");
    let work = tempfile::tempdir().unwrap();
    let password_file = work.path().join("password");
    std::fs::write(&password_file, "k8up password\n").unwrap();
    let endpoint = server.endpoint.trim_start_matches("http://");
    let pod = Pod {
        env: vec![
            (
                "RESTIC_REPOSITORY".into(),
                format!("s3:http://{endpoint}/k8up/cluster-a/ns-1"),
            ),
            (
                "RESTIC_PASSWORD_FILE".into(),
                password_file.to_str().unwrap().into(),
            ),
            ("AWS_ACCESS_KEY_ID".into(), "testing".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "testing".into()),
        ],
        host: "node-b".into(),
    };
    k8up_flow(&pod, work.path());
}

/// An operator debugging a pod reads `--help`: it must name the variables in use (for the
/// subcommand too) and never print their values.
#[test]
fn help_names_the_restic_variables_in_use_but_not_their_values() {
    let pod = Pod {
        env: vec![
            ("RESTIC_REPOSITORY".into(), "/secret-repo-path-7361".into()),
            ("RESTIC_PASSWORD".into(), "hunter2-password-value".into()),
        ],
        host: "node-c".into(),
    };
    for args in [
        &["--help"][..],
        &["backup", "--help"],
        &["restore", "--help"],
    ] {
        let out = pod.succeed(args, None);
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(
            help.contains("repository from RESTIC_REPOSITORY")
                && help.contains("password from RESTIC_PASSWORD"),
            "{args:?}: {help}"
        );
        assert!(
            !help.contains("secret-repo-path-7361") && !help.contains("hunter2"),
            "{args:?} leaks a value: {help}"
        );
    }
}
