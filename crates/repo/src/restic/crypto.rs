//! restic's encryption (restic's doc/design.rst, "Keys, Encryption and MAC"): every file
//! and blob is `IV (16 bytes) ‖ AES-256-CTR(ciphertext) ‖ Poly1305-AES MAC (16 bytes)`, the
//! MAC over the ciphertext alone, keyed with `r` and `AES-128_k(IV)`. Key files hold the
//! master keys encrypted under keys derived from the password with scrypt.
//!
//! The primitives are RustCrypto's (aes, ctr, poly1305, scrypt); only restic's framing is
//! written here. Everything is authenticated before it is decrypted.

use aes::cipher::{BlockEncrypt, KeyInit, KeyIvInit, StreamCipher};
use base64::Engine;
use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::error::{RepoError, Result};

const IV: usize = 16;
const MAC: usize = 16;

type Aes256Ctr = ctr::Ctr128BE<aes::Aes256>;

/// A restic key: AES-256 for encryption, Poly1305-AES (`k`, `r`) for authentication.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ResticKey {
    encrypt: [u8; 32],
    mac_k: [u8; 16],
    mac_r: [u8; 16],
}

impl std::fmt::Debug for ResticKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResticKey(..)")
    }
}

impl ResticKey {
    /// From 64 bytes: encryption key, then MAC `k`, then MAC `r` (scrypt's output order).
    fn from_derived(bytes: &[u8; 64]) -> ResticKey {
        let mut key = ResticKey {
            encrypt: [0; 32],
            mac_k: [0; 16],
            mac_r: [0; 16],
        };
        key.encrypt.copy_from_slice(&bytes[..32]);
        key.mac_k.copy_from_slice(&bytes[32..48]);
        key.mac_r.copy_from_slice(&bytes[48..]);
        key
    }

    fn mac(&self, iv: &[u8], ciphertext: &[u8]) -> [u8; 16] {
        // Poly1305 key: r (clamped by the primitive, as restic masks it) ‖ AES-128_k(IV).
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(&self.mac_r);
        let mut s = aes::Block::clone_from_slice(iv);
        aes::Aes128::new(&self.mac_k.into()).encrypt_block(&mut s);
        key[16..].copy_from_slice(&s);
        let tag = poly1305::Poly1305::new(&key.into()).compute_unpadded(ciphertext);
        key.zeroize();
        tag.into()
    }

    /// Authenticates and decrypts `sealed` (named `object` in errors).
    ///
    /// # Errors
    /// `Corrupt` if it is too short or its MAC does not match (damage, or another key).
    pub fn open(&self, sealed: &[u8], object: &str) -> Result<Vec<u8>> {
        if sealed.len() < IV + MAC {
            return Err(RepoError::corrupt(
                object,
                format!("{} bytes, shorter than restic's IV and MAC", sealed.len()),
            ));
        }
        let (iv, rest) = sealed.split_at(IV);
        let (ciphertext, tag) = rest.split_at(rest.len() - MAC);
        let expected = self.mac(iv, ciphertext);
        // Constant time: the tag must not leak how much of it matched.
        let same = expected
            .iter()
            .zip(tag)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
        if !same {
            return Err(RepoError::corrupt(
                object,
                "its MAC does not match (damaged, or not of this repository)",
            ));
        }
        let mut plain = ciphertext.to_vec();
        Aes256Ctr::new(&self.encrypt.into(), iv.into()).apply_keystream(&mut plain);
        Ok(plain)
    }

    /// A fixed key for fuzzing the authentication path.
    #[doc(hidden)]
    pub fn for_fuzzing() -> ResticKey {
        ResticKey::from_derived(&[7; 64])
    }

    /// Encrypts `plain` with a random IV (tests and fuzzing build restic data with it).
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; IV];
        getrandom::fill(&mut iv).expect("the OS random source works");
        let mut out = iv.to_vec();
        let mut body = plain.to_vec();
        Aes256Ctr::new(&self.encrypt.into(), (&iv).into()).apply_keystream(&mut body);
        let tag = self.mac(&iv, &body);
        out.extend_from_slice(&body);
        out.extend_from_slice(&tag);
        out
    }
}

/// A key file (`keys/<id>`), as restic writes it (plain JSON).
#[derive(Debug, Deserialize)]
pub struct KeyFile {
    /// Key derivation: restic writes only "scrypt".
    pub kdf: String,
    /// scrypt's N (a power of two).
    #[serde(rename = "N")]
    pub n: u64,
    /// scrypt's r.
    pub r: u32,
    /// scrypt's p.
    pub p: u32,
    /// Salt, base64.
    pub salt: String,
    /// The master key, encrypted, base64.
    pub data: String,
    /// Host that made the key.
    #[serde(default)]
    pub hostname: String,
}

