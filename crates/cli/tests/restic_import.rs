//! Importing a real restic repository (Debian's restic, formats 1 and 2): every imported
//! snapshot restores byte for byte as restic restores it, with the same metadata; history
//! keeps its hosts, tags and times so `forget` groups as restic did; a second import copies
//! nothing; a wrong password and a damaged pack are typed errors naming the object.
//!
//! Needs the `restic` binary (CI installs Debian's); without it this test fails, naming it.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use serde_json::Value;

#[path = "../../repo/tests/common/s3_server.rs"]
mod s3_server;

fn restic(repo: impl AsRef<std::ffi::OsStr>) -> Command {
    let repo = repo.as_ref();
    let mut cmd = Command::new("restic");
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", "restic password")
        // A cache of its own per repository (tests run in parallel).
        .env(
            "RESTIC_CACHE_DIR",
            std::env::temp_dir().join(format!(
                "cairn-test-restic-cache-{}",
                blake3::hash(repo.as_encoded_bytes()).to_hex()
            )),
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

fn cairn(repo: &Path, restic_repo: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = cairn_with("CAIRN_REPOSITORY", "CAIRN_PASSWORD", repo, "cairn password");
    cmd.env("RESTIC_FROM_REPOSITORY", restic_repo)
        .env("RESTIC_FROM_PASSWORD", "restic password")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

fn noise(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new_derive_key(seed)
        .finalize_xof()
        .fill(&mut out);
    out
}

fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("dir/empty")).unwrap();
    std::fs::write(root.join("big.bin"), noise(3 << 20, "restic import big")).unwrap();
    std::fs::write(root.join("dir/small.txt"), b"small\n").unwrap();
    std::fs::hard_link(root.join("dir/small.txt"), root.join("hardlink")).unwrap();
    std::os::unix::fs::symlink("dir/small.txt", root.join("link")).unwrap();
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"data", 4 << 20).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("dir/small.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o4750),
    )
    .unwrap();
    // An extended attribute (tmpfs and ext4 take them; CI installs setfattr from attr).
    xattr_set(&root.join("big.bin"), "user.origin", b"restic").unwrap();
}

fn xattr_set(path: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    let status = Command::new("setfattr")
        .args(["-n", name, "-v"])
        .arg(String::from_utf8_lossy(value).as_ref())
        .arg(path)
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other("setfattr failed"))
    }
}

/// Everything a restore shows of a tree: per path, kind, mode, size, mtime, link target,
/// content hash and which paths share an inode.
fn describe(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mut text = format!("mode {:o} mtime {}", meta.mode(), meta.mtime());
            if meta.file_type().is_symlink() {
                text += &format!(" -> {}", std::fs::read_link(&path).unwrap().display());
            } else if meta.is_dir() {
                stack.push(path.clone());
            } else if meta.is_file() {
                let xattrs = Command::new("getfattr")
                    .args(["--absolute-names", "-d", "-m", "user\\."])
                    .arg(&path)
                    .output()
                    .unwrap();
                let xattrs = String::from_utf8_lossy(&xattrs.stdout)
                    .lines()
                    .filter(|l| !l.starts_with('#') && !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(",");
                text += &format!(" xattrs [{xattrs}]");
                let same = inodes.entry(meta.ino()).or_insert_with(|| rel.clone());
                text += &format!(
                    " size {} blake3 {} inode-of {}",
                    meta.len(),
                    blake3::hash(&std::fs::read(&path).unwrap()),
                    same.display()
                );
            }
            out.insert(rel, text);
        }
    }
    out
}

fn json(cmd: &mut Command) -> Value {
    serde_json::from_str(&ok(cmd)).unwrap()
}

