//! Restores of snapshots a compromised host could write, and into targets someone prepared:
//! nothing outside the target may change, whatever the snapshot and the target hold; what a
//! restore applies that grants privileges follows the options; shared subtrees, deep trees
//! and broken symlinks cost a per-entry error or a refusal, never the process.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cairn_repo::ops::backup::{BackupOptions, StoreBlob};
use cairn_repo::ops::restore::{RestoreOptions, RestoreReport};
use cairn_repo::tree::{HexBytes, Xattr};
use cairn_repo::{BlobId, BlobType, ErrorKind, Name, Node, NodeKind, Repository, Snapshot};
use cairn_repo::{Result, Storage, Tree};
use common::*;

/// What a hostile snapshot holds, built directly (no file system could hold most of it).
enum Entry {
    File(Vec<u8>),
    Dir(Vec<(&'static str, Entry)>),
    Symlink(Vec<u8>),
    /// A node given in full (modes, owners, xattrs, devices).
    Raw(Box<Node>),
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node {
        mtime_ns: 1_600_000_000_000_000_000,
        ctime_ns: 1_600_000_000_000_000_000,
        ..Node::new(name, kind)
    }
}

fn store_dir(store: &mut StoreBlob<'_>, entries: Vec<(&'static str, Entry)>) -> Result<BlobId> {
    let mut nodes = Vec::new();
    for (name, entry) in entries {
        let n = match entry {
            Entry::File(data) => {
                let mut n = node(name.as_bytes(), NodeKind::File);
                n.size = data.len() as u64;
                // Two blobs for larger files, so both restore paths are exercised.
                for part in data.chunks(data.len().div_ceil(2).max(1)) {
                    n.content.push(store(BlobType::Data, part)?);
                }
                n
            }
            Entry::Dir(children) => {
                let mut n = node(name.as_bytes(), NodeKind::Dir);
                n.subtree = Some(store_dir(store, children)?);
                n
            }
            Entry::Symlink(target) => {
                let mut n = node(name.as_bytes(), NodeKind::Symlink);
                n.link_target = Some(Name(target));
                n
            }
            Entry::Raw(n) => *n,
        };
        nodes.push(n);
    }
    store(BlobType::Tree, &Tree { nodes }.encode()?)
}

async fn repo() -> Repository {
    Repository::init(Storage::in_memory(), PASSWORD, fast_init())
        .await
        .unwrap()
}

/// A snapshot of `entries` at its root.
async fn hostile(repo: &Repository, entries: Vec<(&'static str, Entry)>) -> Snapshot {
    repo.backup_built_tree(vec!["/".into()], BackupOptions::default(), move |store| {
        store_dir(store, entries)
    })
    .await
    .unwrap()
    .snapshot
}

async fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: RestoreOptions,
) -> Result<RestoreReport> {
    repo.restore(repo.load_index().await.unwrap(), snapshot, target, options)
        .await
}

/// A hash of everything below `dir`: names, kinds, modes, owners, times, contents, link
/// targets. Equal before and after means nothing there changed.
fn fingerprint(dir: &Path) -> String {
    let mut hasher = blake3::Hasher::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = Vec::new();
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = path.symlink_metadata().unwrap();
            let mut line = format!(
                "{} {:o} {}:{} {} ",
                path.display(),
                meta.mode(),
                meta.uid(),
                meta.gid(),
                meta.mtime_nsec() + meta.mtime() * 1_000_000_000
            );
            if meta.is_dir() {
                stack.push(path.clone());
            } else if meta.is_symlink() {
                line += &format!("-> {:?}", std::fs::read_link(&path).unwrap());
            } else {
                line += &blake3::hash(&std::fs::read(&path).unwrap()).to_hex();
            }
            seen.push(line);
        }
    }
    seen.sort();
    for line in seen {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().to_hex().to_string()
}

/// A directory outside every target, holding files a restore must never touch.
fn sentinel() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/passwd"), b"root:x:0:0").unwrap();
    std::fs::write(dir.path().join("victim"), b"precious").unwrap();
    let print = fingerprint(dir.path());
    (dir, print)
}

