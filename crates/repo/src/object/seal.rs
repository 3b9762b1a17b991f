//! Sealed repository objects (config, index files, snapshots, locks):
//! `seal(data_key, "cairn object v1" ‖ kind, zstd(plaintext))` (docs/format.md#sealed-objects).
//!
//! Content-addressed objects are named by the BLAKE3 of their sealed bytes, and readers check
//! the name before opening, so a file swapped for another fails even before authentication.
//! Objects that are not content-addressed (locks) bind their name into the associated data
//! instead ([`seal_named`]), so a copy under another name does not authenticate.

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

/// AD of a named object: its own prefix (never equal to a v1 AD), the kind, the name.
fn named_ad(kind: ObjectKind, name: &str) -> Vec<u8> {
    let mut ad = Vec::with_capacity(17 + name.len());
    ad.extend_from_slice(b"cairn named v1\0");
    ad.push(kind as u8);
    ad.extend_from_slice(name.as_bytes());
    ad
}

/// Seals an object bound to its name: `name` is the object's path in the repository
/// (`locks/maintenance`), and [`open_named`] fails for any other name or kind.
pub fn seal_named(
    keys: &MasterKeys,
    kind: ObjectKind,
    name: &str,
    plaintext: &[u8],
) -> Result<Bytes> {
    seal_with_ad(keys, kind, &named_ad(kind, name), plaintext)
}

/// Authenticates an object sealed by [`seal_named`] under `name`, then decrypts and
/// decompresses it.
pub fn open_named(
    keys: &MasterKeys,
    kind: ObjectKind,
    name: &str,
    sealed: &[u8],
) -> Result<Vec<u8>> {
    open_with_ad(keys, &named_ad(kind, name), name, sealed)
}

/// Compresses and seals an object's plaintext.
pub fn seal_object(keys: &MasterKeys, kind: ObjectKind, plaintext: &[u8]) -> Result<Bytes> {
    seal_with_ad(keys, kind, &ad(kind), plaintext)
}

fn seal_with_ad(keys: &MasterKeys, kind: ObjectKind, ad: &[u8], plaintext: &[u8]) -> Result<Bytes> {
    let compressed = zstd::bulk::compress(plaintext, 3)
        .map_err(|e| RepoError::InvalidInput(format!("zstd: {e}")))?;
    let sealed = seal(keys.data_key(), ad, &compressed).map_err(|source| RepoError::Pack {
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
    open_with_ad(keys, &ad(kind), name, sealed)
}

fn open_with_ad(keys: &MasterKeys, ad: &[u8], name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
    let compressed = open(keys.data_key(), ad, sealed, || name.to_string()).map_err(|source| {
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
    fn named_objects_are_bound_to_name_and_kind() {
        let sealed = seal_named(&keys(), ObjectKind::Lock, "locks/a", b"{}").unwrap();
        assert_eq!(
            open_named(&keys(), ObjectKind::Lock, "locks/a", &sealed).unwrap(),
            b"{}"
        );
        assert!(open_named(&keys(), ObjectKind::Lock, "locks/b", &sealed).is_err());
        assert!(open_named(&keys(), ObjectKind::Pending, "locks/a", &sealed).is_err());
        // Neither passes for an unnamed object of the same kind, nor the other way round.
        assert!(open_object(&keys(), ObjectKind::Lock, "locks/a", &sealed).is_err());
        let unnamed = seal_object(&keys(), ObjectKind::Lock, b"{}").unwrap();
        assert!(open_named(&keys(), ObjectKind::Lock, "", &unnamed).is_err());
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
        fn named_round_trip_and_other_names(data in prop::collection::vec(any::<u8>(), 0..500), a in "[a-z/]{0,20}", b in "[a-z/]{0,20}") {
            let sealed = seal_named(&keys(), ObjectKind::Lock, &a, &data).unwrap();
            prop_assert_eq!(open_named(&keys(), ObjectKind::Lock, &a, &sealed).unwrap(), data);
            prop_assert_eq!(open_named(&keys(), ObjectKind::Lock, &b, &sealed).is_ok(), a == b);
        }

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
