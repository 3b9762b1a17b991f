//! Replays every input of the cargo-fuzz corpora (fuzz/corpus/<target>/) through the same
//! entry points the fuzz targets call, so CI exercises them without a nightly compiler.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        run(&data);
        count += 1;
    }
    assert!(count > 0, "empty corpus {}", dir.display());
}

#[test]
fn pack_file_corpus() {
    replay("pack_file", cairn_pack::fuzzing::pack_file);
}

#[test]
fn pack_header_corpus() {
    replay("pack_header", cairn_pack::fuzzing::pack_header_plaintext);
}

#[test]
fn blob_corpus() {
    replay("blob", cairn_pack::fuzzing::blob);
}

#[test]
fn key_file_corpus() {
    replay("key_file", cairn_pack::fuzzing::key_file);
}

/// The seeds are valid objects: they must decode, or the fuzzers start from nothing useful.
#[test]
fn seeds_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let keys = cairn_pack::fuzzing::fuzz_keys();
    let pack = std::fs::read(root.join("pack_file/seed-3-blobs")).unwrap();
    let entries = cairn_pack::PackReader::from_bytes(&keys, &pack).unwrap();
    assert_eq!(entries.len(), 3);
    for entry in &entries {
        let bytes = cairn_pack::PackReader::blob_bytes(&pack, entry).unwrap();
        cairn_pack::decode_blob(&keys, entry, bytes).unwrap();
    }
    let key_file =
        cairn_pack::KeyFile::parse(&std::fs::read(root.join("key_file/seed-valid")).unwrap())
            .unwrap();
    key_file.unlock(b"fuzz").unwrap();
}
