//! Blob encoding: zstd, then XChaCha20-Poly1305 bound to the blob's id and type.
//!
//! Stored blob = `nonce (24) ‖ ciphertext(payload) ‖ tag (16)` where payload is the zstd frame
//! or, when zstd does not shrink the plaintext (or compression is off), the plaintext itself.
//! AD = `"cairn blob v1" ‖ type ‖ compression ‖ plaintext length (u32 LE) ‖ id`
//! (docs/format.md#blobs), so a blob presented under another id, type, compression flag or
//! length fails authentication before anything is decompressed.

use std::cell::RefCell;
use std::io::Cursor;

use crate::crypto::{open, seal_in_place, NONCE_LEN, SEAL_OVERHEAD, TAG_LEN};
use crate::{BlobId, BlobType, MasterKeys, PackEntry, PackError};

/// Largest plaintext a blob may have (1 GiB). Decoding allocates at most this much, and
/// only after the length was authenticated.
pub const MAX_BLOB_LEN: u32 = 1 << 30;

const AD_PREFIX: &[u8] = b"cairn blob v1";
const AD_LEN: usize = 13 + 1 + 1 + 4 + 32;

/// How a blob's payload is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Compression {
    /// The payload is the plaintext.
    None = 0,
    /// The payload is one zstd frame.
    Zstd = 1,
}

impl Compression {
    /// The on-disk byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses the on-disk byte.
    pub fn from_byte(byte: u8) -> Option<Compression> {
        match byte {
            0 => Some(Compression::None),
            1 => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// A blob ready to go into a pack: its id, how it is stored, and the sealed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBlob {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Keyed hash of the plaintext.
    pub id: BlobId,
    /// Whether the payload is compressed.
    pub compression: Compression,
    /// Length of the plaintext.
    pub plain_len: u32,
    /// `nonce ‖ ciphertext ‖ tag`.
    pub sealed: bytes::Bytes,
}

/// Compresses and seals blobs at one zstd level. Cheap to copy; thread-safe (each thread
/// keeps its own zstd context).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobEncoder {
    level: Option<i32>,
}

impl BlobEncoder {
    /// `Some(level)` compresses with zstd at `level` (1 ..= 22); `None` stores plaintext.
    pub fn new(level: Option<i32>) -> Result<Self, PackError> {
        if let Some(level) = level {
            if !(1..=22).contains(&level) {
                return Err(PackError::InvalidParameter(format!(
                    "zstd level {level} is outside 1..=22"
                )));
            }
        }
        Ok(BlobEncoder { level })
    }

    /// The configured zstd level, if compressing.
    pub fn level(&self) -> Option<i32> {
        self.level
    }

    /// Computes the id and encodes.
    pub fn encode(
        &self,
        keys: &MasterKeys,
        blob_type: BlobType,
        plaintext: &[u8],
    ) -> Result<EncodedBlob, PackError> {
        let id = keys.blob_id(plaintext);
        self.encode_with_id(keys, blob_type, id, plaintext)
    }

