//! The `cairn` binary as scripts and orchestrators use it: exit codes, JSON lines, restic's
//! environment variables, and a backup killed mid-way.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

mod common;
use common::{ok, run};

fn cairn(repo: &Path) -> Command {
    common::cairn_with("CAIRN_REPOSITORY", "CAIRN_PASSWORD", repo, "test password")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

fn fast_init(repo: &Path) {
    // Small packs so the kill test has several; the default KDF is fine at ~0.1 s.
    ok(cairn(repo).args(["init", "--pack-size", "1"]));
}

#[test]
fn backup_restore_and_json_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("a.txt"), b"alpha").unwrap();
    std::fs::write(source.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    fast_init(&repo);

    let out = run(cairn(&repo).arg("init"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already initialized"));

    let lines = json_lines(&ok(cairn(&repo)
        .args(["backup", "--json", "--host", "h1", "--tag", "t1"])
        .arg(&source)));
    let summary = lines
        .iter()
        .find(|l| l["message_type"] == "summary")
        .expect("summary line");
    for field in [
        "files_new",
        "files_changed",
        "files_unmodified",
        "dirs_new",
        "data_added",
        "total_files_processed",
        "total_bytes_processed",
        "total_duration",
        "snapshot_id",
    ] {
        assert!(
            summary.get(field).is_some(),
            "summary lacks {field}: {summary}"
        );
    }
    assert_eq!(summary["files_new"], 2);
    assert_eq!(summary["total_bytes_processed"], 300_005);
    // What the run cost in store requests, per file type: the backup stored packs, an
    // index file and the snapshot, and read the config and a key.
    let requests = summary["requests"]
        .as_array()
        .expect("requests in the summary");
    let kind = |name: &str| {
        requests
            .iter()
            .find(|k| k["kind"] == name)
            .unwrap_or_else(|| panic!("no {name} requests in {requests:?}"))
    };
    assert!(kind("data")["put"].as_u64().unwrap() >= 1);
    assert!(kind("data")["bytes_written"].as_u64().unwrap() > 0);
    assert_eq!(kind("snapshots")["put"], 1);
    assert!(kind("config")["get"].as_u64().unwrap() >= 1);
    let snapshot_id = summary["snapshot_id"].as_str().unwrap().to_string();

    let list: Value = serde_json::from_str(&ok(cairn(&repo).args([
        "snapshots",
        "--json",
        "--tag",
        "t1",
    ])))
    .unwrap();
    let first = &list.as_array().unwrap()[0];
    assert_eq!(first["id"], snapshot_id.as_str());
    assert_eq!(first["short_id"], &snapshot_id[..8]);
    assert_eq!(first["hostname"], "h1");
    assert_eq!(first["paths"][0], source.to_str().unwrap());
    let none: Value = serde_json::from_str(&ok(cairn(&repo).args([
        "snapshots",
        "--json",
        "--tag",
        "nope",
    ])))
    .unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0);

    let ls = json_lines(&ok(cairn(&repo).args(["ls", "--json", &snapshot_id[..8]])));
    assert_eq!(ls[0]["struct_type"], "snapshot");
    let paths: Vec<&str> = ls[1..]
        .iter()
        .map(|n| n["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&format!("{}/sub/b.bin", source.display()).as_str()),
        "{paths:?}"
    );

    let target = dir.path().join("restore");
    ok(cairn(&repo)
        .args(["restore", "latest", "--verify", "--target"])
        .arg(&target));
    let restored = target.join(source.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/b.bin")).unwrap(),
        vec![7u8; 300_000]
    );

    let mut child = cairn(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "db.sql", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CREATE TABLE t;\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(
        ok(cairn(&repo).args(["dump", "latest", "db.sql"])),
        "CREATE TABLE t;\n"
    );

    let check = json_lines(&ok(cairn(&repo).args(["check", "--read-data", "--json"])));
    let last = check.last().unwrap();
    assert_eq!(last["ok"], true, "{check:?}");
    assert!(last["packs_read"].as_u64().unwrap() >= 2);
    // Damage one pack: check exits 1 and names it.
    let pack = walk(&repo.join("data")).into_iter().next().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[50] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();
    let out = run(cairn(&repo).args(["check", "--read-data-subset", "1/1"]));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(pack.file_name().unwrap().to_str().unwrap()),
        "{stderr}"
    );
    bytes[50] ^= 1;
    std::fs::write(&pack, &bytes).unwrap();

    let stats: Value = serde_json::from_str(&ok(cairn(&repo).args(["stats", "--json"]))).unwrap();
    assert_eq!(stats["snapshots_count"], 2);
    assert!(stats["total_size"].as_u64().unwrap() >= 300_005);
}

#[test]
fn exit_codes_follow_restic() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let out = run(cairn(&repo).arg("snapshots"));
    assert_eq!(out.status.code(), Some(10), "missing repository");
    fast_init(&repo);
    let out = run(cairn(&repo).env("CAIRN_PASSWORD", "wrong").arg("snapshots"));
    assert_eq!(out.status.code(), Some(12), "wrong password");
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));
    let source = dir.path().join("present");
    std::fs::write(&source, b"x").unwrap();
    let out = run(cairn(&repo)
        .arg("backup")
        .arg(&source)
        .arg(dir.path().join("missing")));
    assert_eq!(
        out.status.code(),
        Some(3),
        "unreadable source: snapshot written, exit 3"
    );
    let list: Value =
        serde_json::from_str(&ok(cairn(&repo).args(["snapshots", "--json"]))).unwrap();
    assert_eq!(list[0]["incomplete"], true);
    let out = run(cairn(&repo)
        .args(["restore", "deadbeef", "--target"])
        .arg(dir.path().join("t")));
    assert_eq!(out.status.code(), Some(1));
    let out = run(cairn(&repo).env_remove("CAIRN_REPOSITORY").arg("snapshots"));
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn restic_environment_is_understood() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let password_file = dir.path().join("pw");
    std::fs::write(&password_file, "from file\n").unwrap();
    let restic = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.env_clear()
            .env("RESTIC_REPOSITORY", format!("local:{}", repo.display()))
            .env("RESTIC_PASSWORD_FILE", &password_file);
        cmd
    };
    ok(restic().arg("init"));
    ok(restic().args(["snapshots", "--json"]));
    let out = run(cairn(&repo).arg("snapshots"));
    assert_eq!(
        out.status.code(),
        Some(12),
        "CAIRN_PASSWORD overrides RESTIC_PASSWORD_FILE"
    );
}

