//! Shared helpers for cairn's criterion benchmarks.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Real, varied data for throughput benchmarks: the regular files under `/usr/share` (then
/// `/usr/lib`), concatenated in sorted path order, like an uncompressed tar of that tree.
///
/// Cached in `target/bench-data/` so repeated runs read the same bytes. Set
/// `CAIRN_BENCH_DATA` to a file to use that instead.
pub fn real_data(min_len: usize) -> Vec<u8> {
    if let Ok(path) = std::env::var("CAIRN_BENCH_DATA") {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("CAIRN_BENCH_DATA {path}: {e}"));
        assert!(
            data.len() >= min_len,
            "{path} has {} bytes, need {min_len}",
            data.len()
        );
        return data;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data");
    let cache = dir.join(format!("usr-share-{}.bin", min_len >> 20));
    if let Ok(data) = std::fs::read(&cache) {
        if data.len() >= min_len {
            return data;
        }
    }
    let mut files = Vec::new();
    for root in ["/usr/share", "/usr/lib"] {
        collect_files(Path::new(root), &mut files);
    }
    files.sort();
    let mut out = Vec::with_capacity(min_len);
    for path in files {
        if out.len() >= min_len {
            break;
        }
        if let Ok(bytes) = std::fs::read(&path) {
            out.extend_from_slice(&bytes);
        }
    }
    assert!(
        out.len() >= min_len,
        "only {} bytes of real data under /usr",
        out.len()
    );
    out.truncate(min_len);
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = cache.with_extension("tmp");
    std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&out))
        .unwrap();
    std::fs::rename(&tmp, &cache).unwrap();
    out
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if meta.is_dir() {
            collect_files(&entry.path(), out);
        } else if meta.is_file() {
            out.push(entry.path());
        }
    }
}