fn bytes(path: &Path) -> Vec<u8> {
    path.as_os_str().as_bytes().to_vec()
}

/// (a) A directory `S` and a symlink `s` to outside with files meant to land beneath it:
/// on a case-insensitive target the two names are one entry. Simulated here by planting
/// what such a target shows (`S` already being that symlink) before the restore.
#[tokio::test(flavor = "multi_thread")]
async fn a_colliding_directory_and_symlink_change_nothing_outside() {
    let (outside, before) = sentinel();
    let repo = repo().await;
    let snapshot = hostile(
        &repo,
        vec![
            (
                "S",
                Entry::Dir(vec![
                    ("passwd", Entry::File(b"hacked::0:0".to_vec())),
                    ("victim", Entry::File(noise(300_000, 1))),
                    (
                        "etc",
                        Entry::Dir(vec![("passwd", Entry::File(b"x".to_vec()))]),
                    ),
                ]),
            ),
            ("s", Entry::Symlink(bytes(outside.path()))),
        ],
    )
    .await;
    let target = tempfile::tempdir().unwrap();
    symlink(outside.path(), target.path().join("S")).unwrap();
    let report = restore(
        &repo,
        &snapshot,
        target.path(),
        RestoreOptions {
            verify: true,
            delete: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        fingerprint(outside.path()),
        before,
        "outside the target changed"
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let s_dir = target.path().join("S");
    assert!(s_dir.symlink_metadata().unwrap().is_dir());
    assert_eq!(std::fs::read(s_dir.join("passwd")).unwrap(), b"hacked::0:0");
    assert_eq!(
        std::fs::read(s_dir.join("victim")).unwrap(),
        noise(300_000, 1)
    );
    // The symlink itself is restored as the snapshot has it: nothing is written through it.
    assert_eq!(
        std::fs::read_link(target.path().join("s")).unwrap(),
        outside.path()
    );
    assert_eq!(report.files_verified, 3);
}

/// (b) Symlinks planted inside the target, where the snapshot has a file, a directory and
/// an intermediate directory, pointing outside.
#[tokio::test(flavor = "multi_thread")]
async fn symlinks_planted_inside_the_target_are_replaced_never_followed() {
    let (outside, before) = sentinel();
    let repo = repo().await;
    let snapshot = hostile(
        &repo,
        vec![
            ("victim", Entry::File(b"restored".to_vec())),
            (
                "etc",
                Entry::Dir(vec![
                    ("passwd", Entry::File(b"restored".to_vec())),
                    (
                        "deep",
                        Entry::Dir(vec![("f", Entry::File(noise(200_000, 2)))]),
                    ),
                ]),
            ),
        ],
    )
    .await;
    let target = tempfile::tempdir().unwrap();
    symlink(outside.path().join("victim"), target.path().join("victim")).unwrap();
    symlink(outside.path().join("etc"), target.path().join("etc")).unwrap();
    let report = restore(&repo, &snapshot, target.path(), RestoreOptions::default())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // Again over the restored tree, with symlinks planted one level down.
    std::fs::remove_dir_all(target.path().join("etc/deep")).unwrap();
    symlink(outside.path(), target.path().join("etc/deep")).unwrap();
    std::fs::remove_file(target.path().join("etc/passwd")).unwrap();
    symlink(
        outside.path().join("etc/passwd"),
        target.path().join("etc/passwd"),
    )
    .unwrap();
    let report = restore(
        &repo,
        &snapshot,
        target.path(),
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        fingerprint(outside.path()),
        before,
        "outside the target changed"
    );
    for (path, content) in [("victim", &b"restored"[..]), ("etc/passwd", b"restored")] {
        let path = target.path().join(path);
        assert!(path.symlink_metadata().unwrap().is_file());
        assert_eq!(std::fs::read(path).unwrap(), content);
    }
    assert!(target
        .path()
        .join("etc/deep")
        .symlink_metadata()
        .unwrap()
        .is_dir());
}

/// (c) The target lies below a symlink someone else planted where a directory was
/// expected: refused, and nothing is created through it. A symlink of the user's own (the
/// operator pointing `--target` at a symlinked directory) is followed.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_behind_a_planted_symlink_is_refused() {
    let (outside, before) = sentinel();
    let repo = repo().await;
    let snapshot = hostile(&repo, vec![("passwd", Entry::File(b"hacked".to_vec()))]).await;
    let base = tempfile::tempdir().unwrap();
    // The operator's own symlink: followed, whether the target exists or is created.
    let real = base.path().join("real");
    std::fs::create_dir(&real).unwrap();
    symlink(&real, base.path().join("mine")).unwrap();
    for target in ["mine", "mine/new/dir"] {
        let report = restore(
            &repo,
            &snapshot,
            &base.path().join(target),
            RestoreOptions::default(),
        )
        .await
        .unwrap();
        assert!(report.errors.is_empty(), "{:?}", report.errors);
    }
    assert_eq!(
        std::fs::read(real.join("new/dir/passwd")).unwrap(),
        b"hacked"
    );

    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped the planted-symlink half: needs root to plant a symlink as another user"
        );
        return;
    }
    // Planted by another user (uid 65534) at an intermediate directory of the target and
    // at the target itself.
    let planted = base.path().join("shared");
    std::fs::create_dir(&planted).unwrap();
    for (link, to) in [
        ("shared/app", outside.path().join("etc")),
        ("shared/direct", outside.path().join("etc")),
    ] {
        let link = base.path().join(link);
        symlink(&to, &link).unwrap();
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &link,
            Some(65534.into()),
            Some(65534.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .unwrap();
    }
    for target in ["shared/app/data", "shared/direct"] {
        let error = restore(
            &repo,
            &snapshot,
            &base.path().join(target),
            RestoreOptions::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Io, "{error}");
        assert!(
            error.to_string().contains("symlink owned by uid 65534"),
            "{error}"
        );
    }
    assert_eq!(
        fingerprint(outside.path()),
        before,
        "outside the target changed"
    );
}