/// A backup killed with SIGKILL mid-way leaves only complete objects; the next backup reuses
/// what was uploaded and indexed, and restores are byte-for-byte.
#[test]
fn killed_backup_leaves_a_usable_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fast_init(&repo);
    let data: Vec<u8> = {
        let mut out = vec![0u8; 48 << 20];
        blake3::Hasher::new_derive_key("cairn cli kill test")
            .finalize_xof()
            .fill(&mut out);
        out
    };
    let mut child = cairn(&repo)
        .args(["backup", "--stdin", "--stdin-filename", "big.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // Feed all 48 MiB but keep stdin open (the stream never ends), wait until an index file
    // appears (one is written per 16 packs of about one chunk each), then kill without warning.
    stdin.write_all(&data).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let count = |sub: &str| walk(&repo.join(sub)).len();
    while count("index") < 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(count("index") >= 1, "backup wrote no index file");
    child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
    let _ = child.wait();
    drop(stdin);

    // Every pack under its final name is complete: its name is the BLAKE3 of its bytes.
    for pack in walk(&repo.join("data")) {
        let name = pack.file_name().unwrap().to_str().unwrap().to_string();
        if name.len() == 64 {
            assert_eq!(
                blake3::hash(&std::fs::read(&pack).unwrap())
                    .to_hex()
                    .as_str(),
                name
            );
        }
    }
    let list: Value =
        serde_json::from_str(&ok(cairn(&repo).args(["snapshots", "--json"]))).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "no snapshot from the killed run"
    );

    let mut child = cairn(&repo)
        .args(["backup", "--json", "--stdin", "--stdin-filename", "big.bin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn({
        let data = data.clone();
        move || stdin.write_all(&data).unwrap()
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    let lines = json_lines(&String::from_utf8(out.stdout).unwrap());
    let summary = lines
        .iter()
        .find(|l| l["message_type"] == "summary")
        .unwrap();
    let added = summary["data_added"].as_u64().unwrap();
    assert!(
        added <= data.len() as u64 - (16 << 20),
        "too little reused from the killed run: added {added}"
    );
    let dumped = run(cairn(&repo).args(["dump", "latest", "big.bin"]));
    assert!(dumped.status.success());
    assert!(dumped.stdout == data, "dump differs from the input");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// `n` bytes no chunk of which deduplicates against another `seed`'s.
fn random_bytes(seed: &str, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    blake3::Hasher::new_derive_key(seed)
        .finalize_xof()
        .fill(&mut out);
    out
}

/// Total size of the files under `dir`.
fn dir_size(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Dates every file under `dir` two hours back. Prune leaves alone packs stored less than a
/// minute before it starts (a running backup may have just written them), so packs a test
/// wrote moments ago must look older to be collected.
fn age(dir: &Path) {
    let then = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 3600);
    for path in walk(dir) {
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(then)
            .unwrap();
    }
}

/// Three daily snapshots of one source on host h1, oldest first; returns their ids.
fn three_daily_snapshots(repo: &Path, source: &Path) -> Vec<String> {
    std::fs::create_dir_all(source).unwrap();
    (1..=3)
        .map(|day| {
            std::fs::write(source.join("f.txt"), format!("day {day}")).unwrap();
            let lines = json_lines(&ok(cairn(repo)
                .args(["backup", "--json", "--host", "h1", "--tag", "t1", "--time"])
                .arg(format!("2024-01-0{day} 10:00:00"))
                .arg(source)));
            let summary = lines.last().unwrap();
            summary["snapshot_id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn snapshot_ids(repo: &Path) -> Vec<String> {
    let list: Value = serde_json::from_str(&ok(cairn(repo).args(["snapshots", "--json"]))).unwrap();
    let mut ids: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

#[test]
fn forget_json_follows_restic_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let source = dir.path().join("src");
    fast_init(&repo);
    let ids = three_daily_snapshots(&repo, &source);
    let policy = ["--keep-last", "1", "--keep-daily", "2"];

    // Dry run: restic's shape, nothing removed.
    let out = ok(cairn(&repo)
        .args(["forget", "--dry-run", "--json"])
        .args(policy));
    assert_eq!(out.lines().count(), 1, "one JSON document: {out}");
    let groups: Value = serde_json::from_str(&out).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let group = &groups[0];
    assert_eq!(group["host"], "h1");
    assert_eq!(group["paths"][0], source.to_str().unwrap());
    assert!(group["tags"].is_null(), "not grouped by tags: {group}");
    let keep = group["keep"].as_array().unwrap();
    let remove = group["remove"].as_array().unwrap();
    let reasons = group["reasons"].as_array().unwrap();
    assert_eq!(keep.len(), 2);
    assert_eq!(remove.len(), 1);
    assert_eq!(remove[0]["id"], ids[0].as_str(), "the oldest goes");
    assert_eq!(reasons.len(), 2);
    for snapshot in keep.iter().chain(remove) {
        for field in [
            "id", "short_id", "time", "tree", "paths", "hostname", "tags",
        ] {
            assert!(snapshot.get(field).is_some(), "{field} missing: {snapshot}");
        }
    }
    for reason in reasons {
        assert!(keep.contains(&reason["snapshot"]), "{reason}");
        assert!(
            !reason["matches"].as_array().unwrap().is_empty(),
            "{reason}"
        );
    }
    let newest = reasons
        .iter()
        .find(|r| r["snapshot"]["id"] == ids[2].as_str())
        .unwrap();
    assert_eq!(
        newest["matches"],
        serde_json::json!(["last snapshot", "daily snapshot"])
    );
    let mut all = ids.clone();
    all.sort();
    assert_eq!(snapshot_ids(&repo), all, "a dry run removes nothing");

    // No grouping: host "" and paths null, as restic prints them; remove null when empty.
    let out = ok(cairn(&repo).args([
        "forget",
        "-n",
        "--json",
        "--group-by",
        "",
        "--keep-last",
        "unlimited",
    ]));
    let groups: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(groups[0]["host"], "");
    assert!(groups[0]["paths"].is_null());
    assert!(groups[0]["remove"].is_null());

    // Text: the policy, the tables and what would go.
    let text = ok(cairn(&repo).args(["forget", "-n"]).args(policy));
    assert!(
        text.contains("Applying Policy: keep 1 latest, 2 daily snapshots"),
        "{text}"
    );
    assert!(text.contains("keep 2 snapshots:"), "{text}");
    assert!(text.contains("remove 1 snapshots:"), "{text}");
    assert!(text.contains(&ids[0][..8]), "{text}");

    // For real: `snapshots` agrees with what forget kept.
    let groups: Value =
        serde_json::from_str(&ok(cairn(&repo).args(["forget", "--json"]).args(policy))).unwrap();
    let mut kept: Vec<String> = groups[0]["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    kept.sort();
    assert_eq!(snapshot_ids(&repo), kept);

    // By id: removed, and no JSON (restic prints none for ids).
    let out = ok(cairn(&repo).args(["forget", "--json", &ids[1][..8]]));
    assert!(out.trim().is_empty(), "{out}");
    assert_eq!(snapshot_ids(&repo), vec![ids[2].clone()]);
}

#[test]
fn forget_without_policy_removes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fast_init(&repo);
    let ids = three_daily_snapshots(&repo, &dir.path().join("src"));
    let out = run(cairn(&repo).arg("forget"));
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("no policy was specified, no snapshots will be removed"));
    assert_eq!(snapshot_ids(&repo).len(), ids.len());
    let out = run(cairn(&repo).args(["forget", "--keep-last", "x"]));
    assert_eq!(out.status.code(), Some(2), "clap rejects a bad count");
    let out = run(cairn(&repo).args(["forget", "--keep-last", "1", "--group-by", "colour"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(snapshot_ids(&repo).len(), ids.len());
}

#[test]
fn forget_prune_frees_space() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fast_init(&repo);
    for seed in ["first", "second"] {
        let mut child = cairn(&repo)
            .args(["backup", "--stdin", "--stdin-filename", "data.bin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&random_bytes(seed, 3 << 20))
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    age(&repo.join("data"));
    let before = dir_size(&repo);

    let lines = json_lines(&ok(cairn(&repo).args([
        "forget",
        "--keep-last",
        "1",
        "--prune",
        "--json",
    ])));
    assert_eq!(lines.len(), 2, "the forget array, then prune's summary");
    assert_eq!(lines[0][0]["remove"].as_array().unwrap().len(), 1);
    let summary = &lines[1];
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["dry_run"], false);
    assert!(summary["packs_deleted"].as_u64().unwrap() >= 1, "{summary}");
    let after = dir_size(&repo);
    assert!(
        after + (2 << 20) < before,
        "prune freed too little: {before} -> {after}"
    );
    let dumped = run(cairn(&repo).args(["dump", "latest", "data.bin"]));
    assert!(dumped.status.success());
    assert!(
        dumped.stdout == random_bytes("second", 3 << 20),
        "the kept snapshot's data differs"
    );
    let check = json_lines(&ok(cairn(&repo).args(["check", "--json"])));
    assert_eq!(check.last().unwrap()["ok"], true, "{check:?}");
    assert_eq!(
        ok(cairn(&repo).args(["list", "locks", "--json", "--no-lock"])),
        "",
        "prune leaves no lock behind"
    );
}

#[test]
fn prune_dry_run_json_and_lock_handling() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fast_init(&repo);
    three_daily_snapshots(&repo, &dir.path().join("src"));

    let lines = json_lines(&ok(cairn(&repo).args(["prune", "--dry-run", "--json"])));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let summary = &lines[0];
    assert_eq!(summary["message_type"], "summary");
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["snapshots"], 3);
    for field in [
        "blobs_used",
        "packs_total",
        "bytes_removed",
        "packs_awaiting_backups",
    ] {
        assert!(summary.get(field).is_some(), "{field} missing: {summary}");
    }
    // restic's grammar: a size is a repository-wide allowance; nonsense is refused.
    ok(cairn(&repo).args(["prune", "--max-unused", "1G"]));
    let out = run(cairn(&repo).args(["prune", "--max-unused", "lots"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-unused"));

    // Another process holds the maintenance lock: prune exits 11 and names it; `unlock`
    // leaves a live lock alone, `unlock --remove-all` does not.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let held = runtime.block_on(async {
        let storage = cairn_repo::Storage::open(repo.to_str().unwrap()).unwrap();
        let repo = cairn_repo::Repository::open(storage, b"test password")
            .await
            .unwrap();
        repo.lock_maintenance().await.unwrap()
    });
    let out = run(cairn(&repo).arg("prune"));
    assert_eq!(out.status.code(), Some(11), "locked");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("maintenance lock by"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(cairn(&repo).args(["list", "locks"])), "maintenance\n");
    assert_eq!(ok(cairn(&repo).arg("unlock")), "", "a live lock stays");
    assert_eq!(
        ok(cairn(&repo).args(["unlock", "--remove-all"])),
        "successfully removed 1 locks\n"
    );
    assert_eq!(ok(cairn(&repo).args(["list", "locks"])), "");
    runtime.block_on(held.release()).unwrap();

    // A lock left by a dead process goes stale and plain `unlock` removes it.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let storage = cairn_repo::Storage::open(repo.to_str().unwrap()).unwrap();
        let repo = cairn_repo::Repository::open(storage, b"test password")
            .await
            .unwrap();
        std::mem::forget(repo.lock_backup().await.unwrap());
    });
    drop(runtime);
    age(&repo.join("locks"));
    assert_eq!(
        ok(cairn(&repo).arg("unlock")),
        "successfully removed 1 locks\n"
    );
    assert_eq!(ok(cairn(&repo).args(["list", "locks"])), "");
    ok(cairn(&repo).arg("prune"));
    assert_eq!(
        ok(cairn(&repo).args(["list", "snapshots"])).lines().count(),
        3
    );
}

#[test]
fn copy_to_a_second_repository_with_shared_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let (src_repo, dst_repo) = (dir.path().join("src-repo"), dir.path().join("dr-repo"));
    let source = dir.path().join("data");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("db.dump"), random_bytes("copy", 2_000_000)).unwrap();
    fast_init(&src_repo);
    ok(cairn(&src_repo).args(["backup", "-q"]).arg(&source));
    // The DR repository: its own password, the source's chunking (restic's env names).
    let from = |cmd: &mut Command| {
        cmd.env("RESTIC_FROM_REPOSITORY", &src_repo)
            .env("RESTIC_FROM_PASSWORD", "test password")
            .env("CAIRN_PASSWORD", "dr password");
    };
    let mut init = cairn(&dst_repo);
    from(&mut init);
    ok(init
        .args(["init", "--from-repo"])
        .arg(&src_repo)
        .arg("--copy-chunker-params"));
    let mut copy = cairn(&dst_repo);
    from(&mut copy);
    let summary = json_lines(&ok(copy.args(["copy", "--json"])));
    assert_eq!(summary[0]["message_type"], "summary");
    assert_eq!(summary[0]["copied"].as_array().unwrap().len(), 1);
    assert_eq!(summary[0]["rechunked"], false);
    // Again: skipped.
    let mut again = cairn(&dst_repo);
    from(&mut again);
    let summary = json_lines(&ok(again.args(["copy", "--json"])));
    assert_eq!(summary[0]["skipped"].as_array().unwrap().len(), 1);
    // The copy restores the same bytes, with the DR password.
    let mut dump = cairn(&dst_repo);
    dump.env("CAIRN_PASSWORD", "dr password");
    let path = source.join("db.dump");
    let out = run(dump.args(["dump", "latest"]).arg(&path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == random_bytes("copy", 2_000_000));
    let mut check = cairn(&dst_repo);
    check.env("CAIRN_PASSWORD", "dr password");
    ok(check.args(["check", "--read-data"]));
}

#[test]
fn repair_index_after_losing_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let source = dir.path().join("src");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("f"), random_bytes("repair", 500_000)).unwrap();
    fast_init(&repo);
    ok(cairn(&repo).args(["backup", "-q"]).arg(&source));
    for entry in std::fs::read_dir(repo.join("index")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    assert_eq!(run(cairn(&repo).arg("check")).status.code(), Some(1));
    let summary = json_lines(&ok(cairn(&repo).args(["repair", "index", "--json"])));
    assert!(summary[0]["report"]["packs_indexed"].as_u64().unwrap() >= 1);
    ok(cairn(&repo).args(["check", "--read-data"]));
    let none = ok(cairn(&repo).args(["repair", "snapshots", "--dry-run"]));
    assert!(none.contains("no snapshot needs repair"), "{none}");
}

#[test]
fn restic_backend_options_are_accepted_or_named() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    fast_init(&repo);
    // Used (requests at once), so no warning; a restic option cairn has no use for warns.
    let out = run(cairn(&repo).args([
        "-o",
        "s3.connections=8",
        "-o",
        "s3.storage-class=STANDARD",
        "snapshots",
        "--json",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("s3.connections"), "{stderr}");
    assert!(stderr.contains("s3.storage-class"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = run(cairn(&repo).args(["-o", "s3.connections=0", "snapshots"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("s3.connections"));
    let out = run(cairn(&repo).args(["--option", "frobnicate=1", "snapshots"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("frobnicate"));
}

#[test]
fn help_names_the_variables_in_use_never_their_values() {
    let out = run(Command::new(env!("CARGO_BIN_EXE_cairn"))
        .env_clear()
        .env(
            "RESTIC_REPOSITORY",
            "s3:https://minio.example/secret-bucket",
        )
        .env("RESTIC_PASSWORD", "hunter2")
        .arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("repository from RESTIC_REPOSITORY; password from RESTIC_PASSWORD."),
        "{help}"
    );
    assert!(
        !help.contains("secret-bucket") && !help.contains("hunter2"),
        "{help}"
    );
}

#[test]
fn dump_of_a_directory_or_the_root_is_a_tar_archive() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let source = dir.path().join("app");
    std::fs::create_dir_all(source.join("conf")).unwrap();
    std::fs::write(source.join("conf/app.yaml"), b"replicas: 3\n").unwrap();
    std::fs::write(source.join("data.bin"), random_bytes("tar", 300_000)).unwrap();
    fast_init(&repo);
    ok(cairn(&repo).args(["backup", "-q"]).arg(&source));
    let names = |archive: &[u8]| -> Vec<(String, Vec<u8>)> {
        let mut archive = tar::Archive::new(archive);
        let mut out = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            out.push((name, content));
        }
        out
    };
    let out = run(cairn(&repo).args(["dump", "latest"]).arg(&source));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries = names(&out.stdout);
    assert!(entries
        .iter()
        .any(|(n, c)| n == "app/conf/app.yaml" && c == b"replicas: 3\n"));
    assert!(entries
        .iter()
        .any(|(n, c)| n == "app/data.bin" && *c == random_bytes("tar", 300_000)));
    // The whole snapshot, from the root.
    let out = run(cairn(&repo).args(["dump", "latest", "/"]));
    assert!(out.status.success());
    let inner = source.strip_prefix("/").unwrap().join("conf/app.yaml");
    assert!(names(&out.stdout)
        .iter()
        .any(|(n, _)| Path::new(n) == inner));
}

#[test]
fn a_repository_named_relative_to_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["repo", "./dotted", "nested/deeper"] {
        let at = |args: &[&str]| {
            let mut cmd = cairn(Path::new(name));
            cmd.current_dir(dir.path()).args(args);
            cmd
        };
        ok(&mut at(&["init", "--pack-size", "1"]));
        assert!(dir.path().join(name).join("config").is_file(), "{name}");
        let listed = ok(&mut at(&["snapshots", "--json"]));
        assert_eq!(listed.trim(), "[]", "{name}");
    }
}
