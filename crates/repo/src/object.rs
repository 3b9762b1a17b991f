//! Sealed repository objects (config, index files, snapshots, locks):
//! `seal(data_key, "cairn object v1" ‖ kind, zstd(plaintext))` (docs/format.md#sealed-objects).
//!
//! Content-addressed objects are named by the BLAKE3 of their sealed bytes, and readers check
//! the name before opening, so a file swapped for another fails even before authentication.

use std::io::Read;

use bytes::Bytes;
use cairn_pack::{open, seal, MasterKeys};

use crate::error::{RepoError, Result};

/// Largest plaintext of a sealed object: 512 MiB. Decompression stops there rather than
/// trusting any length the object declares.
pub const MAX_OBJECT_LEN: u64 = 512 << 20;

/// Which kind of object is sealed; bound into the AD so one kind cannot pass for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ObjectKind {
    /// The repository config.
    Config = 1,
    /// An index file.
    Index = 2,
    /// A snapshot.
    Snapshot = 3,
    /// A lock.
    Lock = 4,
    /// A pending-deletion record.
    Pending = 5,
    /// A restore drill's record.
    Drill = 6,
    /// A check run's record.
    Check = 7,
}

fn ad(kind: ObjectKind) -> [u8; 16] {
    let mut ad = [0u8; 16];
    ad[..15].copy_from_slice(b"cairn object v1");
    ad[15] = kind as u8;
    ad
}

/// Compresses and seals an object's plaintext.
pub fn seal_object(keys: &MasterKeys, kind: ObjectKind, plaintext: &[u8]) -> Result<Bytes> {
    let compressed = zstd::bulk::compress(plaintext, 3)
        .map_err(|e| RepoError::InvalidInput(format!("zstd: {e}")))?;
    let sealed =
        seal(keys.data_key(), &ad(kind), &compressed).map_err(|source| RepoError::Pack {
            object: format!("new {kind:?} object"),
            source,
        })?;
    Ok(Bytes::from(sealed))
}

/// Authenticates, decrypts and decompresses an object. `name` is used in errors.
pub fn open_object(
    keys: &MasterKeys,
    kind: ObjectKind,
    name: &str,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let compressed =
        open(keys.data_key(), &ad(kind), sealed, || name.to_string()).map_err(|source| {
            RepoError::Pack {
                object: name.to_string(),
                source,
            }
        })?;
    let mut plain = Vec::new();
    let decoder = zstd::stream::read::Decoder::new(&compressed[..])
        .map_err(|e| RepoError::corrupt(name, e.to_string()))?;
    decoder
        .take(MAX_OBJECT_LEN + 1)
        .read_to_end(&mut plain)
        .map_err(|e| RepoError::corrupt(name, format!("decompressing: {e}")))?;
    if plain.len() as u64 > MAX_OBJECT_LEN {
        return Err(RepoError::corrupt(
            name,
            "decompresses to more than 512 MiB",
        ));
    }
    Ok(plain)
}

/// The content address of sealed bytes.
pub fn content_id(sealed: &[u8]) -> String {
    blake3::hash(sealed).to_hex().to_string()
}

/// Checks that downloaded bytes match the name they were stored under.
pub fn check_content_id(object: &str, name: &str, sealed: &[u8]) -> Result<()> {
    let actual = content_id(sealed);
    if actual != name {
        return Err(RepoError::corrupt(
            object,
            format!("content hashes to {actual}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> MasterKeys {
        MasterKeys::from_parts([1; 32], [2; 32], [3; 32])
    }

    #[test]
    fn kinds_do_not_mix() {
        let sealed = seal_object(&keys(), ObjectKind::Snapshot, b"{}").unwrap();
        assert_eq!(
            open_object(&keys(), ObjectKind::Snapshot, "s", &sealed).unwrap(),
            b"{}"
        );
        assert!(open_object(&keys(), ObjectKind::Index, "s", &sealed).is_err());
    }

    #[test]
    fn content_id_check() {
        let sealed = seal_object(&keys(), ObjectKind::Index, b"x").unwrap();
        let id = content_id(&sealed);
        check_content_id("index", &id, &sealed).unwrap();
        assert!(check_content_id("index", &"0".repeat(64), &sealed).is_err());
    }

    proptest! {
        #[test]
        fn round_trip_and_flip(data in prop::collection::vec(any::<u8>(), 0..2000), flip in any::<prop::sample::Index>()) {
            let sealed = seal_object(&keys(), ObjectKind::Config, &data).unwrap();
            prop_assert_eq!(open_object(&keys(), ObjectKind::Config, "c", &sealed).unwrap(), data);
            let mut bad = sealed.to_vec();
            let i = flip.index(bad.len());
            bad[i] ^= 0x80;
            prop_assert!(open_object(&keys(), ObjectKind::Config, "c", &bad).is_err());
        }
    }
}