/// (d) `--delete` over a target with symlinks planted in restored directories, pointing at
/// directories outside full of what `--delete` would remove: the links go, what they point
/// at stays; excluded names are spared even below a planted directory.
#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_planted_symlinks_without_following_them() {
    let (outside, before) = sentinel();
    let repo = repo().await;
    let snapshot = hostile(
        &repo,
        vec![(
            "keep",
            Entry::Dir(vec![
                ("a", Entry::File(b"a".to_vec())),
                ("sub", Entry::Dir(vec![("b", Entry::File(b"b".to_vec()))])),
            ]),
        )],
    )
    .await;
    let target = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(target.path().join("keep/sub")).unwrap();
    std::fs::create_dir_all(target.path().join("keep/extra/deeper")).unwrap();
    std::fs::write(target.path().join("keep/extra/deeper/x.log"), b"spared").unwrap();
    symlink(outside.path(), target.path().join("keep/link")).unwrap();
    symlink(outside.path(), target.path().join("keep/extra/deeper/link")).unwrap();
    symlink(
        outside.path().join("etc"),
        target.path().join("keep/sub/etc"),
    )
    .unwrap();
    symlink(outside.path(), target.path().join("top")).unwrap();
    let report = restore(
        &repo,
        &snapshot,
        target.path(),
        RestoreOptions {
            delete: true,
            exclude: vec!["*.log".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        fingerprint(outside.path()),
        before,
        "outside the target changed"
    );
    for gone in ["keep/link", "keep/sub/etc", "top", "keep/extra/deeper/link"] {
        assert!(
            target.path().join(gone).symlink_metadata().is_err(),
            "{gone}"
        );
    }
    assert!(target.path().join("keep/extra/deeper/x.log").exists());
    assert_eq!(report.deleted, 3, "link, sub/etc and top; extra/ is spared");
}

/// On a real case-insensitive file system (ext4 or tmpfs with casefold, vfat), when this
/// machine can make one: the snapshot's `S` and `s` are one entry there.
#[tokio::test(flavor = "multi_thread")]
async fn case_insensitive_target_when_available() {
    let Some(mount) = casefold::mount() else {
        return;
    };
    let (outside, before) = sentinel();
    let repo = repo().await;
    let snapshot = hostile(
        &repo,
        vec![
            (
                "S",
                Entry::Dir(vec![
                    ("passwd", Entry::File(b"hacked".to_vec())),
                    ("victim", Entry::File(noise(300_000, 3))),
                ]),
            ),
            ("s", Entry::Symlink(bytes(outside.path()))),
        ],
    )
    .await;
    let target = mount.dir.join("target");
    let report = restore(&repo, &snapshot, &target, RestoreOptions::default()).await;
    let fingerprint_after = fingerprint(outside.path());
    drop(mount);
    let report = report.unwrap();
    assert_eq!(fingerprint_after, before, "outside the target changed");
    assert!(
        !report.errors.is_empty(),
        "the collision is reported: {report:?}"
    );
}

mod casefold {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// A case-insensitive directory on a file system mounted for the test; unmounted on drop.
    pub struct Mount {
        /// The case-folding directory to work in.
        pub dir: PathBuf,
        mount_point: PathBuf,
        _scratch: tempfile::TempDir,
    }

    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.mount_point).status();
        }
    }

    fn run(cmd: &mut Command) -> bool {
        cmd.output().is_ok_and(|o| o.status.success())
    }

    /// Creating `CaseProbe` makes `caseprobe` visible: the directory folds case.
    fn folds(dir: &Path) -> bool {
        let probe = dir.join("CaseProbe");
        let folded = std::fs::write(&probe, b"").is_ok() && dir.join("caseprobe").exists();
        let _ = std::fs::remove_file(&probe);
        folded
    }

    /// Mounts one (tmpfs with casefold, an ext4 casefold image, a vfat image), or says why
    /// it cannot and returns `None`.
    pub fn mount() -> Option<Mount> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: mounting a case-insensitive file system needs root");
            return None;
        }
        let scratch = tempfile::tempdir().ok()?;
        let mount_point = scratch.path().join("mnt");
        std::fs::create_dir(&mount_point).ok()?;
        let image = scratch.path().join("image");
        let attempts: [(&str, Vec<&str>); 3] = [
            ("tmpfs", vec![]),
            ("mkfs.ext4", vec!["-q", "-O", "casefold", "-F"]),
            ("mkfs.vfat", vec![]),
        ];
        for (how, args) in attempts {
            let mounted = if how == "tmpfs" {
                run(Command::new("mount")
                    .args(["-t", "tmpfs", "-o", "casefold", "tmpfs"])
                    .arg(&mount_point))
            } else {
                std::fs::File::create(&image)
                    .and_then(|f| f.set_len(64 << 20))
                    .is_ok()
                    && run(Command::new(how).args(&args).arg(&image))
                    && run(Command::new("mount")
                        .args(["-o", "loop"])
                        .arg(&image)
                        .arg(&mount_point))
            };
            if !mounted {
                continue;
            }
            // ext4 and tmpfs fold case per directory (+F on an empty one); vfat everywhere.
            let dir = mount_point.join("cf");
            let _ = std::fs::create_dir(&dir);
            let _ = Command::new("chattr").arg("+F").arg(&dir).status();
            if folds(&dir) {
                return Some(Mount {
                    dir,
                    mount_point,
                    _scratch: scratch,
                });
            }
            let _ = Command::new("umount").arg(&mount_point).status();
        }
        eprintln!(
            "skipped: no case-insensitive file system can be made here (tmpfs casefold, ext4 \
             casefold and vfat all unavailable); the simulated collisions cover restore"
        );
        None
    }
}

