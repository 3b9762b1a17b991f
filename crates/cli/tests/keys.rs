//! Keys and secrets at the command line: `--key-hint` / `CAIRN_KEY_HINT` and the remembered
//! key, `check`'s weak-key warning, private local repositories, and `-o` errors that never
//! echo a value.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::{ok, run};

const PASSWORD: &str = "test password";

fn cairn(repo: &Path) -> Command {
    common::cairn_with("CAIRN_REPOSITORY", "CAIRN_PASSWORD", repo, PASSWORD)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn key_ids(repo: &Path) -> Vec<String> {
    ok(cairn(repo).args(["list", "keys"]))
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn key_hint_and_the_remembered_key() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    let cache = dir.path().join("cache");
    ok(cairn(&repo).arg("init"));
    // A new local repository is private to its owner.
    assert_eq!(mode(&repo), 0o700);
    assert_eq!(mode(&repo.join("keys")), 0o700);
    assert_eq!(mode(&repo.join("config")), 0o600);
    let first = key_ids(&repo).remove(0);
    assert_eq!(mode(&repo.join("keys").join(&first)), 0o600);
    ok(cairn(&repo)
        .env("CAIRN_NEW_PASSWORD", "second password")
        .args(["key", "add"]));
    let second = key_ids(&repo).into_iter().find(|id| *id != first).unwrap();

    let as_second = || {
        let mut cmd = cairn(&repo);
        cmd.env("CAIRN_PASSWORD", "second password")
            .env("CAIRN_CACHE_DIR", &cache);
        cmd
    };
    // The flag (a unique prefix), and both environment variables.
    ok(as_second().args(["snapshots", "--key-hint", &second[..8]]));
    ok(as_second().env("CAIRN_KEY_HINT", &second).arg("snapshots"));
    ok(as_second()
        .env("RESTIC_KEY_HINT", &second[..12])
        .arg("snapshots"));
    // The key that opened is remembered in the cache directory, and nothing else is there.
    let entries: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(entries.len(), 1);
    let hint_file = entries[0].as_ref().unwrap().path().join("key-hint");
    assert_eq!(std::fs::read_to_string(&hint_file).unwrap().trim(), second);
    assert_eq!(mode(&hint_file), 0o600);

    // A hint naming no key is passed over (the other keys are still tried)...
    ok(as_second().args(["snapshots", "--key-hint", "ffffffff"]));
    // ...and named when nothing opens, with exit 12.
    let out = run(as_second().env("CAIRN_PASSWORD", "wrong").args([
        "snapshots",
        "--key-hint",
        "ffffffff",
    ]));
    assert_eq!(out.status.code(), Some(12));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("key hint \"ffffffff\" matches no key file")
            && stderr.contains("ran the key derivation on 2 of 2 key files"),
        "{stderr}"
    );

    // --no-cache and --cache-dir.
    let other_cache = dir.path().join("other-cache");
    ok(cairn(&repo)
        .args(["snapshots", "--no-cache", "--cache-dir"])
        .arg(&other_cache));
    assert!(!other_cache.exists());
    ok(cairn(&repo)
        .args(["snapshots", "--cache-dir"])
        .arg(&other_cache));
    assert_eq!(std::fs::read_dir(&other_cache).unwrap().count(), 1);
}

#[test]
fn check_warns_about_weak_keys() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // A key made before the floor existed (8 KiB × 1 pass would be refused now).
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let storage = cairn_repo::Storage::open_or_create(repo.to_str().unwrap()).unwrap();
        let options = cairn_repo::InitOptions {
            kdf: cairn_repo::KdfParams::insecure_for_tests(64, 1, 1).unwrap(),
            ..Default::default()
        };
        cairn_repo::Repository::init(storage, PASSWORD.as_bytes(), options)
            .await
            .unwrap();
    });
    let weak = key_ids(&repo).remove(0);

    let out = run(cairn(&repo).arg("check"));
    assert_eq!(out.status.code(), Some(0), "a weak key is a warning");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("warning: key {weak} is weak")),
        "{stderr}"
    );
    let lines: Vec<Value> = ok(cairn(&repo).args(["check", "--json"]))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|l| l["message_type"] == "warning"
            && l["message"].as_str().unwrap().contains("is weak")),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap()["ok"], true);

    // `key passwd` replaces it with a key at the default cost: no warning.
    ok(cairn(&repo)
        .env("CAIRN_NEW_PASSWORD", "new password")
        .args(["key", "passwd"]));
    let out = run(cairn(&repo)
        .env("CAIRN_PASSWORD", "new password")
        .arg("check"));
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("is weak"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn malformed_options_never_echo_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    ok(cairn(&repo).arg("init"));
    let secret = "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEY";
    for option in [
        format!("aws_secret_access_key:{secret}"),
        secret.to_string(),
        format!("{secret}=x"),
        format!("s3.bucket-lookup={secret}"),
    ] {
        let out = run(cairn(&repo).args(["-o", &option, "snapshots"]));
        assert_eq!(out.status.code(), Some(1), "{option}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("option"), "{stderr}");
        assert!(!stderr.contains(secret), "{option}: {stderr}");
    }
    let out = run(cairn(&repo).args([
        "-o",
        &format!("aws_secret_access_key:{secret}"),
        "snapshots",
    ]));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("\"aws_secret_access_key\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
