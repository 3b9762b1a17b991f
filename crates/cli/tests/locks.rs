//! Locks as operators meet them: a prune or backup killed with `kill -9` leaves a lock that
//! `unlock` removes at once on the same host, and `unlock` judges age by the store's clock,
//! never a host's (a host whose clock runs 40 minutes fast must not remove live locks).

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, run};

const PASSWORD: &str = "test password";

fn cairn(repo: &Path) -> Command {
    common::cairn_with("CAIRN_REPOSITORY", "CAIRN_PASSWORD", repo, PASSWORD)
}

fn locks(repo: &Path) -> Vec<String> {
    let dir = repo.join("locks");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Not a test of its own: run by `killed_prune_and_backup_locks_are_removed_by_unlock` in
/// a child process that takes the maintenance lock of the repository in
/// `CAIRN_TEST_HOLD_MAINTENANCE` and waits to be killed, as a prune killed mid-run.
#[test]
#[ignore = "helper process for the kill -9 test"]
fn hold_maintenance_lock_until_killed() {
    let Ok(repo) = std::env::var("CAIRN_TEST_HOLD_MAINTENANCE") else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let storage = cairn_repo::Storage::open(&repo).unwrap();
        let repo = cairn_repo::Repository::open(storage, PASSWORD.as_bytes())
            .await
            .unwrap();
        let _held = repo.lock_maintenance().await.unwrap();
        println!("held");
        std::io::stdout().flush().unwrap();
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
}

#[test]
fn killed_prune_and_backup_locks_are_removed_by_unlock() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn(&repo).arg("init"));

    // A prune killed with -9 while holding the maintenance lock.
    let mut holder = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "hold_maintenance_lock_until_killed",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CAIRN_TEST_HOLD_MAINTENANCE", &repo)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the maintenance lock", || locks(&repo) == ["maintenance"]);
    // While it lives, prune is refused and unlock leaves the lock alone.
    let out = run(cairn(&repo).arg("prune"));
    assert_eq!(out.status.code(), Some(11));
    assert_eq!(ok(cairn(&repo).arg("unlock")), "");
    holder.kill().unwrap(); // SIGKILL
    holder.wait().unwrap();
    assert_eq!(
        locks(&repo),
        ["maintenance"],
        "a killed prune leaves its lock"
    );
    let out = run(cairn(&repo).arg("prune"));
    assert_eq!(out.status.code(), Some(11));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no longer exists") && stderr.contains("cairn unlock"),
        "the error says the holder is gone and what to do: {stderr}"
    );
    let removed = ok(cairn(&repo).args(["unlock", "-v"]));
    assert!(removed.contains("removed locks/maintenance"), "{removed}");
    assert!(removed.contains("no longer exists"), "{removed}");
    ok(cairn(&repo).arg("prune"));

    // A backup killed with -9 mid-stream: its marker goes the same way.
    let mut backup = cairn(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "db.sql"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = backup.stdin.take().unwrap();
    stdin.write_all(&[1u8; 100_000]).unwrap();
    wait_for("the backup marker", || locks(&repo).len() == 1);
    backup.kill().unwrap();
    backup.wait().unwrap();
    drop(stdin);
    let marker = locks(&repo);
    assert_eq!(marker.len(), 1);
    let out = ok(cairn(&repo).args(["unlock", "--json"]));
    let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(summary["removed"], serde_json::json!(marker));
    assert!(
        summary["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no longer exists"),
        "{summary}"
    );
    assert!(locks(&repo).is_empty());
}

fn faketime() -> Option<&'static str> {
    let found = Command::new("faketime")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_CLOCK_TOOLS").is_none(),
            "faketime is required here (apt-get install faketime)"
        );
        eprintln!("skipped: faketime is not installed");
        return None;
    }
    Some("faketime")
}

#[test]
fn unlock_judges_staleness_by_the_store_clock_not_the_host_clock() {
    let Some(faketime) = faketime() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn(&repo).arg("init"));
    // The faked clock reaches cairn: a backup under it is stamped 40 minutes ahead.
    let fast = cairn(&repo);
    let program = fast.get_program().to_owned();
    let fast_host = |args: &[&str]| {
        let mut cmd = Command::new(faketime);
        cmd.env_clear();
        for (key, value) in fast.get_envs() {
            if let Some(value) = value {
                cmd.env(key, value);
            }
        }
        cmd.args(["-f", "+40m"]).arg(&program).args(args);
        cmd
    };
    let mut backup = fast_host(&["backup", "--stdin", "--stdin-filename", "x", "--json"]);
    backup.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = backup.spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"data").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let summary = String::from_utf8(out.stdout).unwrap();
    let summary: serde_json::Value = serde_json::from_str(summary.lines().last().unwrap()).unwrap();
    let start =
        chrono::DateTime::parse_from_rfc3339(summary["backup_start"].as_str().unwrap()).unwrap();
    let ahead = start.signed_duration_since(chrono::Utc::now());
    assert!(
        ahead > chrono::Duration::minutes(35),
        "faketime did not take effect on cairn: {summary}"
    );

    // A live maintenance lock and a live backup marker, held by this process.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (held, marker) = runtime.block_on(async {
        let storage = cairn_repo::Storage::open(repo.to_str().unwrap()).unwrap();
        let repo = cairn_repo::Repository::open(storage, PASSWORD.as_bytes())
            .await
            .unwrap();
        (
            repo.lock_maintenance().await.unwrap(),
            repo.lock_backup().await.unwrap(),
        )
    });
    let before = locks(&repo);
    assert_eq!(before.len(), 2);
    let out = fast_host(&["unlock"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(locks(&repo), before, "a fast host clock removed live locks");
    runtime.block_on(async {
        held.refresh_now().await.unwrap();
        marker.refresh_now().await.unwrap();
        held.release().await.unwrap();
        marker.release().await.unwrap();
    });
}