/// A setuid file owned by 1234:4321 with user, trusted and security attributes, and a
/// character device (the null device's numbers).
fn privileged_entries() -> Vec<(&'static str, Entry)> {
    let mut tool = node(b"tool", NodeKind::File);
    tool.mode = 0o104755;
    tool.uid = 1234;
    tool.gid = 4321;
    // VFS_CAP_REVISION_2 granting CAP_NET_RAW: a file capability a hostile host could plant.
    let mut capability = vec![0, 0, 0, 2, 0, 0x20, 0, 0];
    capability.resize(20, 0);
    tool.xattrs = [
        ("security.capability", capability),
        ("trusted.cairn", b"t".to_vec()),
        ("user.drop", b"d".to_vec()),
        ("user.keep", b"k".to_vec()),
    ]
    .into_iter()
    .map(|(name, value)| Xattr {
        name: Name(name.as_bytes().to_vec()),
        value: HexBytes(value),
    })
    .collect();
    let mut dev = node(b"null", NodeKind::Chardev);
    dev.mode = 0o20666;
    dev.rdev = Some(nix::sys::stat::makedev(1, 3));
    let mut setgid_dir = node(b"shared", NodeKind::Dir);
    setgid_dir.mode = 0o42775;
    vec![
        ("null", Entry::Raw(Box::new(dev))),
        ("shared", Entry::Raw(Box::new(setgid_dir))),
        ("tool", Entry::Raw(Box::new(tool))),
    ]
}

