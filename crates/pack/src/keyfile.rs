//! Key files: the master key set wrapped under a password (Argon2id + XChaCha20-Poly1305).
//!
//! Layout (docs/format.md#key-files), all integers little-endian:
//!
//! ```text
//! 0    8   magic "CAIRNKEY"
//! 8    1   version = 1
//! 9    1   kdf = 1 (Argon2id, version 0x13)
//! 10   4   memory cost in KiB
//! 14   4   time cost (passes)
//! 18   4   parallelism
//! 22   32  salt
//! 54   136 sealed master keys: nonce ‖ 96 bytes ‖ tag, AD = bytes 0..54, key = Argon2id output
//! 190  4   n = length of the sealed info
//! 194  n   sealed info: nonce ‖ info ‖ tag, key = master data key, AD = "cairn key info v1" ‖ bytes 0..54
//! ```
//! The info (who made the key, when) is sealed with the repository's data key so that anyone
//! holding the repository open can list every key's info, while the KDF parameters stay
//! readable before any password is known.

use zeroize::{Zeroize, Zeroizing};

use crate::crypto::{open, random_bytes, seal, SEAL_OVERHEAD};
use crate::error::malformed;
use crate::keys::MASTER_KEYS_LEN;
use crate::{MasterKeys, PackError};

const MAGIC: &[u8; 8] = b"CAIRNKEY";
const VERSION: u8 = 1;
const KDF_ARGON2ID: u8 = 1;
const HEADER_LEN: usize = 54;
const SEALED_KEYS_LEN: usize = MASTER_KEYS_LEN + SEAL_OVERHEAD;
const INFO_AD_PREFIX: &[u8] = b"cairn key info v1";
/// Largest info payload a key file may carry.
pub const MAX_KEY_INFO_LEN: usize = 64 * 1024;
/// Largest well-formed key file, in bytes: a listed key file larger than this can be skipped
/// without downloading it.
pub const MAX_KEY_FILE_LEN: usize =
    HEADER_LEN + SEALED_KEYS_LEN + 4 + MAX_KEY_INFO_LEN + SEAL_OVERHEAD;

/// Argon2id cost parameters, stored in each key file.
///
/// Two sets of bounds (docs/format.md#key-files):
///
/// - The **ceiling**, checked by [`KdfParams::new`] and so by [`KeyFile::parse`] before any
///   memory is allocated: memory ≤ [`KdfParams::MAX_MEMORY_KIB`] (256 MiB), memory × passes ≤
///   [`KdfParams::MAX_WORK_KIB`] (1 GiB·pass, about half a second), passes 1 ..= 64,
///   parallelism 1 ..= 16 and memory ≥ 8 KiB × parallelism (Argon2's own minimum). Anyone who
///   can write `keys/` chooses these numbers, so a key file above the ceiling is refused
///   unread: one key derivation then costs at most 256 MiB and about half a second, which a
///   1 GiB pod can pay while doing nothing else.
/// - The **floor** for new keys, checked by [`KdfParams::check_new_key`] (the repository
///   layer calls it for `init`, `key add` and `key passwd`): memory ≥
///   [`KdfParams::MIN_MEMORY_KIB`] (7 MiB) and memory × passes ≥ [`KdfParams::MIN_WORK_KIB`]
///   (35 MiB·pass), the weakest row of OWASP's Argon2id table (19 MiB × 2, 12 MiB × 3,
///   9 MiB × 4 or 7 MiB × 5 all pass). The weakest key sets the repository's security, so no
///   new key may be weaker; existing keys below the floor still open (`check` warns).
#[derive(Clone, Copy, Debug, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    time_cost: u32,
    parallelism: u32,
    /// Set only by [`KdfParams::insecure_for_tests`]: lets tests create fast keys.
    below_floor_allowed: bool,
}