    /// Encodes under an id the caller already computed (for dedup lookups before encoding).
    /// The id must be `keys.blob_id(plaintext)`; decoding checks it.
    pub fn encode_with_id(
        &self,
        keys: &MasterKeys,
        blob_type: BlobType,
        id: BlobId,
        plaintext: &[u8],
    ) -> Result<EncodedBlob, PackError> {
        if plaintext.len() > MAX_BLOB_LEN as usize {
            return Err(PackError::TooLarge {
                what: "blob",
                size: plaintext.len() as u64,
                limit: MAX_BLOB_LEN as u64,
            });
        }
        let plain_len = plaintext.len() as u32;
        let mut out = Vec::with_capacity(
            NONCE_LEN + zstd::zstd_safe::compress_bound(plaintext.len()) + TAG_LEN,
        );
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        let mut compression = Compression::None;
        if let Some(level) = self.level {
            if compress_after_nonce(level, plaintext, &mut out).is_ok()
                && out.len() - NONCE_LEN < plaintext.len()
            {
                compression = Compression::Zstd;
            } else {
                out.truncate(NONCE_LEN);
            }
        }
        if compression == Compression::None {
            out.extend_from_slice(plaintext);
        }
        seal_in_place(
            keys.data_key(),
            &blob_ad(blob_type, compression, plain_len, &id),
            &mut out,
        )?;
        // The buffer was sized for the worst case (incompressible input plus zstd's bound):
        // a pack of small blobs holds ~100 000 of them until it is uploaded, and each would
        // keep that slack (a 100-byte file's blob ~1.5x its size). A slack under an eighth
        // (incompressible large chunks) is not worth a reallocation.
        let slack = out.capacity() - out.len();
        if slack > 32 && slack > out.len() / 8 {
            out.shrink_to_fit();
        }
        Ok(EncodedBlob {
            blob_type,
            id,
            compression,
            plain_len,
            sealed: out.into(),
        })
    }
}

fn blob_ad(
    blob_type: BlobType,
    compression: Compression,
    plain_len: u32,
    id: &BlobId,
) -> [u8; AD_LEN] {
    let mut ad = [0u8; AD_LEN];
    ad[..13].copy_from_slice(AD_PREFIX);
    ad[13] = blob_type.to_byte();
    ad[14] = compression.to_byte();
    ad[15..19].copy_from_slice(&plain_len.to_le_bytes());
    ad[19..].copy_from_slice(id.as_bytes());
    ad
}

thread_local! {
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Appends a zstd frame of `plaintext` to `out` (after the nonce room), reusing this thread's
/// context: creating one per blob costs more than compressing a small blob.
fn compress_after_nonce(level: i32, plaintext: &[u8], out: &mut Vec<u8>) -> std::io::Result<()> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, compressor) = slot.as_mut().expect("set above");
        let mut cursor = Cursor::new(std::mem::take(out));
        cursor.set_position(NONCE_LEN as u64);
        let result = compressor.compress_to_buffer(plaintext, &mut cursor);
        *out = cursor.into_inner();
        result.map(|_| ())
    })
}

/// Decompresses an authenticated payload to exactly `plain_len` bytes.
pub(crate) fn decompress_exact(
    compression: Compression,
    plain_len: u32,
    payload: Vec<u8>,
    id: &BlobId,
) -> Result<Vec<u8>, PackError> {
    let fail = |reason: String| PackError::Decompress { id: *id, reason };
    match compression {
        Compression::None => {
            if payload.len() != plain_len as usize {
                return Err(fail(format!(
                    "stored {} bytes, expected {plain_len}",
                    payload.len()
                )));
            }
            Ok(payload)
        }
        Compression::Zstd => {
            if plain_len > MAX_BLOB_LEN {
                return Err(fail(format!(
                    "plaintext length {plain_len} exceeds the limit"
                )));
            }
            DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                if slot.is_none() {
                    *slot = Some(zstd::bulk::Decompressor::new().map_err(|e| fail(e.to_string()))?);
                }
                let decompressor = slot.as_mut().expect("set above");
                // Capacity bounds the output: zstd fails rather than grow past it.
                let mut plain = Vec::with_capacity(plain_len as usize);
                let n = decompressor
                    .decompress_to_buffer(&payload, &mut plain)
                    .map_err(|e| fail(e.to_string()))?;
                if n != plain_len as usize {
                    return Err(fail(format!(
                        "decompressed to {n} bytes, expected {plain_len}"
                    )));
                }
                Ok(plain)
            })
        }
    }
}