fn xattr_names(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = xattr::list(path)
        .unwrap()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("security.selinux"))
        .collect();
    names.sort();
    names
}

/// Owners, setuid/setgid bits, device nodes and extended attributes are restored as the
/// snapshot has them by default (restic's behaviour), and each can be turned off.
#[tokio::test(flavor = "multi_thread")]
async fn privileges_follow_the_restore_options() {
    let repo = repo().await;
    let entries = privileged_entries();
    // The empty directory needs a tree of its own: build it inside the snapshot.
    let snapshot = repo
        .backup_built_tree(vec!["/".into()], BackupOptions::default(), move |store| {
            let empty = store(BlobType::Tree, &Tree::default().encode()?)?;
            let mut filled = Vec::new();
            for (name, entry) in entries {
                filled.push(match entry {
                    Entry::Raw(mut n) if n.kind == NodeKind::Dir => {
                        n.subtree = Some(empty);
                        (name, Entry::Raw(n))
                    }
                    Entry::Raw(mut n) if n.kind == NodeKind::File => {
                        n.content = vec![store(BlobType::Data, b"#!/bin/sh\n")?];
                        n.size = 10;
                        (name, Entry::Raw(n))
                    }
                    other => (name, other),
                });
            }
            let entries = filled;
            store_dir(store, entries)
        })
        .await
        .unwrap()
        .snapshot;
    let root = nix::unistd::geteuid().is_root();

    let full = tempfile::tempdir().unwrap();
    let report = restore(&repo, &snapshot, full.path(), RestoreOptions::default())
        .await
        .unwrap();
    let tool = full.path().join("tool");
    let meta = tool.metadata().unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755, "setuid kept");
    assert_eq!(
        full.path()
            .join("shared")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o2775
    );
    if root {
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!((meta.uid(), meta.gid()), (1234, 4321));
        assert!(full
            .path()
            .join("null")
            .symlink_metadata()
            .unwrap()
            .file_type()
            .is_char_device());
        assert_eq!(
            xattr_names(&tool),
            [
                "security.capability",
                "trusted.cairn",
                "user.drop",
                "user.keep"
            ]
        );
    } else {
        eprintln!("owner, device and security-attribute checks need root: skipped");
    }

    let limited = tempfile::tempdir().unwrap();
    let report = restore(
        &repo,
        &snapshot,
        limited.path(),
        RestoreOptions {
            no_owner: true,
            no_setid: true,
            no_devices: true,
            exclude_xattr: vec!["security.*".into(), "trusted.*".into(), "user.drop".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.skipped, 1, "the device node");
    let tool = limited.path().join("tool");
    let meta = tool.metadata().unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755, "setuid cleared");
    assert_eq!(
        limited
            .path()
            .join("shared")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o775,
        "setgid cleared"
    );
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw(), "not chowned");
    assert!(limited.path().join("null").symlink_metadata().is_err());
    assert_eq!(xattr_names(&tool), ["user.keep"]);

    // --include-xattr selects; --exclude-xattr still applies after it.
    let selected = tempfile::tempdir().unwrap();
    restore(
        &repo,
        &snapshot,
        selected.path(),
        RestoreOptions {
            include_xattr: vec!["user.*".into()],
            exclude_xattr: vec!["*.keep".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(xattr_names(&selected.path().join("tool")), ["user.drop"]);
    assert!(matches!(
        restore(&repo, &snapshot, selected.path(), RestoreOptions {
            include_xattr: vec!["user.[".into()],
            ..Default::default()
        })
        .await,
        Err(e) if e.kind() == ErrorKind::InvalidInput
    ));
}

/// A tree whose levels each name the level below twice: `depth` trees, 2^depth paths.
async fn doubling_snapshot(repo: &Repository, depth: usize) -> Snapshot {
    repo.backup_built_tree(vec!["/".into()], BackupOptions::default(), move |store| {
        let mut leaf = node(b"leaf", NodeKind::File);
        leaf.content = vec![store(BlobType::Data, b"leaf content")?];
        leaf.size = 12;
        let mut below = store(BlobType::Tree, &Tree { nodes: vec![leaf] }.encode()?)?;
        for _ in 0..depth {
            let nodes = [b"a", b"b"]
                .iter()
                .map(|name| {
                    let mut n = node(*name, NodeKind::Dir);
                    n.subtree = Some(below);
                    n
                })
                .collect();
            below = store(BlobType::Tree, &Tree { nodes }.encode()?)?;
        }
        Ok(below)
    })
    .await
    .unwrap()
    .snapshot
}

/// Shared subtrees are restored at every path that names them; a snapshot whose sharing
/// multiplies past the limit (30 trees describing 2^30 paths) is refused at once, naming
/// the tree, without expanding it.
#[tokio::test(flavor = "multi_thread")]
async fn shared_subtrees_restore_everywhere_and_blowups_are_refused() {
    let repo = repo().await;
    let small = doubling_snapshot(&repo, 3).await;
    let target = tempfile::tempdir().unwrap();
    let report = restore(&repo, &small, target.path(), RestoreOptions::default())
        .await
        .unwrap();
    assert_eq!(report.files_restored, 8);
    assert_eq!(report.dirs_restored, 2 + 4 + 8);
    assert_eq!(
        std::fs::read(target.path().join("b/a/b/leaf")).unwrap(),
        b"leaf content"
    );
    // The same snapshot over a lower limit.
    let error = restore(
        &repo,
        &small,
        target.path(),
        RestoreOptions {
            max_entries: Some(10),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt);
    assert!(
        error.to_string().contains("more than the limit of 10"),
        "{error}"
    );

    let huge = doubling_snapshot(&repo, 30).await;
    let started = std::time::Instant::now();
    let target = tempfile::tempdir().unwrap();
    let error = restore(&repo, &huge, target.path(), RestoreOptions::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    let message = error.to_string();
    assert!(
        message.contains("more than the limit of 16777216"),
        "{message}"
    );
    // The smallest tree over the limit: 23 levels expand to 3 * 2^23 - 2 entries, 22 to
    // fewer than 2^24; from the root (30 levels) that is 7 levels down.
    assert!(message.contains("at /a/a/a/a/a/a/a of"), "{message}");
    assert!(message.contains("expands to 25165822 entries"), "{message}");
    assert!(std::fs::read_dir(target.path()).unwrap().next().is_none());
}

/// A symlink whose target is empty or holds a NUL byte is that entry's error; the rest of
/// the snapshot is restored.
#[tokio::test(flavor = "multi_thread")]
async fn unrepresentable_symlink_targets_are_entry_errors() {
    let repo = repo().await;
    let snapshot = hostile(
        &repo,
        vec![
            ("empty", Entry::Symlink(Vec::new())),
            ("fine", Entry::File(b"fine".to_vec())),
            ("good", Entry::Symlink(b"fine".to_vec())),
            ("nul", Entry::Symlink(b"a\0b".to_vec())),
        ],
    )
    .await;
    let target = tempfile::tempdir().unwrap();
    let report = restore(&repo, &snapshot, target.path(), RestoreOptions::default())
        .await
        .unwrap();
    let mut failed: Vec<(PathBuf, &str)> = report
        .errors
        .iter()
        .map(|(p, m)| (p.clone(), m.as_str()))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, target.path().join("empty"), "{failed:?}");
    assert!(failed[0].1.contains("empty"));
    assert_eq!(failed[1].0, target.path().join("nul"));
    assert!(failed[1].1.contains("NUL"));
    assert_eq!(std::fs::read(target.path().join("fine")).unwrap(), b"fine");
    assert_eq!(
        std::fs::read_link(target.path().join("good")).unwrap(),
        Path::new("fine")
    );
    assert_eq!((report.files_restored, report.others_restored), (1, 1));
}

/// A chain of directories `depth` deep, a file at the bottom.
async fn deep_snapshot(repo: &Repository, depth: usize, name: &'static [u8]) -> Snapshot {
    repo.backup_built_tree(vec!["/".into()], BackupOptions::default(), move |store| {
        let mut file = node(b"bottom", NodeKind::File);
        file.content = vec![store(BlobType::Data, b"deep")?];
        file.size = 4;
        let mut below = store(BlobType::Tree, &Tree { nodes: vec![file] }.encode()?)?;
        for _ in 0..depth {
            let mut dir = node(name, NodeKind::Dir);
            dir.subtree = Some(below);
            below = store(BlobType::Tree, &Tree { nodes: vec![dir] }.encode()?)?;
        }
        Ok(below)
    })
    .await
    .unwrap()
    .snapshot
}

/// Counts bytes written.
#[derive(Clone, Default)]
struct Counter(Arc<std::sync::atomic::AtomicU64>);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .fetch_add(buf.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `dump` of a snapshot 10 000 directories deep, on threads with a 256 KiB stack (a
/// recursion per level needs far more): it completes, every level in the archive.
#[test]
fn a_very_deep_snapshot_dumps_as_tar_without_recursion() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(256 * 1024)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let repo = repo().await;
        let snapshot = deep_snapshot(&repo, 10_000, b"d").await;
        let out = Counter::default();
        let written = repo
            .dump_tar(
                repo.load_index().await.unwrap(),
                snapshot.tree,
                PathBuf::new(),
                out.clone(),
            )
            .await
            .unwrap();
        assert_eq!(written, 4, "the file at the bottom");
        // Each level's entry carries its full path (2 bytes a level) in a GNU long name.
        let total = out.0.load(std::sync::atomic::Ordering::Relaxed);
        assert!(total > 10_000 * 1024, "{total} bytes");
    });
}

/// A restore deeper than PATH_MAX (1500 levels of 4-byte names: 7.5 KB of path) works,
/// since nothing is resolved from the top.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_deeper_than_path_max_restores() {
    let repo = repo().await;
    let snapshot = deep_snapshot(&repo, 1500, b"dir").await;
    let target = tempfile::tempdir().unwrap();
    let report = restore(
        &repo,
        &snapshot,
        target.path(),
        RestoreOptions {
            verify: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(report.errors.is_empty(), "{:?}", &report.errors[..1]);
    assert_eq!((report.dirs_restored, report.files_verified), (1500, 1));
    // Read it back a level at a time (a path this long cannot be opened at once).
    let mut dir = std::fs::File::open(target.path()).unwrap();
    for _ in 0..1500 {
        dir = std::fs::File::from(
            nix::fcntl::openat(
                &dir,
                "dir",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
                nix::sys::stat::Mode::empty(),
            )
            .unwrap(),
        );
    }
    let bottom = nix::fcntl::openat(
        &dir,
        "bottom",
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap();
    let mut content = String::new();
    std::io::Read::read_to_string(&mut std::fs::File::from(bottom), &mut content).unwrap();
    assert_eq!(content, "deep");
}