/// Equal costs are equal parameters (whether they may be used below the floor is not part of
/// the value a key file stores).
impl PartialEq for KdfParams {
    fn eq(&self, other: &Self) -> bool {
        (self.memory_kib, self.time_cost, self.parallelism)
            == (other.memory_kib, other.time_cost, other.parallelism)
    }
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.1 s on the reference machine.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        time_cost: 3,
        parallelism: 1,
        below_floor_allowed: false,
    };

    /// Largest accepted memory cost, in KiB (256 MiB: a quarter of a 1 GiB pod).
    pub const MAX_MEMORY_KIB: u32 = 256 * 1024;

    /// Largest accepted memory cost × passes, in KiB (1 GiB·pass). Argon2's time is
    /// proportional to this product: 1 GiB·pass is about 0.5 s on the reference machine.
    pub const MAX_WORK_KIB: u64 = 1024 * 1024;

    /// Largest accepted number of passes.
    pub const MAX_TIME_COST: u32 = 64;

    /// Largest accepted number of lanes. The `argon2` crate computes lanes one after another
    /// (it has no threads), so lanes change the memory layout, not the cost.
    pub const MAX_PARALLELISM: u32 = 16;

    /// Smallest memory cost of a new key, in KiB (7 MiB, OWASP's smallest row).
    pub const MIN_MEMORY_KIB: u32 = 7 * 1024;

    /// Smallest memory cost × passes of a new key, in KiB (35 MiB·pass = 7 MiB × 5, the
    /// weakest of OWASP's equivalent Argon2id settings; 19 MiB × 2 is their first choice).
    pub const MIN_WORK_KIB: u64 = 35 * 1024;

    /// Validates cost parameters against the ceiling (what any reader accepts).
    ///
    /// Parameters below the floor are accepted here (existing keys must keep opening); new
    /// keys must also pass [`KdfParams::check_new_key`].
    ///
    /// # Errors
    /// [`PackError::InvalidParameter`] when any ceiling bound is broken.
    pub fn new(memory_kib: u32, time_cost: u32, parallelism: u32) -> Result<Self, PackError> {
        if !(1..=Self::MAX_PARALLELISM).contains(&parallelism) {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 parallelism {parallelism} is outside 1..={}",
                Self::MAX_PARALLELISM
            )));
        }
        if !(1..=Self::MAX_TIME_COST).contains(&time_cost) {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 time cost {time_cost} is outside 1..={}",
                Self::MAX_TIME_COST
            )));
        }
        if memory_kib < 8 * parallelism || memory_kib > Self::MAX_MEMORY_KIB {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 memory {memory_kib} KiB is outside {}..={} KiB (the ceiling a 1 GiB host can pay)",
                8 * parallelism,
                Self::MAX_MEMORY_KIB
            )));
        }
        let work = u64::from(memory_kib) * u64::from(time_cost);
        if work > Self::MAX_WORK_KIB {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 work {memory_kib} KiB × {time_cost} passes is above the ceiling of {} KiB·passes",
                Self::MAX_WORK_KIB
            )));
        }
        Ok(KdfParams {
            memory_kib,
            time_cost,
            parallelism,
            below_floor_allowed: false,
        })
    }

    /// Parameters below the floor that [`KdfParams::check_new_key`] lets through, so tests can
    /// create keys in microseconds. Only compiled into this crate's tests and into builds that
    /// enable the `insecure-test-kdf` feature, which crates enable as a dev-dependency only:
    /// release builds cannot make weak keys through it.
    ///
    /// # Errors
    /// As [`KdfParams::new`] (the ceiling still applies).
    #[cfg(any(test, feature = "insecure-test-kdf"))]
    pub fn insecure_for_tests(
        memory_kib: u32,
        time_cost: u32,
        parallelism: u32,
    ) -> Result<Self, PackError> {
        let mut params = Self::new(memory_kib, time_cost, parallelism)?;
        params.below_floor_allowed = true;
        Ok(params)
    }

    /// True when these costs are below the floor for new keys (see the type's documentation):
    /// a key file using them is easier to guess than the repository's policy allows.
    pub fn is_weak(&self) -> bool {
        self.memory_kib < Self::MIN_MEMORY_KIB
            || u64::from(self.memory_kib) * u64::from(self.time_cost) < Self::MIN_WORK_KIB
    }

    /// Checks that a new key may use these costs: at or above the floor (unless made by
    /// `insecure_for_tests`).
    ///
    /// # Errors
    /// [`PackError::InvalidParameter`] naming the floor when the costs are below it.
    pub fn check_new_key(&self) -> Result<(), PackError> {
        if self.is_weak() && !self.below_floor_allowed {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 cost {} KiB × {} passes is below the floor for new keys: at least {} KiB and {} KiB·passes (OWASP's minimum, e.g. 19456 KiB × 2 passes; the default is 65536 KiB × 3)",
                self.memory_kib,
                self.time_cost,
                Self::MIN_MEMORY_KIB,
                Self::MIN_WORK_KIB
            )));
        }
        Ok(())
    }

    /// Memory cost in KiB.
    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }

    /// Time cost (passes).
    pub fn time_cost(&self) -> u32 {
        self.time_cost
    }

    /// Parallelism (lanes).
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    fn derive(&self, password: &[u8], salt: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>, PackError> {
        // The working memory is allocated here rather than inside `hash_password_into`, which
        // frees it without wiping (argon2's `zeroize` feature only wipes its small internal
        // hashes): `derive_in` wipes every block before returning.
        let mut memory = Vec::new();
        self.derive_in(password, salt, &mut memory)
    }

    /// Derives the wrapping key using `memory` as Argon2's working memory (resized to the
    /// block count), and wipes every block before returning, whether derivation succeeded
    /// or not. An allocation failure is an error, not an abort.
    fn derive_in(
        &self,
        password: &[u8],
        salt: &[u8; 32],
        memory: &mut Vec<argon2::Block>,
    ) -> Result<Zeroizing<[u8; 32]>, PackError> {
        let params =
            argon2::Params::new(self.memory_kib, self.time_cost, self.parallelism, Some(32))
                .map_err(|e| PackError::InvalidParameter(format!("Argon2 parameters: {e}")))?;
        let blocks = params.block_count();
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        memory.clear();
        memory.try_reserve_exact(blocks).map_err(|_| {
            PackError::InvalidParameter(format!(
                "cannot allocate {} KiB for Argon2",
                self.memory_kib
            ))
        })?;
        memory.resize(blocks, argon2::Block::default());
        let mut out = Zeroizing::new([0u8; 32]);
        let result =
            argon.hash_password_into_with_memory(password, salt, out.as_mut(), &mut memory[..]);
        memory.iter_mut().for_each(Zeroize::zeroize);
        result.map_err(|e| PackError::InvalidParameter(format!("Argon2: {e}")))?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A parsed (not yet unlocked) key file.
#[derive(Clone, Debug)]
pub struct KeyFile {
    header: [u8; HEADER_LEN],
    params: KdfParams,
    sealed_keys: Vec<u8>,
    sealed_info: Vec<u8>,
}

impl KeyFile {
    /// Wraps `master` under `password`, with `info` (at most [`MAX_KEY_INFO_LEN`] bytes)
    /// sealed under the master data key.
    pub fn create(
        master: &MasterKeys,
        password: &[u8],
        params: KdfParams,
        info: &[u8],
    ) -> Result<Self, PackError> {
        if info.len() > MAX_KEY_INFO_LEN {
            return Err(PackError::TooLarge {
                what: "key info",
                size: info.len() as u64,
                limit: MAX_KEY_INFO_LEN as u64,
            });
        }
        let mut salt = [0u8; 32];
        random_bytes(&mut salt)?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        header[9] = KDF_ARGON2ID;
        header[10..14].copy_from_slice(&params.memory_kib.to_le_bytes());
        header[14..18].copy_from_slice(&params.time_cost.to_le_bytes());
        header[18..22].copy_from_slice(&params.parallelism.to_le_bytes());
        header[22..54].copy_from_slice(&salt);
        let wrapping = params.derive(password, &salt)?;
        let plain = Zeroizing::new(master.to_bytes());
        let sealed_keys = seal(&wrapping, &header, plain.as_ref())?;
        let sealed_info = seal(master.data_key(), &info_ad(&header), info)?;
        Ok(KeyFile {
            header,
            params,
            sealed_keys,
            sealed_info,
        })
    }

    /// Parses the structure of a key file without any password, and without allocating more
    /// than its length.
    ///
    /// # Errors
    /// [`PackError::Malformed`] for a wrong magic, version, KDF, length, or costs above the
    /// ceiling ([`KdfParams::new`]). Costs below the floor for new keys parse (old keys keep
    /// opening; see [`KdfParams::is_weak`]).
    pub fn parse(bytes: &[u8]) -> Result<Self, PackError> {
        const WHAT: &str = "key file";
        if bytes.len() < HEADER_LEN + SEALED_KEYS_LEN + 4 {
            return Err(malformed(
                WHAT,
                format!("{} bytes is too short", bytes.len()),
            ));
        }
        if &bytes[..8] != MAGIC {
            return Err(malformed(WHAT, "missing CAIRNKEY magic"));
        }
        if bytes[8] != VERSION {
            return Err(malformed(WHAT, format!("unsupported version {}", bytes[8])));
        }
        if bytes[9] != KDF_ARGON2ID {
            return Err(malformed(WHAT, format!("unknown KDF {}", bytes[9])));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let params = KdfParams::new(u32_at(10), u32_at(14), u32_at(18))
            .map_err(|e| malformed(WHAT, e.to_string()))?;
        let info_at = HEADER_LEN + SEALED_KEYS_LEN;
        let info_len = u32_at(info_at) as usize;
        if !(SEAL_OVERHEAD..=MAX_KEY_INFO_LEN + SEAL_OVERHEAD).contains(&info_len) {
            return Err(malformed(
                WHAT,
                format!("sealed info length {info_len} out of range"),
            ));
        }
        if bytes.len() != info_at + 4 + info_len {
            return Err(malformed(
                WHAT,
                format!(
                    "length {} but fields need {}",
                    bytes.len(),
                    info_at + 4 + info_len
                ),
            ));
        }
        let mut header = [0u8; HEADER_LEN];
        header.copy_from_slice(&bytes[..HEADER_LEN]);
        Ok(KeyFile {
            header,
            params,
            sealed_keys: bytes[HEADER_LEN..info_at].to_vec(),
            sealed_info: bytes[info_at + 4..].to_vec(),
        })
    }

    /// Serializes; `parse(to_bytes())` gives back an equal key file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(HEADER_LEN + self.sealed_keys.len() + 4 + self.sealed_info.len());
        out.extend_from_slice(&self.header);
        out.extend_from_slice(&self.sealed_keys);
        out.extend_from_slice(&(self.sealed_info.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.sealed_info);
        out
    }

    /// The KDF costs this key file uses.
    pub fn params(&self) -> KdfParams {
        self.params
    }

    /// Derives the wrapping key from `password` and unwraps the master key set.
    ///
    /// # Errors
    /// [`PackError::WrongPassword`] when authentication fails, never a parse error.
    pub fn unlock(&self, password: &[u8]) -> Result<MasterKeys, PackError> {
        let salt: [u8; 32] = self.header[22..54].try_into().expect("32 bytes");
        let wrapping = self.params.derive(password, &salt)?;
        let plain = open(&wrapping, &self.header, &self.sealed_keys, String::new)
            .map(Zeroizing::new)
            .map_err(|_| PackError::WrongPassword)?;
        MasterKeys::from_bytes(&plain).ok_or(PackError::WrongPassword)
    }

    /// Decrypts the info with an unlocked key set of the same repository.
    ///
    /// # Errors
    /// [`PackError::Authentication`] if the key file belongs to another repository or was altered.
    pub fn info(&self, master: &MasterKeys) -> Result<Vec<u8>, PackError> {
        open(
            master.data_key(),
            &info_ad(&self.header),
            &self.sealed_info,
            || "key file info".to_string(),
        )
    }
}

fn info_ad(header: &[u8; HEADER_LEN]) -> Vec<u8> {
    let mut ad = INFO_AD_PREFIX.to_vec();
    ad.extend_from_slice(header);
    ad
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fast() -> KdfParams {
        KdfParams::insecure_for_tests(64, 1, 1).unwrap()
    }

    #[test]
    fn unlock_with_right_password_and_list_info() {
        let master = MasterKeys::generate().unwrap();
        let kf = KeyFile::create(&master, b"hunter2", fast(), b"{\"host\":\"a\"}").unwrap();
        let parsed = KeyFile::parse(&kf.to_bytes()).unwrap();
        assert_eq!(parsed.params(), fast());
        let unlocked = parsed.unlock(b"hunter2").unwrap();
        assert_eq!(unlocked.to_bytes(), master.to_bytes());
        assert_eq!(parsed.info(&unlocked).unwrap(), b"{\"host\":\"a\"}");
        let other = MasterKeys::generate().unwrap();
        assert!(matches!(
            parsed.info(&other),
            Err(PackError::Authentication { .. })
        ));
    }

    #[test]
    fn wrong_password_is_wrong_password() {
        let master = MasterKeys::generate().unwrap();
        let kf = KeyFile::create(&master, b"right", fast(), b"").unwrap();
        assert!(matches!(kf.unlock(b"wrong"), Err(PackError::WrongPassword)));
        assert!(matches!(kf.unlock(b""), Err(PackError::WrongPassword)));
    }

    #[test]
    fn two_key_files_unlock_the_same_master() {
        let master = MasterKeys::generate().unwrap();
        let a = KeyFile::create(&master, b"one", fast(), b"").unwrap();
        let b = KeyFile::create(&master, b"two", fast(), b"").unwrap();
        assert_ne!(a.to_bytes(), b.to_bytes());
        assert_eq!(
            a.unlock(b"one").unwrap().to_bytes(),
            b.unlock(b"two").unwrap().to_bytes()
        );
    }

    /// Writes costs into a key file's header, as a hostile store could.
    fn with_costs(bytes: &[u8], memory_kib: u32, time_cost: u32, parallelism: u32) -> Vec<u8> {
        let mut bytes = bytes.to_vec();
        bytes[10..14].copy_from_slice(&memory_kib.to_le_bytes());
        bytes[14..18].copy_from_slice(&time_cost.to_le_bytes());
        bytes[18..22].copy_from_slice(&parallelism.to_le_bytes());
        bytes
    }

    #[test]
    fn hostile_costs_are_rejected_before_deriving() {
        let master = MasterKeys::generate().unwrap();
        let bytes = KeyFile::create(&master, b"pw", fast(), b"")
            .unwrap()
            .to_bytes();
        // Each of these would allocate more than 256 MiB or take more than 1 GiB·pass of
        // work; parse refuses them without allocating or deriving anything.
        for (m, t, p, what) in [
            (u32::MAX, 1, 1, "memory"),
            (1024 * 1024, 1, 1, "memory"), // 1 GiB: accepted before, a 1 GiB pod dies
            (KdfParams::MAX_MEMORY_KIB + 1, 1, 1, "memory"),
            (KdfParams::MAX_MEMORY_KIB, 5, 1, "work"), // 256 MiB × 5 passes
            (64 * 1024, 17, 1, "work"),                // 64 MiB × 17 passes
            (1024, 65, 1, "time cost"),
            (1024, 1, 17, "parallelism"),
            (8, 1, 2, "memory"), // below Argon2's 8 KiB per lane
        ] {
            let err = KeyFile::parse(&with_costs(&bytes, m, t, p)).unwrap_err();
            assert!(
                matches!(err, PackError::Malformed { .. }) && err.to_string().contains(what),
                "{m} KiB × {t} × {p}: {err}"
            );
        }
        // The ceiling itself parses (and is refused for nothing else).
        let at_ceiling = with_costs(&bytes, KdfParams::MAX_MEMORY_KIB, 4, 16);
        assert_eq!(
            KeyFile::parse(&at_ceiling).unwrap().params(),
            KdfParams::new(KdfParams::MAX_MEMORY_KIB, 4, 16).unwrap()
        );
        assert!(KdfParams::new(8, 0, 1).is_err());
        assert!(KdfParams::new(8, 1, 0).is_err());
        assert!(KdfParams::new(8, 1, 2).is_err());
    }

    #[test]
    fn weak_costs_parse_but_are_refused_for_new_keys() {
        // What cairn accepted for new keys before: 8 MiB × 1 pass.
        let old_weak = KdfParams::new(8 * 1024, 1, 1).unwrap();
        assert!(old_weak.is_weak());
        let err = old_weak.check_new_key().unwrap_err();
        assert!(err.to_string().contains("below the floor"), "{err}");
        // OWASP's equivalent minimums all pass; one KiB or one pass less does not.
        for (m, t) in [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)] {
            let ok = KdfParams::new(m, t, 1).unwrap();
            assert!(!ok.is_weak(), "{m} × {t}");
            ok.check_new_key().unwrap();
        }
        for (m, t) in [(19456, 1), (7168, 4), (7167, 6), (35839, 1)] {
            assert!(KdfParams::new(m, t, 1).unwrap().is_weak(), "{m} × {t}");
        }
        assert!(!KdfParams::DEFAULT.is_weak());
        // A weak key made before the floor still parses and opens (compatibility)...
        let master = MasterKeys::generate().unwrap();
        let weak = KeyFile::create(&master, b"pw", fast(), b"").unwrap();
        let parsed = KeyFile::parse(&weak.to_bytes()).unwrap();
        assert!(parsed.params().is_weak());
        assert_eq!(parsed.unlock(b"pw").unwrap().to_bytes(), master.to_bytes());
        // ...but its parameters cannot be reused for a new key: the test-only permission is
        // not stored in the file.
        assert!(parsed.params().check_new_key().is_err());
        assert!(fast().check_new_key().is_ok());
    }

    #[test]
    fn crypto_crates_wipe_their_state() {
        // Type-level: these only compile (Block: Zeroize) or hold (Poly1305 has a Drop that
        // wipes its state) when the crates' zeroize features are enabled.
        fn zeroizes<T: Zeroize>() {}
        zeroizes::<argon2::Block>();
        assert!(std::mem::needs_drop::<poly1305::Poly1305>());
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<MasterKeys>();
    }

    #[test]
    fn derivation_wipes_its_working_memory() {
        let params = fast();
        let mut memory = Vec::new();
        let salt = [7u8; 32];
        let key = params.derive_in(b"pw", &salt, &mut memory).unwrap();
        // Argon2 filled 64 blocks of 1 KiB; every one is zero again.
        assert_eq!(memory.len(), 64);
        assert!(memory.iter().all(|b| b.as_ref().iter().all(|&w| w == 0)));
        // The key is the same as without our memory handling (Argon2id test vector shape).
        let mut expected = [0u8; 32];
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(64, 1, 1, Some(32)).unwrap(),
        )
        .hash_password_into(b"pw", &salt, &mut expected)
        .unwrap();
        assert_eq!(*key, expected);
    }

    #[test]
    fn default_params_are_valid() {
        let d = KdfParams::DEFAULT;
        assert_eq!(
            KdfParams::new(d.memory_kib(), d.time_cost(), d.parallelism()).unwrap(),
            d
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Any single-byte change either fails to parse or fails to unlock; never a panic
        /// and never a wrong key set.
        #[test]
        fn tampering_never_yields_keys(index in any::<prop::sample::Index>(), mask in 1u8..=255) {
            let master = MasterKeys::from_parts([1; 32], [2; 32], [3; 32]);
            let mut bytes = KeyFile::create(&master, b"pw", fast(), b"info").unwrap().to_bytes();
            let i = index.index(bytes.len());
            bytes[i] ^= mask;
            if let Ok(kf) = KeyFile::parse(&bytes) {
                // A tampered memory cost can still be in range but huge; deriving with it
                // only costs time (the header is the AD, so it must fail anyway).
                prop_assume!(kf.params().memory_kib() <= 4096);
                match kf.unlock(b"pw") {
                    Ok(keys) => {
                        // Only the info region may be altered without breaking the keys...
                        prop_assert!(i >= HEADER_LEN + SEALED_KEYS_LEN + 4);
                        prop_assert_eq!(keys.to_bytes(), master.to_bytes());
                        // ...and then the info must fail to authenticate.
                        prop_assert!(kf.info(&keys).is_err());
                    }
                    Err(e) => prop_assert!(matches!(e, PackError::WrongPassword | PackError::InvalidParameter(_))),
                }
            }
        }

        /// Whatever costs a key file claims, parsing accepts only what the ceiling allows,
        /// and agrees with `KdfParams::new`.
        #[test]
        fn parsed_costs_never_exceed_the_ceiling(m in any::<u32>(), t in 0u32..200, p in 0u32..40) {
            let master = MasterKeys::from_parts([1; 32], [2; 32], [3; 32]);
            let bytes = KeyFile::create(&master, b"pw", fast(), b"").unwrap().to_bytes();
            let parsed = KeyFile::parse(&with_costs(&bytes, m, t, p));
            prop_assert_eq!(parsed.is_ok(), KdfParams::new(m, t, p).is_ok());
            if let Ok(kf) = parsed {
                let params = kf.params();
                prop_assert!(params.memory_kib() <= KdfParams::MAX_MEMORY_KIB);
                prop_assert!(u64::from(params.memory_kib()) * u64::from(params.time_cost()) <= KdfParams::MAX_WORK_KIB);
                prop_assert!((1..=KdfParams::MAX_PARALLELISM).contains(&params.parallelism()));
                // Weak or not is decided by the floor alone.
                prop_assert_eq!(
                    params.is_weak(),
                    m < KdfParams::MIN_MEMORY_KIB || u64::from(m) * u64::from(t) < KdfParams::MIN_WORK_KIB
                );
                prop_assert_eq!(params.check_new_key().is_ok(), !params.is_weak());
            }
        }

        #[test]
        fn truncation_never_parses(cut in 0usize..400) {
            let master = MasterKeys::generate().unwrap();
            let bytes = KeyFile::create(&master, b"pw", fast(), b"info").unwrap().to_bytes();
            prop_assume!(cut < bytes.len());
            prop_assert!(KeyFile::parse(&bytes[..cut]).is_err());
        }
    }
}
