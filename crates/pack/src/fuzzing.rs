//! Entry points shared by the cargo-fuzz targets (fuzz/) and the corpus replay tests.
//!
//! Each takes arbitrary bytes and must return without panicking, whatever they are.

use crate::{
    decode_blob, parse_header_plaintext, BlobId, BlobType, Compression, KeyFile, MasterKeys,
    PackEntry, PackReader,
};

/// The fixed key set fuzz inputs are sealed with, so seeds can be valid packs.
pub fn fuzz_keys() -> MasterKeys {
    MasterKeys::from_parts([0x11; 32], [0x22; 32], [0x33; 32])
}

/// A whole pack file: locate and authenticate the header, then decode every blob.
pub fn pack_file(data: &[u8]) {
    let keys = fuzz_keys();
    if let Ok(entries) = PackReader::from_bytes(&keys, data) {
        for entry in &entries {
            if let Ok(bytes) = PackReader::blob_bytes(data, entry) {
                let _ = decode_blob(&keys, entry, bytes);
            }
        }
    }
}

/// A header plaintext as if it had authenticated: the first 4 bytes give the data length.
pub fn pack_header_plaintext(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let data_len = u32::from_le_bytes(data[..4].try_into().expect("4 bytes")) as u64;
    let _ = parse_header_plaintext(&data[4..], data_len);
}

/// One blob: byte 0 chooses the type, byte 1 the compression, bytes 2..6 the plaintext
/// length and bytes 6..38 the id; the rest is the sealed blob.
pub fn blob(data: &[u8]) {
    if data.len() < 38 {
        return;
    }
    let keys = fuzz_keys();
    let entry = PackEntry {
        blob_type: if data[0] & 1 == 0 {
            BlobType::Data
        } else {
            BlobType::Tree
        },
        compression: if data[1] & 1 == 0 {
            Compression::None
        } else {
            Compression::Zstd
        },
        offset: 0,
        stored_len: (data.len() - 38) as u32,
        plain_len: u32::from_le_bytes(data[2..6].try_into().expect("4 bytes")),
        id: BlobId(data[6..38].try_into().expect("32 bytes")),
    };
    let _ = decode_blob(&keys, &entry, &data[38..]);
    // The post-authentication path, which random input cannot reach through the AEAD.
    let _ = crate::blob::decompress_exact(
        entry.compression,
        entry.plain_len.min(1 << 20),
        data[38..].to_vec(),
        &entry.id,
    );
}

/// A key file: parse it and, when its costs are small, try to unlock it.
pub fn key_file(data: &[u8]) {
    if let Ok(key_file) = KeyFile::parse(data) {
        let params = key_file.params();
        if params.memory_kib() <= 64 && params.time_cost() <= 2 {
            if let Ok(keys) = key_file.unlock(b"fuzz") {
                let _ = key_file.info(&keys);
            }
        }
        let _ = key_file.to_bytes();
    }
}

#[cfg(test)]
mod seeds {
    use super::*;
    use crate::{BlobEncoder, KdfParams, PackWriter};

    /// Writes valid seed inputs into fuzz/corpus/. Run once by hand:
    /// `cargo test -p cairn-pack write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore]
    fn write_fuzz_seeds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
        let keys = fuzz_keys();
        let write = |target: &str, name: &str, bytes: &[u8]| {
            let dir = root.join(target);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(name), bytes).unwrap();
        };
        let encoder = BlobEncoder::new(Some(3)).unwrap();
        let blobs = [
            (
                BlobType::Data,
                b"compressible compressible compressible compressible".to_vec(),
            ),
            (BlobType::Tree, b"{}".to_vec()),
            (BlobType::Data, (0u8..=255).collect::<Vec<u8>>()),
        ];
        let mut writer = PackWriter::new(1 << 20).unwrap();
        for (i, (t, plain)) in blobs.iter().enumerate() {
            let encoded = encoder.encode(&keys, *t, plain).unwrap();
            let mut seed = vec![t.to_byte(), encoded.compression.to_byte()];
            seed.extend_from_slice(&encoded.plain_len.to_le_bytes());
            seed.extend_from_slice(encoded.id.as_bytes());
            seed.extend_from_slice(&encoded.sealed);
            write("blob", &format!("seed-{i}"), &seed);
            writer.add(encoded).unwrap();
        }
        let pack = writer.finish(&keys).unwrap();
        write("pack_file", "seed-3-blobs", &pack.to_vec());
        let empty = PackWriter::new(1 << 20).unwrap().finish(&keys).unwrap();
        write("pack_file", "seed-empty", &empty.to_vec());
        let data_len: u64 = pack.entries.iter().map(|e| e.stored_len as u64).sum();
        let mut header = (data_len as u32).to_le_bytes().to_vec();
        header.extend_from_slice(&crate::header::encode_header(&pack.entries));
        write("pack_header", "seed-3-entries", &header);
        let key_file = KeyFile::create(
            &keys,
            b"fuzz",
            KdfParams::new(64, 1, 1).unwrap(),
            b"{\"host\":\"fuzz\"}",
        )
        .unwrap();
        write("key_file", "seed-valid", &key_file.to_bytes());
    }
}
