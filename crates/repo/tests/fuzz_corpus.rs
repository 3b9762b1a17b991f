//! Replays every input of the repository-format fuzz corpora (fuzz/corpus/<target>/) through
//! the entry points the fuzz targets call, so CI exercises them on stable.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        run(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "empty corpus {}", dir.display());
}

#[test]
fn index_file_corpus() {
    replay("index_file", cairn_repo::fuzzing::index_file);
}

#[test]
fn tree_corpus() {
    replay("tree", cairn_repo::fuzzing::tree);
}

#[test]
fn snapshot_corpus() {
    replay("snapshot", cairn_repo::fuzzing::snapshot);
}

#[test]
fn config_corpus() {
    replay("config", cairn_repo::fuzzing::config);
}

#[test]
fn sealed_object_corpus() {
    replay("sealed_object", cairn_repo::fuzzing::sealed_object);
}

#[test]
fn index_table_corpus() {
    replay("index_table", cairn_repo::fuzzing::index_table);
}

#[test]
fn lock_corpus() {
    replay("lock", cairn_repo::fuzzing::lock);
}

#[test]
fn pending_corpus() {
    replay("pending", cairn_repo::fuzzing::pending);
}

#[test]
fn record_corpus() {
    replay("record", cairn_repo::fuzzing::record);
}

#[test]
fn restic_key_file_corpus() {
    replay("restic_key_file", cairn_repo::fuzzing::restic_key_file);
}

#[test]
fn restic_index_corpus() {
    replay("restic_index", cairn_repo::fuzzing::restic_index);
}

#[test]
fn restic_blob_corpus() {
    replay("restic_blob", cairn_repo::fuzzing::restic_blob);
}
