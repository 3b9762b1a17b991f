//! docs/format.md as a second implementation would check it: known-answer vectors committed
//! in docs/vectors.json, each decoded by cairn and, where the spec gives the construction,
//! recomputed from the spec's text with the primitive crates alone (blake3, XChaCha20-Poly1305,
//! zstd). A change to the format fails here until the vectors are regenerated on purpose:
//!
//! ```text
//! CAIRN_WRITE_VECTORS=1 cargo test --workspace --test format_vectors
//! ```

use cairn_chunker::{Chunker, ChunkerParams, ChunkerSecret, GEAR_CONTEXT};
use cairn_pack::{
    decode_blob, BlobEncoder, BlobId, BlobType, Compression, KdfParams, KeyFile, MasterKeys,
    PackReader, PackWriter, MIN_PACK_SIZE,
};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

const DATA_KEY: [u8; 32] = [0x11; 32];
const BLOB_ID_KEY: [u8; 32] = [0x22; 32];
const CHUNKER_SECRET: [u8; 32] = [0x33; 32];
const PASSWORD: &str = "vector password";
const PLAINTEXT: &[u8] = b"hello, cairn";
/// Chunker parameters of the cut-point vector: min, avg, max.
const CHUNK_PARAMS: [usize; 3] = [2048, 8192, 32768];
const CHUNK_INPUT_LEN: usize = 256 * 1024;

/// The committed vectors (hex for bytes).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Vectors {
    note: String,
    data_key: String,
    blob_id_key: String,
    chunker_secret: String,
    gear_context: String,
    /// gear[0..4] and gear[255], as u64 in hex.
    gear: Vec<String>,
    chunk_params: [usize; 3],
    /// Lengths of the chunks of the xorshift input (see `chunk_input`).
    chunk_lengths: Vec<usize>,
    blob_plaintext: String,
    blob_id: String,
    blob_ad: String,
    /// A data blob stored uncompressed (compression 0).
    sealed_blob: String,
    /// "ab" x 1000, stored compressed (compression 1), and its id.
    compressed_blob_id: String,
    sealed_compressed_blob: String,
    /// A pack holding the two blobs above, and the ids its header lists in order.
    pack: String,
    pack_blob_ids: Vec<String>,
    key_password: String,
    /// A key file for the three keys above under `key_password` (Argon2id 19 MiB x 2).
    key_file: String,
}

fn keys() -> MasterKeys {
    MasterKeys::from_parts(DATA_KEY, BLOB_ID_KEY, CHUNKER_SECRET)
}

/// The cut-point input: an xorshift64 stream from 0x9e3779b97f4a7c15, one low byte per step
/// (`x ^= x << 13; x ^= x >> 7; x ^= x << 17`).
fn chunk_input() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..CHUNK_INPUT_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn compressible() -> Vec<u8> {
    b"ab".repeat(1000)
}

/// The blob AD exactly as docs/format.md#blobs states it.
fn spec_blob_ad(blob_type: u8, compression: u8, plain_len: u32, id: &[u8]) -> Vec<u8> {
    let mut ad = b"cairn blob v1".to_vec();
    ad.push(blob_type);
    ad.push(compression);
    ad.extend_from_slice(&plain_len.to_le_bytes());
    ad.extend_from_slice(id);
    ad
}

/// The gear table's first words as docs/format.md#chunking states them.
fn spec_gear(secret: &[u8; 32]) -> Vec<u64> {
    let key = blake3::derive_key("cairn 2026-11 chunker gear table v1", secret);
    let mut bytes = [0u8; 2048];
    blake3::Hasher::new_keyed(&key)
        .finalize_xof()
        .fill(&mut bytes);
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .collect()
}

