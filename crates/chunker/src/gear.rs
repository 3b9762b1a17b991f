//! Gear tables: the canonical FastCDC table, or one derived from a repository secret.
//!
//! Why keyed: with a public gear table, the sizes of the chunks of a known file are a
//! fingerprint visible in pack headers' lengths to anyone who can see the stored sizes. A
//! 64-bit XOR seed (what `fastcdc` offers) leaves the table's structure intact and can be
//! brute-forced from a few known chunk sizes; a table of 256 independent pseudo-random words
//! drawn from a 256-bit secret cannot.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// BLAKE3 `derive_key` context for the gear table. Changing it changes every cut point:
/// it is part of the on-disk format (docs/format.md#chunking).
pub const GEAR_CONTEXT: &str = "cairn 2026-11 chunker gear table v1";

/// A repository's 32-byte chunker secret. Zeroized on drop; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChunkerSecret([u8; 32]);

impl ChunkerSecret {
    /// Wraps raw secret bytes (normally from the repository's master key set).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        ChunkerSecret(bytes)
    }

    /// The raw bytes, for key files and tests.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for ChunkerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkerSecret(..)")
    }
}

/// A gear table and its left-shifted twin, as `fastcdc::v2020::cut_gear` takes them.
///
/// The table is secret-derived, so it is wiped on drop like the secret itself.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct GearTable {
    gear: Box<[u64; 256]>,
    gear_ls: Box<[u64; 256]>,
}

impl GearTable {
    /// The table `fastcdc::v2020::FastCDC` uses (seed 0). For tests and interoperability only:
    /// repositories always use [`GearTable::keyed`].
    pub fn canonical() -> Self {
        let (gear, gear_ls) = fastcdc::v2020::get_gear_with_seed(0);
        let mut table = GearTable {
            gear: Box::new([0; 256]),
            gear_ls: Box::new([0; 256]),
        };
        table.gear.copy_from_slice(&gear);
        table.gear_ls.copy_from_slice(&gear_ls);
        table
    }

    /// Derives the table from a secret: 2048 bytes of BLAKE3 XOF output in `derive_key` mode
    /// under [`GEAR_CONTEXT`], read as 256 little-endian `u64`; `gear_ls[i] = gear[i] << 1`.
    pub fn keyed(secret: &ChunkerSecret) -> Self {
        let key = blake3::derive_key(GEAR_CONTEXT, secret.as_bytes());
        let mut stream = blake3::Hasher::new_keyed(&key).finalize_xof();
        let mut bytes = [0u8; 256 * 8];
        stream.fill(&mut bytes);
        let mut table = GearTable {
            gear: Box::new([0; 256]),
            gear_ls: Box::new([0; 256]),
        };
        for (i, word) in bytes.chunks_exact(8).enumerate() {
            let value = u64::from_le_bytes(word.try_into().expect("chunks_exact(8)"));
            table.gear[i] = value;
            table.gear_ls[i] = value << 1;
        }
        bytes.zeroize();
        table
    }

    pub(crate) fn gear(&self) -> &[u64; 256] {
        &self.gear
    }

    pub(crate) fn gear_ls(&self) -> &[u64; 256] {
        &self.gear_ls
    }
}

impl std::fmt::Debug for GearTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GearTable(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_matches_fastcdc_shift_rule() {
        let t = GearTable::canonical();
        for i in 0..256 {
            assert_eq!(t.gear_ls()[i], t.gear()[i] << 1);
        }
    }

    #[test]
    fn keyed_tables_differ_per_secret_and_are_deterministic() {
        let a = GearTable::keyed(&ChunkerSecret::from_bytes([1; 32]));
        let a2 = GearTable::keyed(&ChunkerSecret::from_bytes([1; 32]));
        let b = GearTable::keyed(&ChunkerSecret::from_bytes([2; 32]));
        assert_eq!(a.gear(), a2.gear());
        let same = a
            .gear()
            .iter()
            .zip(b.gear().iter())
            .filter(|(x, y)| x == y)
            .count();
        assert_eq!(same, 0);
        assert_ne!(a.gear(), GearTable::canonical().gear());
        for i in 0..256 {
            assert_eq!(a.gear_ls()[i], a.gear()[i] << 1);
        }
    }

    #[test]
    fn debug_never_prints_secret_material() {
        let secret = ChunkerSecret::from_bytes([0xAB; 32]);
        assert_eq!(format!("{secret:?}"), "ChunkerSecret(..)");
        assert_eq!(format!("{:?}", GearTable::keyed(&secret)), "GearTable(..)");
    }
}
