//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cairn_chunker::ChunkerParams;
use cairn_repo::{InitOptions, KdfParams};

pub const PASSWORD: &[u8] = b"correct horse battery staple";

/// Small chunks and packs so tests exercise many of each; a cheap KDF.
pub fn fast_init() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams::new(16 * 1024, 64 * 1024, 256 * 1024).unwrap(),
        pack_size: 256 * 1024,
        compression: Some(3),
        kdf: KdfParams::new(64, 1, 1).unwrap(),
    }
}

pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut out = vec![0u8; len];
    blake3::Hasher::new_derive_key("cairn repo test noise")
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

/// A tree with every kind of entry cairn stores. Returns whether xattrs are supported here.
pub fn make_tree(root: &Path) -> bool {
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("small.txt"), b"hello cairn\n").unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("dir/big.bin"), noise(1_500_000, 1)).unwrap();
    let mut text = Vec::new();
    for i in 0..40_000 {
        text.extend_from_slice(format!("line {i} of a compressible file\n").as_bytes());
    }
    std::fs::write(root.join("dir/sub/text.log"), &text).unwrap();
    std::fs::write(root.join("dir/same-as-big.bin"), noise(1_500_000, 1)).unwrap();
    // Sparse: 3 MiB hole then data.
    let sparse = std::fs::File::create(root.join("sparse.img")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    sparse.write_all_at(b"tail data", 3 << 20).unwrap();
    std::os::unix::fs::symlink("dir/sub/text.log", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("small.txt"), root.join("dir/hardlink.txt")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o640),
    )
    .unwrap();
    let weird = std::ffi::OsStr::from_bytes(b"name-\xff\xfe-not-utf8");
    std::fs::write(root.join(weird), b"bytes").unwrap();
    std::fs::set_permissions(root.join("dir/sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::fs::set_permissions(
        root.join("small.txt"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    let xattrs = xattr::set(root.join("small.txt"), "user.cairn", b"value").is_ok();
    // A fixed, old mtime with nanoseconds.
    let ts = nix::sys::time::TimeSpec::new(1_600_000_000, 123_456_789);
    nix::sys::stat::utimensat(
        nix::fcntl::AT_FDCWD,
        &root.join("dir/big.bin"),
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
    xattrs
}

/// Asserts two trees are equal in names, kinds, content, modes, mtimes, link targets,
/// hard links and (optionally) xattrs.
pub fn assert_same_tree(a: &Path, b: &Path, check_xattrs: bool) {
    let list = |root: &Path| -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.symlink_metadata().unwrap().is_dir() {
                    stack.push(path.clone());
                }
                out.push(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
        out.sort();
        out
    };
    let left = list(a);
    assert_eq!(left, list(b), "different entries");
    for rel in &left {
        let (pa, pb) = (a.join(rel), b.join(rel));
        let (ma, mb) = (
            pa.symlink_metadata().unwrap(),
            pb.symlink_metadata().unwrap(),
        );
        assert_eq!(ma.file_type(), mb.file_type(), "{}", rel.display());
        assert_eq!(ma.mode(), mb.mode(), "mode of {}", rel.display());
        if ma.is_file() {
            assert_eq!(
                std::fs::read(&pa).unwrap(),
                std::fs::read(&pb).unwrap(),
                "content of {}",
                rel.display()
            );
            assert_eq!(ma.nlink(), mb.nlink(), "links of {}", rel.display());
        }
        if ma.file_type().is_symlink() {
            assert_eq!(
                std::fs::read_link(&pa).unwrap(),
                std::fs::read_link(&pb).unwrap()
            );
        }
        assert_eq!(
            (ma.mtime(), ma.mtime_nsec()),
            (mb.mtime(), mb.mtime_nsec()),
            "mtime of {}",
            rel.display()
        );
        if check_xattrs && !ma.file_type().is_symlink() {
            let xa: Vec<_> = xattr::list(&pa).unwrap().collect();
            let xb: Vec<_> = xattr::list(&pb).unwrap().collect();
            assert_eq!(xa, xb, "xattrs of {}", rel.display());
        }
    }
}