fn generate() -> Vectors {
    let keys = keys();
    let gear = spec_gear(&CHUNKER_SECRET);
    let [min, avg, max] = CHUNK_PARAMS;
    let chunker = Chunker::new(
        ChunkerParams::new(min, avg, max).unwrap(),
        &ChunkerSecret::from_bytes(CHUNKER_SECRET),
    );
    let input = chunk_input();
    let chunk_lengths = chunker.chunks(&input).map(|c| c.length).collect();
    let plain = BlobEncoder::new(None)
        .unwrap()
        .encode(&keys, BlobType::Data, PLAINTEXT)
        .unwrap();
    let packed = BlobEncoder::new(Some(3))
        .unwrap()
        .encode(&keys, BlobType::Data, &compressible())
        .unwrap();
    assert_eq!(packed.compression, Compression::Zstd);
    let mut writer = PackWriter::new(MIN_PACK_SIZE).unwrap();
    writer.add(plain.clone()).unwrap();
    writer.add(packed.clone()).unwrap();
    let pack = writer.finish(&keys).unwrap();
    let key_file = KeyFile::create(
        &keys,
        PASSWORD.as_bytes(),
        KdfParams::new(19456, 2, 1).unwrap(),
        b"{}",
    )
    .unwrap();
    Vectors {
        note: "docs/format.md test vectors; checked by crates/repo/tests/format_vectors.rs".into(),
        data_key: hex::encode(DATA_KEY),
        blob_id_key: hex::encode(BLOB_ID_KEY),
        chunker_secret: hex::encode(CHUNKER_SECRET),
        gear_context: GEAR_CONTEXT.into(),
        gear: [gear[0], gear[1], gear[2], gear[3], gear[255]]
            .iter()
            .map(|g| format!("{g:016x}"))
            .collect(),
        chunk_params: CHUNK_PARAMS,
        chunk_lengths,
        blob_plaintext: hex::encode(PLAINTEXT),
        blob_id: plain.id.to_hex(),
        blob_ad: hex::encode(spec_blob_ad(
            0,
            0,
            PLAINTEXT.len() as u32,
            plain.id.as_bytes(),
        )),
        sealed_blob: hex::encode(&plain.sealed),
        compressed_blob_id: packed.id.to_hex(),
        sealed_compressed_blob: hex::encode(&packed.sealed),
        pack: hex::encode(pack.to_vec()),
        pack_blob_ids: pack.entries.iter().map(|e| e.id.to_hex()).collect(),
        key_password: PASSWORD.into(),
        key_file: hex::encode(key_file.to_bytes()),
    }
}

fn vectors_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/vectors.json")
}

fn load() -> Vectors {
    if std::env::var_os("CAIRN_WRITE_VECTORS").is_some() {
        let text = serde_json::to_string_pretty(&generate()).unwrap();
        std::fs::write(vectors_path(), text + "\n").unwrap();
    }
    let text = std::fs::read_to_string(vectors_path()).expect("docs/vectors.json is committed");
    serde_json::from_str(&text).expect("docs/vectors.json parses")
}

fn unhex(text: &str) -> Vec<u8> {
    hex::decode(text).expect("hex in docs/vectors.json")
}

/// Opens `seal(data_key, ad, payload)` as docs/format.md#sealing states it.
fn spec_open(sealed: &[u8], ad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&DATA_KEY.into());
    let (nonce, ciphertext) = sealed.split_at(24);
    cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .expect("the committed blob authenticates under the spec's AD")
}

#[test]
fn keys_gear_table_and_cut_points() {
    let v = load();
    assert_eq!(unhex(&v.data_key), DATA_KEY);
    assert_eq!(unhex(&v.blob_id_key), BLOB_ID_KEY);
    assert_eq!(unhex(&v.chunker_secret), CHUNKER_SECRET);
    assert_eq!(v.gear_context, GEAR_CONTEXT);
    let gear = spec_gear(&CHUNKER_SECRET);
    let expected: Vec<String> = [gear[0], gear[1], gear[2], gear[3], gear[255]]
        .iter()
        .map(|g| format!("{g:016x}"))
        .collect();
    assert_eq!(v.gear, expected, "gear table per the spec's derivation");
    // Cut points: cairn's chunker on the committed input gives the committed lengths.
    let [min, avg, max] = v.chunk_params;
    let chunker = Chunker::new(
        ChunkerParams::new(min, avg, max).unwrap(),
        &ChunkerSecret::from_bytes(CHUNKER_SECRET),
    );
    let lengths: Vec<usize> = chunker.chunks(&chunk_input()).map(|c| c.length).collect();
    assert_eq!(lengths, v.chunk_lengths);
    assert_eq!(lengths.iter().sum::<usize>(), CHUNK_INPUT_LEN);
    assert!(lengths.len() > 8, "the vector exercises several cuts");
}

