//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus replay tests, for
//! every format this crate parses. Each takes arbitrary bytes and must return without
//! panicking.

use cairn_pack::MasterKeys;

use crate::config::RepoConfig;
use crate::index::IndexFile;
use crate::object::{open_named, open_object, ObjectKind};
use crate::pending::PendingDeletion;
use crate::records::{CheckRecord, DrillRecord, Record};
use crate::snapshot::Snapshot;
use crate::tree::{Name, Part, PartList, Tree, TreeBlob};

/// The fixed key set sealed fuzz seeds use.
pub fn fuzz_keys() -> MasterKeys {
    MasterKeys::from_parts([0x11; 32], [0x22; 32], [0x33; 32])
}

/// An index table (everything but its MAC, which is computed here so the input reaches the
/// parser as if a key holder had written it): opening it and looking ids up, present or not,
/// must not panic, and every slot it lists must be found.
pub fn index_table(data: &[u8]) {
    use crate::index::table::Table;
    const KEY: [u8; 32] = [0x44; 32];
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("fuzz.table");
    let mut bytes = data.to_vec();
    bytes.extend_from_slice(blake3::keyed_hash(&KEY, data).as_bytes());
    if std::fs::write(&path, &bytes).is_err() {
        return;
    }
    let Ok(table) = Table::open(&path, &KEY) else {
        return;
    };
    let mut previous: Option<[u8; 32]> = None;
    for i in 0..table.len().min(4096) {
        let slot = table.slot(i);
        let _ = table.pack(slot.pack_number());
        // Slots out of order are a damaged table the lookups may miss, never one they
        // panic on.
        if previous.is_none_or(|p| p < slot.id) {
            let _ = table.find(&slot.id);
        }
        previous = Some(slot.id);
    }
    for probe in [[0u8; 32], [0xff; 32], *blake3::hash(data).as_bytes()] {
        let _ = table.find(&probe);
    }
    if let Ok(slots) = table.read_slots() {
        for slot in slots.take(4096) {
            let _ = slot;
        }
    }
}

/// An index file's plaintext; a decoded one must encode back to the same bytes.
pub fn index_file(data: &[u8]) {
    if let Ok(file) = IndexFile::decode(data, "fuzz index") {
        assert_eq!(file.encode(), data, "index files have one encoding");
    }
}

/// A tree blob's plaintext (a listing or a split directory's part list); a decoded one must
/// re-encode to an equal one, and a part list's checks must answer any part without
/// panicking.
pub fn tree(data: &[u8]) {
    match TreeBlob::decode(data, "fuzz tree") {
        Ok(TreeBlob::Nodes(tree)) => {
            let again = tree.clone().encode().expect("a valid tree encodes");
            assert_eq!(
                Tree::decode(&again, "re-encoded").expect("re-encoded tree decodes"),
                tree
            );
            let list = PartList {
                parts: vec![
                    Part {
                        first: tree
                            .nodes
                            .first()
                            .map_or(Name(b"a".to_vec()), |n| n.name.clone()),
                        count: tree.nodes.len() as u64,
                        tree: cairn_pack::BlobId([0; 32]),
                    };
                    2
                ],
            };
            let _ = list.check_part(0, TreeBlob::Nodes(tree.clone()), "fuzz list");
            let _ = list.locate(&Name(b"m".to_vec()));
        }
        Ok(TreeBlob::Parts(list)) => {
            let again = TreeBlob::decode(&list.encode(), "re-encoded").expect("decodes");
            assert_eq!(again, TreeBlob::Parts(list.clone()));
            let _ = list.locate(&Name(b"m".to_vec()));
            let _ = list.check_part(list.parts.len() - 1, TreeBlob::Parts(list.clone()), "l");
        }
        Err(_) => {}
    }
}

/// A snapshot's plaintext.
pub fn snapshot(data: &[u8]) {
    if let Ok(snapshot) = Snapshot::decode(data, "fuzz snapshot") {
        let _ = snapshot.encode();
    }
}

/// A lock's plaintext; a decoded lock must encode back to an equal one.
pub fn lock(data: &[u8]) {
    if let Ok(info) = crate::lock::parse_lock_info(data, "fuzz lock") {
        let again = serde_json::to_vec(&info).expect("lock info serializes");
        assert_eq!(
            crate::lock::parse_lock_info(&again, "re-encoded").expect("re-encoded lock parses"),
            info
        );
    }
}

/// A pending-deletion record's plaintext; a decoded one must round-trip.
pub fn pending(data: &[u8]) {
    if let Ok(record) = PendingDeletion::decode(data, "fuzz pending") {
        let again = serde_json::to_vec(&record).expect("record serializes");
        assert_eq!(
            PendingDeletion::decode(&again, "re-encoded").expect("re-encoded record parses"),
            record
        );
    }
}

/// A config's plaintext.
pub fn config(data: &[u8]) {
    if let Ok(config) = serde_json::from_slice::<RepoConfig>(data) {
        if config.validate().is_ok() {
            config.chunker_params().expect("validated");
            config.encoder().expect("validated");
        }
    }
}

