//! XChaCha20-Poly1305 sealing with random 192-bit nonces.
//!
//! Sealed layout: `nonce (24) ‖ ciphertext ‖ tag (16)`; docs/format.md#sealing.

use chacha20poly1305::aead::AeadInPlace;
use chacha20poly1305::{KeyInit, Tag, XChaCha20Poly1305, XNonce};

use crate::PackError;

/// Nonce length in bytes (XChaCha20: 192 bits).
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length in bytes.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed message adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<(), PackError> {
    getrandom::fill(buf).map_err(|e| PackError::Random(e.to_string()))
}

/// Encrypts `out[NONCE_LEN..]` in place and appends the tag.
///
/// `out` must start with `NONCE_LEN` bytes of room, which receive a fresh random nonce. Taking
/// the buffer lets callers (the blob encoder) write compressed data straight behind the nonce.
pub fn seal_in_place(key: &[u8; 32], ad: &[u8], out: &mut Vec<u8>) -> Result<(), PackError> {
    debug_assert!(out.len() >= NONCE_LEN);
    let mut nonce = [0u8; NONCE_LEN];
    random_bytes(&mut nonce)?;
    out[..NONCE_LEN].copy_from_slice(&nonce);
    let cipher = XChaCha20Poly1305::new(key.into());
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), ad, &mut out[NONCE_LEN..])
        // Only fails for messages over 256 GiB, which the format never produces.
        .map_err(|_| PackError::InvalidParameter("message too long to seal".into()))?;
    out.extend_from_slice(&tag);
    Ok(())
}

/// Seals `plaintext` into a new buffer.
pub fn seal(key: &[u8; 32], ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, PackError> {
    let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&[0u8; NONCE_LEN]);
    out.extend_from_slice(plaintext);
    seal_in_place(key, ad, &mut out)?;
    Ok(out)
}

/// Authenticates and decrypts a sealed message. `what` names it in errors.
///
/// The plaintext is only returned after the tag verified.
pub fn open(
    key: &[u8; 32],
    ad: &[u8],
    sealed: &[u8],
    what: impl FnOnce() -> String,
) -> Result<Vec<u8>, PackError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(PackError::Authentication { what: what() });
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    let mut plaintext = ciphertext.to_vec();
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(
            XNonce::from_slice(nonce),
            ad,
            &mut plaintext,
            Tag::from_slice(tag),
        )
        .map_err(|_| PackError::Authentication { what: what() })?;
    Ok(plaintext)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn nonces_are_fresh() {
        let a = seal(&[1; 32], b"ad", b"same").unwrap();
        let b = seal(&[1; 32], b"ad", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    proptest! {
        #[test]
        fn round_trip_and_any_flip_fails(
            msg in prop::collection::vec(any::<u8>(), 0..300),
            ad in prop::collection::vec(any::<u8>(), 0..40),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let key = [7u8; 32];
            let sealed = seal(&key, &ad, &msg).unwrap();
            prop_assert_eq!(sealed.len(), msg.len() + SEAL_OVERHEAD);
            prop_assert_eq!(open(&key, &ad, &sealed, String::new).unwrap(), msg.clone());
            let mut bad = sealed.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 1 << bit;
            prop_assert!(open(&key, &ad, &bad, String::new).is_err());
            prop_assert!(open(&[8u8; 32], &ad, &sealed, String::new).is_err());
            let mut other_ad = ad.clone();
            other_ad.push(0);
            prop_assert!(open(&key, &other_ad, &sealed, String::new).is_err());
            prop_assert!(open(&key, &ad, &sealed[..sealed.len() - 1], String::new).is_err());
        }
    }
}