#[test]
fn blob_id_ad_and_sealed_blobs() {
    let v = load();
    let plaintext = unhex(&v.blob_plaintext);
    let id = blake3::keyed_hash(&BLOB_ID_KEY, &plaintext);
    assert_eq!(
        id.to_hex().as_str(),
        v.blob_id,
        "blob id = BLAKE3_keyed(blob_id_key, plaintext)"
    );
    let ad = spec_blob_ad(0, 0, plaintext.len() as u32, id.as_bytes());
    assert_eq!(hex::encode(&ad), v.blob_ad);
    assert_eq!(ad.len(), 51);
    let sealed = unhex(&v.sealed_blob);
    assert_eq!(sealed.len(), plaintext.len() + 40, "nonce 24 + tag 16");
    assert_eq!(spec_open(&sealed, &ad), plaintext);

    // The compressed blob: payload = zstd(plaintext), AD with compression 1.
    let big = compressible();
    let big_id = blake3::keyed_hash(&BLOB_ID_KEY, &big);
    assert_eq!(big_id.to_hex().as_str(), v.compressed_blob_id);
    let sealed_big = unhex(&v.sealed_compressed_blob);
    let payload = spec_open(
        &sealed_big,
        &spec_blob_ad(0, 1, big.len() as u32, big_id.as_bytes()),
    );
    assert_eq!(zstd::decode_all(&payload[..]).unwrap(), big);
    // Under another type or compression flag the same bytes do not authenticate.
    let cipher = XChaCha20Poly1305::new(&DATA_KEY.into());
    let wrong = spec_blob_ad(1, 0, plaintext.len() as u32, id.as_bytes());
    let (nonce, body) = sealed.split_at(24);
    assert!(cipher
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &wrong
            }
        )
        .is_err());
}

#[test]
fn pack_and_header_decode() {
    let v = load();
    let keys = keys();
    let pack = unhex(&v.pack);
    let entries = PackReader::from_bytes(&keys, &pack).expect("the committed pack's header opens");
    let ids: Vec<String> = entries.iter().map(|e| e.id.to_hex()).collect();
    assert_eq!(ids, v.pack_blob_ids);
    assert_eq!(ids, [v.blob_id.clone(), v.compressed_blob_id.clone()]);
    let plaintexts = [unhex(&v.blob_plaintext), compressible()];
    for (entry, plaintext) in entries.iter().zip(plaintexts) {
        let sealed = PackReader::blob_bytes(&pack, entry).unwrap();
        assert_eq!(decode_blob(&keys, entry, sealed).unwrap(), plaintext);
    }
    // The first blob starts the pack; blobs are stored back to back.
    assert_eq!(entries[0].offset, 0);
    assert_eq!(entries[1].offset, entries[0].stored_len);
    assert_eq!(
        v.blob_id.parse::<BlobId>().unwrap(),
        keys.blob_id(&unhex(&v.blob_plaintext))
    );
}

#[test]
fn key_file_unlocks_to_the_keys() {
    let v = load();
    let file = KeyFile::parse(&unhex(&v.key_file)).expect("the committed key file parses");
    assert_eq!(file.params().memory_kib(), 19456);
    assert_eq!(file.params().time_cost(), 2);
    let unlocked = file
        .unlock(v.key_password.as_bytes())
        .expect("the password opens it");
    assert_eq!(unlocked.data_key(), &DATA_KEY);
    assert_eq!(unlocked.chunker_secret(), &CHUNKER_SECRET);
    assert_eq!(unlocked.blob_id(PLAINTEXT).to_hex(), v.blob_id);
    assert!(file.unlock(b"another password").is_err());
}
