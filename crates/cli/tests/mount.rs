//! `cairn mount` end to end through the kernel's FUSE: layout, content, metadata, lazy and
//! ranged reads (counted in store requests), new snapshots appearing, unmount on SIGTERM.
//!
//! Needs /dev/fuse and the right to mount (root, or fusermount3 from the fuse3 package). CI
//! installs fuse3 and runs as root; a machine without FUSE fails this test rather than
//! skipping it, so a CI that lost FUSE is noticed.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[path = "../../repo/tests/common/s3_server.rs"]
mod s3_server;

fn cairn(repo: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = cairn_with(
        "CAIRN_REPOSITORY",
        "CAIRN_PASSWORD",
        Path::new(&repo),
        "test password",
    );
    cmd.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    cmd
}

/// Deterministic bytes that do not compress or dedup.
fn noise(len: usize, seed: &str) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new_derive_key(seed)
        .finalize_xof()
        .fill(&mut out);
    out
}

const BIG: usize = 48 << 20;

fn make_source(root: &Path) {
    std::fs::create_dir_all(root.join("dir/deeper")).unwrap();
    std::fs::write(root.join("big.bin"), noise(BIG, "mount test big")).unwrap();
    std::fs::write(root.join("small.txt"), b"small\n").unwrap();
    std::fs::write(root.join("dir/deeper/inner"), b"inner\n").unwrap();
    std::fs::hard_link(root.join("small.txt"), root.join("dir/hardlink")).unwrap();
    std::os::unix::fs::symlink("../small.txt", root.join("dir/link")).unwrap();
    // Sparse: a hole of 32 MiB, then data.
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(32 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"tail data", 32 << 20).unwrap();
}

struct Mounted {
    child: Child,
    point: PathBuf,
}

impl Mounted {
    fn start(repo: impl AsRef<std::ffi::OsStr>, point: &Path, extra: &[&str]) -> Mounted {
        std::fs::create_dir_all(point).unwrap();
        let child = cairn(repo)
            .arg("--json")
            .arg("mount")
            .arg(point)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut mounted = Mounted {
            child,
            point: point.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !point.join("snapshots").exists() {
            if let Some(status) = mounted.child.try_wait().unwrap() {
                let mut err = String::new();
                mounted
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("cairn mount exited with {status}: {err}");
            }
            assert!(Instant::now() < deadline, "the mount did not appear");
            std::thread::sleep(Duration::from_millis(50));
        }
        mounted
    }

    /// SIGTERM, then the summary line it printed (with the store requests of the run).
    fn stop(mut self) -> Value {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
        assert!(
            !mounts.contains(self.point.to_str().unwrap()),
            "still mounted after SIGTERM"
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["message_type"] == "summary")
            .unwrap_or_else(|| panic!("no summary in {stdout:?}"))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        // A failed test must not leave a mount behind.
        let _ = self.child.kill();
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn assert_same(source: &Path, mounted: &Path) {
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let (a, b) = (entry.path(), mounted.join(entry.file_name()));
        let (ma, mb) = (a.symlink_metadata().unwrap(), b.symlink_metadata().unwrap());
        assert_eq!(ma.mode(), mb.mode(), "{}", b.display());
        assert_eq!(ma.mtime(), mb.mtime(), "{}", b.display());
        if !ma.is_dir() {
            assert_eq!(ma.nlink(), mb.nlink(), "{}", b.display());
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&a).unwrap(),
                std::fs::read_link(&b).unwrap()
            );
        } else if ma.is_dir() {
            assert_same(&a, &b);
        } else {
            assert_eq!(ma.len(), mb.len(), "{}", b.display());
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
                "{} differs",
                b.display()
            );
        }
    }
    assert_eq!(names(source), names(mounted));
}