/// Authenticates, decrypts, decompresses and id-checks one stored blob.
///
/// # Errors
/// [`PackError::Malformed`] if `sealed` has the wrong length for `entry`;
/// [`PackError::Authentication`] if the bytes or the entry were altered;
/// [`PackError::Decompress`], [`PackError::IdMismatch`] for a writer bug or a key compromise.
pub fn decode_blob(
    keys: &MasterKeys,
    entry: &PackEntry,
    sealed: &[u8],
) -> Result<Vec<u8>, PackError> {
    if sealed.len() != entry.stored_len as usize || sealed.len() < SEAL_OVERHEAD {
        return Err(PackError::Malformed {
            what: "blob",
            reason: format!(
                "{} {} has {} stored bytes, the pack header says {}",
                entry.blob_type,
                entry.id,
                sealed.len(),
                entry.stored_len
            ),
        });
    }
    let ad = blob_ad(
        entry.blob_type,
        entry.compression,
        entry.plain_len,
        &entry.id,
    );
    let payload = open(keys.data_key(), &ad, sealed, || {
        format!("{} blob {}", entry.blob_type, entry.id)
    })?;
    let plain = decompress_exact(entry.compression, entry.plain_len, payload, &entry.id)?;
    let actual = keys.blob_id(&plain);
    if actual != entry.id {
        return Err(PackError::IdMismatch {
            blob_type: entry.blob_type,
            expected: entry.id,
            actual,
        });
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> MasterKeys {
        MasterKeys::from_parts([1; 32], [2; 32], [3; 32])
    }

    fn entry_for(blob: &EncodedBlob) -> PackEntry {
        PackEntry {
            blob_type: blob.blob_type,
            compression: blob.compression,
            offset: 0,
            stored_len: blob.sealed.len() as u32,
            plain_len: blob.plain_len,
            id: blob.id,
        }
    }

    #[test]
    fn compressible_data_is_compressed_and_random_is_raw() {
        let enc = BlobEncoder::new(Some(3)).unwrap();
        let text = b"hello hello hello hello hello hello hello hello".repeat(100);
        let blob = enc.encode(&keys(), BlobType::Data, &text).unwrap();
        assert_eq!(blob.compression, Compression::Zstd);
        assert!(blob.sealed.len() < text.len() / 10);
        let mut random = vec![0u8; 4096];
        crate::crypto::random_bytes(&mut random).unwrap();
        let blob = enc.encode(&keys(), BlobType::Data, &random).unwrap();
        assert_eq!(blob.compression, Compression::None);
        assert_eq!(blob.sealed.len(), random.len() + SEAL_OVERHEAD);
        assert_eq!(
            decode_blob(&keys(), &entry_for(&blob), &blob.sealed).unwrap(),
            random
        );
    }

    #[test]
    fn relabelled_or_reassigned_blob_fails() {
        let enc = BlobEncoder::new(Some(3)).unwrap();
        let blob = enc
            .encode(&keys(), BlobType::Data, b"some file content")
            .unwrap();
        let good = entry_for(&blob);
        let as_tree = PackEntry {
            blob_type: BlobType::Tree,
            ..good
        };
        assert!(matches!(
            decode_blob(&keys(), &as_tree, &blob.sealed),
            Err(PackError::Authentication { .. })
        ));
        let other_id = PackEntry {
            id: BlobId([9; 32]),
            ..good
        };
        assert!(matches!(
            decode_blob(&keys(), &other_id, &blob.sealed),
            Err(PackError::Authentication { .. })
        ));
        let other_len = PackEntry {
            plain_len: good.plain_len + 1,
            ..good
        };
        assert!(matches!(
            decode_blob(&keys(), &other_len, &blob.sealed),
            Err(PackError::Authentication { .. })
        ));
        let other_keys = MasterKeys::from_parts([4; 32], [2; 32], [3; 32]);
        assert!(matches!(
            decode_blob(&other_keys, &good, &blob.sealed),
            Err(PackError::Authentication { .. })
        ));
    }

    #[test]
    fn wrong_id_from_encode_with_id_is_caught_on_decode() {
        let enc = BlobEncoder::new(None).unwrap();
        let blob = enc
            .encode_with_id(&keys(), BlobType::Data, BlobId([5; 32]), b"x")
            .unwrap();
        assert!(matches!(
            decode_blob(&keys(), &entry_for(&blob), &blob.sealed),
            Err(PackError::IdMismatch { .. })
        ));
    }

    #[test]
    fn levels_are_validated() {
        assert!(BlobEncoder::new(Some(0)).is_err());
        assert!(BlobEncoder::new(Some(23)).is_err());
        assert!(BlobEncoder::new(Some(19)).is_ok());
    }

    #[test]
    fn hostile_zstd_cannot_exceed_declared_length() {
        let big = vec![0u8; 1 << 20];
        let frame = zstd::bulk::compress(&big, 3).unwrap();
        let err = decompress_exact(Compression::Zstd, 1000, frame, &BlobId([0; 32])).unwrap_err();
        assert!(matches!(err, PackError::Decompress { .. }));
    }

    proptest! {
        #[test]
        fn round_trip(data in prop::collection::vec(any::<u8>(), 0..5000), repeat in 1usize..4, level in prop::option::of(1i32..6), tree in any::<bool>()) {
            let data = data.repeat(repeat);
            let t = if tree { BlobType::Tree } else { BlobType::Data };
            let blob = BlobEncoder::new(level).unwrap().encode(&keys(), t, &data).unwrap();
            prop_assert_eq!(blob.id, keys().blob_id(&data));
            prop_assert_eq!(decode_blob(&keys(), &entry_for(&blob), &blob.sealed).unwrap(), data);
        }
    }
}