fn import_and_compare(version: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (source, rrepo, crepo) = (
        dir.path().join("src"),
        dir.path().join("restic-repo"),
        dir.path().join("cairn-repo"),
    );
    make_tree(&source);
    ok(restic(&rrepo).args(["init", "--repository-version", version]));
    let backup = |args: &[&str]| {
        ok(restic(&rrepo)
            .current_dir(dir.path())
            .args(["backup", "--quiet"])
            .args(args));
    };
    backup(&["src", "--host", "web", "--tag", "daily"]);
    std::fs::write(source.join("dir/small.txt"), b"changed\n").unwrap();
    backup(&["src", "--host", "web", "--tag", "daily"]);
    let mut stdin = restic(&rrepo)
        .current_dir(dir.path())
        .args([
            "backup",
            "--quiet",
            "--stdin",
            "--stdin-filename",
            "db.sql",
            "--host",
            "db",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(stdin.stdin.as_mut().unwrap(), &noise(1 << 20, "dump")).unwrap();
    assert!(stdin.wait().unwrap().success());
    std::fs::write(source.join("late.txt"), b"late\n").unwrap();
    backup(&["src", "--host", "web"]);
    // Forget the oldest: three remain.
    let listed = json(restic(&rrepo).args(["snapshots", "--json"]));
    let oldest = listed[0]["id"].as_str().unwrap().to_string();
    ok(restic(&rrepo).args(["forget", &oldest]));
    let remaining = json(restic(&rrepo).args(["snapshots", "--json"]));
    assert_eq!(remaining.as_array().unwrap().len(), 3);

    ok(cairn(&crepo, &rrepo).args(["init"]));
    let first = json(
        cairn(&crepo, &rrepo)
            .args(["--json", "copy", "--from-repo"])
            .arg(&rrepo),
    );
    assert_eq!(first["copied"].as_array().unwrap().len(), 3, "{first}");

    // Each snapshot: same time, host, paths and tags; restores as restic restores it.
    let ours = json(cairn(&crepo, &rrepo).args(["snapshots", "--json"]));
    for theirs in remaining.as_array().unwrap() {
        let id = theirs["id"].as_str().unwrap();
        let mine = ours
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["original"] == id)
            .unwrap_or_else(|| panic!("restic snapshot {id} not imported: {ours}"));
        for field in ["hostname", "paths", "tags", "username"] {
            assert_eq!(mine[field], theirs[field], "{field} of {id}");
        }
        let time =
            |v: &Value| chrono::DateTime::parse_from_rfc3339(v["time"].as_str().unwrap()).unwrap();
        assert_eq!(time(mine), time(theirs), "time of {id}");
        let (by_restic, by_cairn) = (dir.path().join("r-restic"), dir.path().join("r-cairn"));
        ok(restic(&rrepo)
            .args(["restore", id, "--target"])
            .arg(&by_restic));
        ok(cairn(&crepo, &rrepo)
            .args(["restore", mine["id"].as_str().unwrap(), "--target"])
            .arg(&by_cairn));
        assert_eq!(describe(&by_restic), describe(&by_cairn), "snapshot {id}");
        std::fs::remove_dir_all(&by_restic).unwrap();
        std::fs::remove_dir_all(&by_cairn).unwrap();
    }

    // forget groups by host and paths as restic does: two groups, the newest of each kept.
    let plan =
        json(cairn(&crepo, &rrepo).args(["--json", "forget", "--keep-last", "1", "--dry-run"]));
    let theirs = json(restic(&rrepo).args(["forget", "--keep-last", "1", "--dry-run", "--json"]));
    let kept = |groups: &Value, key: &str| {
        let mut ids: Vec<String> = groups
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["keep"].as_array().unwrap().clone())
            .map(|s| s[key].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        plan.as_array().unwrap().len(),
        theirs.as_array().unwrap().len()
    );
    assert_eq!(kept(&plan, "original"), kept(&theirs, "id"));

    // Again: nothing new.
    let again = json(
        cairn(&crepo, &rrepo)
            .args(["--json", "copy", "--from-repo"])
            .arg(&rrepo),
    );
    assert!(again["copied"].as_array().unwrap().is_empty(), "{again}");
    assert_eq!(again["skipped"].as_array().unwrap().len(), 3);
    assert_eq!(again["blobs_read"], 0);

    // A restic repository is not opened as a cairn one.
    let out = run(cairn(&rrepo, &rrepo).arg("snapshots"));
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("use cairn copy --from-repo"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn restic_format_2_imports_as_restic_restores_it() {
    import_and_compare("2");
}

#[test]
fn restic_format_1_imports_as_restic_restores_it() {
    import_and_compare("1");
}

#[test]
fn wrong_password_and_damaged_pack_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (source, rrepo) = (dir.path().join("src"), dir.path().join("restic-repo"));
    std::fs::create_dir_all(&source).unwrap();
    std::fs::write(source.join("f"), noise(200_000, "damage")).unwrap();
    ok(restic(&rrepo).arg("init"));
    ok(restic(&rrepo)
        .current_dir(dir.path())
        .args(["backup", "--quiet", "src"]));

    let crepo = dir.path().join("cairn-repo");
    ok(cairn(&crepo, &rrepo).arg("init"));
    let out = run(cairn(&crepo, &rrepo)
        .env("RESTIC_FROM_PASSWORD", "not it")
        .args(["copy", "--from-repo"])
        .arg(&rrepo));
    assert_eq!(
        out.status.code(),
        Some(12),
        "restic's wrong-password exit code"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong password"));

    // Damage every pack in its middle: the import names the blob and the pack.
    let mut packs = Vec::new();
    for fan in std::fs::read_dir(rrepo.join("data")).unwrap() {
        for pack in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            packs.push(pack.unwrap().path());
        }
    }
    assert!(!packs.is_empty());
    for pack in &packs {
        let mut bytes = std::fs::read(pack).unwrap();
        let middle = bytes.len() / 3;
        bytes[middle] ^= 0x40;
        std::fs::write(pack, bytes).unwrap();
    }
    let out = run(cairn(&crepo, &rrepo)
        .args(["copy", "--from-repo"])
        .arg(&rrepo));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("restic") && stderr.contains("in pack") && stderr.contains("MAC"),
        "{stderr}"
    );
    let snapshots = ok(cairn(&crepo, &rrepo).args(["snapshots", "--json"]));
    assert_eq!(snapshots.trim(), "[]", "nothing half-imported");
}

#[test]
fn a_restic_repository_on_s3_imports() {
    let Some(server) = s3_server::S3Server::start() else {
        return;
    };
    server.create_bucket("restic");
    let url = format!(
        "s3:http://{}/restic/team-a",
        server.endpoint.trim_start_matches("http://")
    );
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("a.bin"), noise(1 << 20, "s3 import")).unwrap();
    std::fs::write(source.join("sub/b.txt"), b"b\n").unwrap();
    ok(restic(&url).arg("init"));
    ok(restic(&url)
        .current_dir(dir.path())
        .args(["backup", "--quiet", "src", "--host", "s3host"]));
    let id = json(restic(&url).args(["snapshots", "--json"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let crepo = dir.path().join("cairn-repo");
    ok(cairn(&crepo, &url).arg("init"));
    let report = json(cairn(&crepo, &url).args(["--json", "copy", "--from-repo", &url]));
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report}");
    let (by_restic, by_cairn) = (dir.path().join("r-restic"), dir.path().join("r-cairn"));
    ok(restic(&url)
        .args(["restore", &id, "--target"])
        .arg(&by_restic));
    ok(cairn(&crepo, &url)
        .args(["restore", "latest", "--target"])
        .arg(&by_cairn));
    assert_eq!(describe(&by_restic), describe(&by_cairn));
}
