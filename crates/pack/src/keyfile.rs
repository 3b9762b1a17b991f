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

use zeroize::Zeroizing;

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

/// Argon2id cost parameters, stored in each key file.
///
/// Bounds (checked both when creating and when parsing, so a hostile key file cannot make
/// `open` allocate more than 1 GiB or spin for minutes): memory 8 KiB × parallelism ..= 1 GiB,
/// time 1 ..= 64, parallelism 1 ..= 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    time_cost: u32,
    parallelism: u32,
}

impl KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.1 s on the reference machine.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        time_cost: 3,
        parallelism: 1,
    };

    /// Largest accepted memory cost, in KiB (1 GiB).
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;

    /// Validates cost parameters.
    ///
    /// # Errors
    /// [`PackError::InvalidParameter`] when any bound is broken.
    pub fn new(memory_kib: u32, time_cost: u32, parallelism: u32) -> Result<Self, PackError> {
        if !(1..=16).contains(&parallelism) {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 parallelism {parallelism} is outside 1..=16"
            )));
        }
        if !(1..=64).contains(&time_cost) {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 time cost {time_cost} is outside 1..=64"
            )));
        }
        if memory_kib < 8 * parallelism || memory_kib > Self::MAX_MEMORY_KIB {
            return Err(PackError::InvalidParameter(format!(
                "Argon2 memory {memory_kib} KiB is outside {}..={} KiB",
                8 * parallelism,
                Self::MAX_MEMORY_KIB
            )));
        }
        Ok(KdfParams {
            memory_kib,
            time_cost,
            parallelism,
        })
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
        let params =
            argon2::Params::new(self.memory_kib, self.time_cost, self.parallelism, Some(32))
                .map_err(|e| PackError::InvalidParameter(format!("Argon2 parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(password, salt, out.as_mut())
            .map_err(|e| PackError::InvalidParameter(format!("Argon2: {e}")))?;
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

    /// Parses the structure of a key file without any password.
    ///
    /// # Errors
    /// [`PackError::Malformed`] for a wrong magic, version, KDF, length, or out-of-range costs.
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
        KdfParams::new(64, 1, 1).unwrap()
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

    #[test]
    fn hostile_costs_are_rejected_before_deriving() {
        let master = MasterKeys::generate().unwrap();
        let mut bytes = KeyFile::create(&master, b"pw", fast(), b"")
            .unwrap()
            .to_bytes();
        bytes[10..14].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = KeyFile::parse(&bytes).unwrap_err();
        assert!(err.to_string().contains("memory"), "{err}");
        assert!(KdfParams::new(8, 0, 1).is_err());
        assert!(KdfParams::new(8, 1, 0).is_err());
        assert!(KdfParams::new(8, 1, 2).is_err());
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

        #[test]
        fn truncation_never_parses(cut in 0usize..400) {
            let master = MasterKeys::generate().unwrap();
            let bytes = KeyFile::create(&master, b"pw", fast(), b"info").unwrap().to_bytes();
            prop_assume!(cut < bytes.len());
            prop_assert!(KeyFile::parse(&bytes[..cut]).is_err());
        }
    }
}