/// A drill or check record's plaintext (first byte picks which); a decoded one must
/// round-trip.
pub fn record(data: &[u8]) {
    fn round_trip<R: Record + PartialEq + std::fmt::Debug>(data: &[u8]) {
        if let Ok(record) = R::decode_file(data, "fuzz record") {
            let again = serde_json::to_vec(&record).expect("records serialize");
            assert_eq!(
                R::decode_file(&again, "re-encoded").expect("re-encoded record parses"),
                record
            );
        }
    }
    match data.split_first() {
        Some((kind, rest)) if kind % 2 == 0 => round_trip::<DrillRecord>(rest),
        Some((_, rest)) => round_trip::<CheckRecord>(rest),
        None => {}
    }
}

/// A sealed object: the first byte picks the kind, the rest is the sealed bytes.
pub fn sealed_object(data: &[u8]) {
    let Some((&kind, sealed)) = data.split_first() else {
        return;
    };
    let kind = match kind % 7 {
        0 => ObjectKind::Config,
        1 => ObjectKind::Index,
        2 => ObjectKind::Snapshot,
        3 => ObjectKind::Lock,
        4 => ObjectKind::Pending,
        5 => ObjectKind::Drill,
        _ => ObjectKind::Check,
    };
    let _ = open_object(&fuzz_keys(), kind, "fuzz object", sealed);
    // Objects bound to their name (locks) take the name into the AD.
    let _ = open_named(&fuzz_keys(), kind, "locks/maintenance", sealed);
}

/// A restic key file: parsed, and (for cheap scrypt parameters only: a key file is
/// untrusted, but the fuzzer should not spend its time in scrypt) unlocked.
pub fn restic_key_file(data: &[u8]) {
    if let Ok(file) = crate::restic::parse_key_file(data, "fuzz key") {
        if file.n <= 1 << 4 && file.r <= 8 && file.p <= 2 {
            let _ = crate::restic::unlock_key(&file, b"password", "fuzz key");
        }
    }
}

/// A restic index file's plaintext (JSON, or zstd-compressed JSON after a 2).
pub fn restic_index(data: &[u8]) {
    crate::restic::fuzz_index(data);
}

/// A restic pack's blob or file as stored: authenticated with a fixed key (a forged MAC must
/// be refused), and its plaintext decompressed and parsed as a tree.
pub fn restic_blob(data: &[u8]) {
    crate::restic::fuzz_blob(data);
}

#[cfg(test)]
mod seeds {
    use super::*;
    use crate::index::IndexPack;
    use crate::object::seal_object;
    use cairn_pack::{BlobId, BlobType, Compression, PackEntry, PackId};

    /// Writes valid seed inputs into fuzz/corpus/. Run once by hand:
    /// `cargo test -p cairn-repo write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        let entry = PackEntry {
            blob_type: BlobType::Data,
            compression: Compression::Zstd,
            offset: 0,
            stored_len: 100,
            plain_len: 300,
            id: BlobId([5; 32]),
        };
        let index = IndexFile {
            packs: vec![IndexPack {
                id: PackId([1; 32]),
                entries: vec![
                    entry,
                    PackEntry {
                        offset: 100,
                        id: BlobId([6; 32]),
                        ..entry
                    },
                ],
            }],
        };
        write("index_file", "seed-one-pack", &index.encode());
        let tree = Tree {
            nodes: vec![
                crate::tree::tests::file_node(b"a"),
                crate::tree::tests::file_node(b"\xff"),
            ],
        };
        write("tree", "seed-two-files", &tree.encode().unwrap());
        let snapshot = br#"{"time":"2026-11-29T16:13:44.885424758+00:00","tree":"0505050505050505050505050505050505050505050505050505050505050505","paths":["/srv"],"hostname":"h","tags":["daily"],"incomplete":true}"#;
        write("snapshot", "seed-minimal", snapshot);
        let config = format!(
            r#"{{"version":1,"id":"{}","chunker":{{"min":524288,"avg":1048576,"max":8388608}},"pack_size":16777216,"compression":3}}"#,
            "ab".repeat(32)
        );
        write("config", "seed-default", config.as_bytes());
        let mut sealed = vec![2u8];
        sealed
            .extend_from_slice(&seal_object(&fuzz_keys(), ObjectKind::Snapshot, snapshot).unwrap());
        write("sealed_object", "seed-snapshot", &sealed);
        let lock = br#"{"kind":"backup","hostname":"node-1","username":"velero","pid":4242,"time":"2026-11-29T19:00:00+00:00","created":"2026-11-29T19:00:00.123Z","token":"00112233445566778899aabbccddeeff"}"#;
        write("lock", "seed-backup-marker", lock);
        let pending = format!(
            r#"{{"time":"2026-11-29T19:00:00+00:00","packs":["{}"],"backups":["{}"]}}"#,
            "01".repeat(32),
            "ab".repeat(32)
        );
        write("pending", "seed-one-pack", pending.as_bytes());
        let drill = format!(
            r#"{{"snapshot":"{}","time":"2026-12-01T12:00:00Z","command":"sqlite3 t.db 'select 1'","outcome":"passed","exit_code":0,"duration_seconds":1.5,"files_restored":1,"bytes_restored":4096,"hostname":"node-1"}}"#,
            "ab".repeat(32)
        );
        write(
            "record",
            "seed-drill",
            &[&[0u8][..], drill.as_bytes()].concat(),
        );
        let check = br#"{"time":"2026-12-01T12:00:00Z","ok":true,"read_data":"none","errors":0,"warnings":1,"duration_seconds":0.25,"hostname":"node-1"}"#;
        write("record", "seed-check", &[&[1u8][..], &check[..]].concat());
    }
}