/// Bytes of packs (data and trees) the mount fetched, from its summary.
fn pack_bytes(summary: &Value) -> u64 {
    summary["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "data")
        .map(|k| k["bytes_read"].as_u64().unwrap())
        .sum()
}

#[test]
fn a_mounted_repository_reads_lazily_and_follows_new_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, source) = (dir.path().join("repo"), dir.path().join("src"));
    make_source(&source);
    ok(cairn(&repo).args(["init"]));
    ok(cairn(&repo)
        .current_dir(dir.path())
        .args(["backup", "src", "--host", "alpha", "--tag", "first"]));
    std::fs::write(source.join("small.txt"), b"changed\n").unwrap();
    ok(cairn(&repo)
        .current_dir(dir.path())
        .args(["backup", "src", "--host", "beta"]));

    // A random 1 MiB read from the middle of the big file fetches only what it touches.
    let point = dir.path().join("mnt");
    let mounted = Mounted::start(&repo, &point, &[]);
    let mut file = std::fs::File::open(point.join("snapshots/latest/src/big.bin")).unwrap();
    let mut middle = vec![0; 1 << 20];
    file.seek(SeekFrom::Start((BIG / 2) as u64)).unwrap();
    file.read_exact(&mut middle).unwrap();
    drop(file);
    assert!(middle == noise(BIG, "mount test big")[BIG / 2..BIG / 2 + (1 << 20)]);
    let fetched = pack_bytes(&mounted.stop());
    eprintln!(
        "1 MiB read from a {} MiB file fetched {fetched} bytes of packs (amplification {:.2})",
        BIG >> 20,
        fetched as f64 / f64::from(1 << 20)
    );
    assert!(
        fetched < (BIG / 4) as u64,
        "a 1 MiB read fetched {fetched} bytes"
    );

    let mounted = Mounted::start(&repo, &point, &["-o", "mount.refresh=0"]);
    assert_eq!(
        names(&point),
        ["hosts", "ids", "snapshots", "tags"]
            .map(String::from)
            .into()
    );
    assert_eq!(
        names(&point.join("hosts")),
        ["alpha", "beta"].map(String::from).into()
    );
    assert_eq!(
        names(&point.join("tags")),
        ["first"].map(String::from).into()
    );
    assert_eq!(
        names(&point.join("tags/first")).len(),
        2,
        "one snapshot and latest"
    );
    assert_eq!(names(&point.join("snapshots")).len(), 3);
    assert_eq!(names(&point.join("ids")).len(), 2);
    assert_same(&source, &point.join("snapshots/latest/src"));
    assert_eq!(
        std::fs::read(point.join("hosts/alpha/latest/src/small.txt")).unwrap(),
        b"small\n"
    );
    // The hard link is one inode; the sparse file's hole is not data.
    let link = point.join("snapshots/latest/src/dir/hardlink");
    let original = point.join("snapshots/latest/src/small.txt");
    assert_eq!(
        link.metadata().unwrap().ino(),
        original.metadata().unwrap().ino()
    );
    let sparse = point.join("snapshots/latest/src/sparse.img");
    assert!(sparse.metadata().unwrap().blocks() * 512 < 16 << 20);
    let fd = std::fs::File::open(&sparse).unwrap();
    let data = nix::unistd::lseek(&fd, 0, nix::unistd::Whence::SeekData).unwrap();
    assert!(data > 0, "the hole at the start is seen as a hole");
    drop(fd);

    // A third snapshot appears without remounting.
    ok(cairn(&repo)
        .current_dir(dir.path())
        .args(["backup", "src", "--host", "gamma"]));
    assert_eq!(names(&point.join("snapshots")).len(), 4);
    assert!(names(&point.join("hosts")).contains("gamma"));
    assert_eq!(
        std::fs::read(point.join("hosts/gamma/latest/src/small.txt")).unwrap(),
        b"changed\n"
    );
    mounted.stop();
}

#[test]
fn a_repository_on_s3_mounts() {
    let Some(server) = s3_server::S3Server::start() else {
        return;
    };
    server.create_bucket("cairn");
    let url = format!(
        "s3:http://{}/cairn/mounted",
        server.endpoint.trim_start_matches("http://")
    );
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("a.bin"), noise(3 << 20, "s3 mount")).unwrap();
    std::fs::write(source.join("sub/b.txt"), b"b\n").unwrap();
    ok(cairn(&url).arg("init"));
    ok(cairn(&url).current_dir(dir.path()).args(["backup", "src"]));
    let point = dir.path().join("mnt");
    let mounted = Mounted::start(&url, &point, &[]);
    assert_same(&source, &point.join("snapshots/latest/src"));
    mounted.stop();
}
