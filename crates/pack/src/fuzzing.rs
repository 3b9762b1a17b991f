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

/// One blob: the first 6 bytes choose type, compression and plaintext length; the rest is
/// the sealed blob. The id is the fuzz keys' id of the empty string unless it decodes.
pub fn blob(data: &[u8]) {
    if data.len() < 6 {
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
        stored_len: (data.len() - 6) as u32,
        plain_len: u32::from_le_bytes(data[2..6].try_into().expect("4 bytes")),
        id: BlobId(*blake3::hash(&data[6..]).as_bytes()),
    };
    let _ = decode_blob(&keys, &entry, &data[6..]);
    // The post-authentication path, which random input cannot reach through the AEAD.
    let _ = crate::blob::decompress_exact(
        entry.compression,
        entry.plain_len.min(1 << 20),
        data[6..].to_vec(),
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
