//! Restore drills against a real database dump, failing drills, RPO exit codes, metrics
//! checked by promtool, and the bad inputs of these commands.
//!
//! sqlite3 and promtool come from Debian (`sqlite3`, `prometheus`); without them the tests
//! that need them say so and pass, unless `CAIRN_REQUIRE_DR_TOOLS` is set (as CI sets it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const EXIT_RPO_BREACHED: i32 = 25;
const EXIT_DRILL_FAILED: i32 = 26;

mod common;
use common::{ok, run};

fn cairn(repo: &Path) -> Command {
    common::cairn_with(
        "RESTIC_REPOSITORY",
        "RESTIC_PASSWORD",
        repo,
        "drill password",
    )
}

fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_DR_TOOLS").is_none(),
            "CAIRN_REQUIRE_DR_TOOLS is set but {name} is not installed"
        );
        eprintln!("skipped: {name} is not installed");
    }
    found
}

fn sqlite(db: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3").arg(db).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `sqlite3 app.db .dump | cairn backup --stdin --stdin-filename app.sql`; returns the id.
fn backup_database(repo: &Path, db: &Path) -> String {
    let mut dump = Command::new("sqlite3")
        .arg(db)
        .arg(".dump")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let dump_stdout = dump.stdout.take().unwrap();
    let out = run(cairn(repo)
        .args([
            "backup",
            "--json",
            "--host",
            "db-0",
            "--stdin",
            "--stdin-filename",
            "app.sql",
        ])
        .stdin(dump_stdout));
    assert!(dump.wait().unwrap().success(), "sqlite3 .dump failed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message_type"] == "summary")
        .unwrap();
    summary["snapshot_id"].as_str().unwrap().to_string()
}

fn drills(repo: &Path) -> Vec<Value> {
    serde_json::from_str(&ok(cairn(repo).args(["drills", "--json"]))).unwrap()
}

/// Loads the restored dump into a fresh database and checks the row count.
const LOAD_AND_COUNT: &str = r#"sqlite3 fresh.db < "$CAIRN_DRILL_FILE" && test "$(sqlite3 fresh.db 'select count(*) from orders')" = 500"#;

struct Setup {
    _dir: tempfile::TempDir,
    repo: PathBuf,
    scratch: PathBuf,
    snapshot: String,
}