#[derive(Deserialize)]
struct MasterKeyJson {
    mac: MacJson,
    encrypt: String,
}

#[derive(Deserialize)]
struct MacJson {
    k: String,
    r: String,
}

/// Largest scrypt cost accepted (restic's default is 2^15; a key file is untrusted input,
/// and N·r·128 bytes of memory is what it would make us allocate).
const MAX_SCRYPT_MEMORY: u64 = 1 << 30;

fn b64(text: &str, what: &str, object: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| RepoError::corrupt(object, format!("{what} is not base64: {e}")))
}

/// Reads a key file's JSON (named `object` in errors).
///
/// # Errors
/// `Corrupt` for anything but a restic scrypt key file with sane parameters.
pub fn parse_key_file(bytes: &[u8], object: &str) -> Result<KeyFile> {
    let file: KeyFile = serde_json::from_slice(bytes)
        .map_err(|e| RepoError::corrupt(object, format!("not a restic key file: {e}")))?;
    if file.kdf != "scrypt" {
        return Err(RepoError::corrupt(
            object,
            format!("unknown key derivation {:?}", file.kdf),
        ));
    }
    let memory = file.n.saturating_mul(u64::from(file.r)).saturating_mul(128);
    if !file.n.is_power_of_two()
        || file.n < 2
        || file.r == 0
        || file.p == 0
        || memory > MAX_SCRYPT_MEMORY
    {
        return Err(RepoError::corrupt(
            object,
            format!(
                "scrypt parameters N={} r={} p={} are out of range",
                file.n, file.r, file.p
            ),
        ));
    }
    Ok(file)
}

/// Unlocks key file `file` with `password`: `Ok(None)` when the password is not this key's.
///
/// # Errors
/// `Corrupt` when the password fits but the key inside is malformed.
pub fn unlock(file: &KeyFile, password: &[u8], object: &str) -> Result<Option<ResticKey>> {
    let salt = b64(&file.salt, "salt", object)?;
    let data = b64(&file.data, "data", object)?;
    let params = scrypt::Params::new(file.n.trailing_zeros() as u8, file.r, file.p, 64)
        .map_err(|e| RepoError::corrupt(object, format!("scrypt parameters: {e}")))?;
    let mut derived = [0u8; 64];
    scrypt::scrypt(password, &salt, &params, &mut derived)
        .map_err(|e| RepoError::corrupt(object, format!("scrypt: {e}")))?;
    let user = ResticKey::from_derived(&derived);
    derived.zeroize();
    let Ok(mut plain) = user.open(&data, object) else {
        return Ok(None);
    };
    let master: std::result::Result<MasterKeyJson, _> = serde_json::from_slice(&plain);
    plain.zeroize();
    let master = master.map_err(|e| RepoError::corrupt(object, format!("master key JSON: {e}")))?;
    let (mut k, mut r, mut encrypt) = (
        b64(&master.mac.k, "mac.k", object)?,
        b64(&master.mac.r, "mac.r", object)?,
        b64(&master.encrypt, "encrypt", object)?,
    );
    if k.len() != 16 || r.len() != 16 || encrypt.len() != 32 {
        return Err(RepoError::corrupt(
            object,
            "master key has the wrong lengths",
        ));
    }
    let mut bytes = [0u8; 64];
    bytes[..32].copy_from_slice(&encrypt);
    bytes[32..48].copy_from_slice(&k);
    bytes[48..].copy_from_slice(&r);
    let key = ResticKey::from_derived(&bytes);
    bytes.zeroize();
    k.zeroize();
    r.zeroize();
    encrypt.zeroize();
    Ok(Some(key))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub fn key(seed: u8) -> ResticKey {
        let mut bytes = [seed; 64];
        bytes[0] ^= 1;
        ResticKey::from_derived(&bytes)
    }

    #[test]
    fn sealed_data_opens_and_any_change_is_refused() {
        let k = key(7);
        let sealed = k.seal(b"restic data");
        assert_eq!(k.open(&sealed, "o").unwrap(), b"restic data");
        for i in [0, 16, sealed.len() - 1] {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(k.open(&bad, "o").is_err(), "flip at {i}");
        }
        assert!(key(8).open(&sealed, "o").is_err());
        assert!(k.open(&sealed[..31], "o").is_err());
    }

    proptest! {
        #[test]
        fn round_trip(data in prop::collection::vec(any::<u8>(), 0..500)) {
            let k = key(3);
            prop_assert_eq!(k.open(&k.seal(&data), "o").unwrap(), data);
        }

        #[test]
        fn arbitrary_bytes_do_not_panic(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = key(1).open(&data, "o");
            let _ = parse_key_file(&data, "k");
        }
    }
}