fn database_backup() -> Option<Setup> {
    if !tool("sqlite3") {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let db = dir.path().join("app.db");
    let mut sql = String::from("create table orders(id integer primary key, item text);\n");
    for i in 0..500 {
        sql.push_str(&format!("insert into orders(item) values ('item {i}');\n"));
    }
    sqlite(&db, &sql);
    ok(cairn(&repo).arg("init"));
    let snapshot = backup_database(&repo, &db);
    Some(Setup {
        _dir: dir,
        repo,
        scratch,
        snapshot,
    })
}

fn drill(setup: &Setup, extra: &[&str]) -> Output {
    let mut cmd = cairn(&setup.repo);
    cmd.args(["drill", "--json", "--scratch-dir"])
        .arg(&setup.scratch)
        .args(extra);
    let out = run(&mut cmd);
    // Whatever happened, the scratch directory is gone.
    assert_eq!(
        std::fs::read_dir(&setup.scratch).unwrap().count(),
        0,
        "scratch directory left behind"
    );
    out
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn a_database_dump_drill_passes_and_failures_are_recorded() {
    let Some(setup) = database_backup() else {
        return;
    };
    // The real drill: load the dump into a fresh database and count rows.
    let out = drill(&setup, &["--command", LOAD_AND_COUNT]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed = summary(&out);
    assert_eq!(passed["outcome"], "passed");
    assert_eq!(passed["snapshot"], setup.snapshot.as_str());
    assert_eq!(passed["files_restored"], 1);
    assert!(passed["bytes_restored"].as_u64().unwrap() > 10_000);

    // The same check with a wrong expectation fails: the command's verdict counts.
    let wrong = LOAD_AND_COUNT.replace("= 500", "= 501");
    let out = drill(&setup, &["--command", &wrong]);
    assert_eq!(out.status.code(), Some(EXIT_DRILL_FAILED));
    let failed = summary(&out);
    assert_eq!(failed["outcome"], "command_failed");
    assert_eq!(failed["exit_code"], 1);

    // A command that hangs is killed at the timeout.
    let out = drill(&setup, &["--timeout", "1s", "--command", "sleep 60"]);
    assert_eq!(out.status.code(), Some(EXIT_DRILL_FAILED));
    assert_eq!(summary(&out)["outcome"], "timed_out");

    // The command sees only the scratch copy: it runs there and TMPDIR is inside it.
    let out = drill(
        &setup,
        &[
            "--command",
            r#"test "$PWD" = "$CAIRN_DRILL_DIR" && case "$TMPDIR" in "${CAIRN_DRILL_DIR%/restore}"/*) ;; *) exit 9;; esac && test -f app.sql"#,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let recorded = drills(&setup.repo);
    let outcomes: Vec<&str> = recorded
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        ["passed", "command_failed", "timed_out", "passed"],
        "{recorded:?}"
    );
    assert!(recorded
        .iter()
        .all(|d| d["hostname"].is_string() && d["duration_seconds"].is_f64()));

    // RPO: fresh and verified within limits, then a verified-age limit that breaches.
    let out = run(cairn(&setup.repo).args([
        "rpo",
        "--json",
        "--max-age",
        "1h",
        "--max-verified-age",
        "1h",
    ]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["groups"][0]["newest_verified"]["id"],
        setup.snapshot.as_str()
    );
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = run(cairn(&setup.repo).args(["rpo", "--max-age", "1h", "--max-verified-age", "1s"]));
    assert_eq!(out.status.code(), Some(EXIT_RPO_BREACHED));
    assert!(String::from_utf8_lossy(&out.stdout).contains("newest verified snapshot"));
    let out = run(cairn(&setup.repo).args(["rpo", "--max-age", "1s"]));
    assert_eq!(out.status.code(), Some(EXIT_RPO_BREACHED));

    // Forgetting the snapshot drops its drills.
    ok(cairn(&setup.repo).args(["forget", &setup.snapshot]));
    assert!(drills(&setup.repo).is_empty());
    let out = run(cairn(&setup.repo).args(["rpo", "--max-age", "1h"]));
    assert_eq!(
        out.status.code(),
        Some(EXIT_RPO_BREACHED),
        "nothing is protected"
    );
}

#[test]
fn a_drill_of_damaged_data_fails_naming_the_pack() {
    let Some(setup) = database_backup() else {
        return;
    };
    let mut packs = Vec::new();
    let mut stack = vec![setup.repo.join("data")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                packs.push(entry.path());
            }
        }
    }
    // Damage every pack's first bytes: the data blob (and the tree) no longer authenticate.
    for pack in &packs {
        let mut bytes = std::fs::read(pack).unwrap();
        for byte in bytes.iter_mut().take(64) {
            *byte ^= 0x55;
        }
        std::fs::write(pack, bytes).unwrap();
    }
    let out = drill(&setup, &["--command", "true"]);
    assert_eq!(out.status.code(), Some(EXIT_DRILL_FAILED));
    let failed = summary(&out);
    assert_eq!(failed["outcome"], "restore_failed");
    let error = failed["error"].as_str().unwrap();
    assert!(
        packs
            .iter()
            .any(|p| error.contains(p.file_name().unwrap().to_str().unwrap())),
        "{error}"
    );
    assert_eq!(drills(&setup.repo)[0]["outcome"], "restore_failed");
    let out = run(cairn(&setup.repo).args(["rpo", "--max-age", "1h", "--max-verified-age", "30d"]));
    assert_eq!(out.status.code(), Some(EXIT_RPO_BREACHED));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no snapshot has a passing drill"));
}

#[test]
fn metrics_pass_promtool_and_textfiles_replace_whole() {
    let Some(setup) = database_backup() else {
        return;
    };
    if !tool("promtool") {
        return;
    }
    ok(cairn(&setup.repo).args(["check"]));
    let out = drill(&setup, &["--command", LOAD_AND_COUNT]);
    assert!(out.status.success());
    let textfile = setup.scratch.join("cairn.prom");
    ok(cairn(&setup.repo)
        .args(["metrics", "--textfile"])
        .arg(&textfile));
    let text = std::fs::read_to_string(&textfile).unwrap();
    let check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&textfile).unwrap())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with('{'))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let now = chrono::Utc::now().timestamp() as f64;
    assert!((now - value("cairn_snapshot_newest_timestamp_seconds")).abs() < 600.0);
    assert_eq!(
        value("cairn_snapshot_newest_verified_timestamp_seconds"),
        value("cairn_snapshot_newest_timestamp_seconds")
    );
    assert_eq!(value("cairn_check_last_success"), 1.0);
    assert_eq!(value("cairn_snapshots"), 1.0);
    assert!(value("cairn_repository_stored_bytes") > 1000.0);
    assert!(text.contains("host=\"db-0\",paths=\"/app.sql\""), "{text}");
    // Only the textfile itself is left in the directory (no temporary files).
    let names: Vec<_> = std::fs::read_dir(&setup.scratch)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["cairn.prom"]);
}

/// Every bad input is one line naming it, exit 1, and nothing is written.
#[test]
fn bad_inputs_are_one_line_errors_that_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn(&repo).arg("init"));
    let before = listing(&repo);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["rpo", "--max-age", "3x"], "\"3x\""),
        (
            vec!["rpo", "--max-age", "1h", "--max-verified-age", "soon"],
            "\"soon\"",
        ),
        (
            vec!["rpo", "--max-age", "1h", "--group-by", "host,colour"],
            "\"colour\"",
        ),
        (vec!["metrics", "--group-by", "pod"], "\"pod\""),
        (
            vec!["drill", "--command", "true", "--timeout", "forever"],
            "\"forever\"",
        ),
        (vec!["drill", "--command", "true"], "no snapshot"),
    ];
    for (args, named) in cases {
        let out = run(cairn(&repo).args(&args));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
    // Unsupported restic backends, an unreachable repository, a missing password.
    for (location, named) in [
        ("rest:http://127.0.0.1:1/", "\"rest\""),
        ("sftp:user@host:/srv/repo", "\"sftp\""),
        ("b2:bucket:path", "\"b2\""),
    ] {
        let out =
            run(cairn(&repo)
                .env("RESTIC_REPOSITORY", location)
                .args(["rpo", "--max-age", "1h"]));
        assert_eq!(out.status.code(), Some(1), "{location}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("not supported by cairn") && stderr.contains(named),
            "{stderr}"
        );
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    let out = run(cairn(&repo)
        .env("RESTIC_REPOSITORY", "s3:http://127.0.0.1:1/bucket/prefix")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "x")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["metrics"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("127.0.0.1:1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(cairn(&repo)
        .env_remove("RESTIC_PASSWORD")
        .args(["rpo", "--max-age", "1h"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no password given"));
    assert_eq!(
        listing(&repo),
        before,
        "a bad input wrote to the repository"
    );
}

fn listing(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            out.push(entry.path());
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out.sort();
    out
}
