//! Typed 32-byte identifiers. A `BlobId` and a `PackId` cannot be mixed up.

use std::fmt;
use std::str::FromStr;

use crate::PackError;

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The raw 32 bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lower-case hex, 64 characters.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 8 hex characters, for display.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl serde::Serialize for $name {
            /// Serialized as 64 lower-case hex digits.
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl FromStr for $name {
            type Err = PackError;

            /// Parses exactly 64 hex characters.
            fn from_str(s: &str) -> Result<Self, PackError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|e| {
                    crate::error::malformed(stringify!($name), format!("{s:?} is not 64 hex digits: {e}"))
                })?;
                Ok($name(out))
            }
        }
    };
}

define_id!(
    /// Id of a blob: keyed BLAKE3 of its plaintext under the repository's blob-id key.
    BlobId
);
define_id!(
    /// Id of a pack: unkeyed BLAKE3 of the whole pack file (which is all ciphertext).
    PackId
);

impl PackId {
    /// The id of a finished pack's bytes.
    pub fn of(pack_bytes: &[u8]) -> PackId {
        PackId(*blake3::hash(pack_bytes).as_bytes())
    }
}

/// What a blob holds. Layout: docs/format.md#blob-types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum BlobType {
    /// File content (one chunk).
    Data = 0,
    /// One directory's tree object.
    Tree = 1,
}

impl BlobType {
    /// The on-disk byte.
    pub fn to_byte(self) -> u8 {
        self as u8
    }

    /// Parses the on-disk byte.
    pub fn from_byte(byte: u8) -> Option<BlobType> {
        match byte {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

impl fmt::Display for BlobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlobType::Data => "data",
            BlobType::Tree => "tree",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let id = BlobId([0xA5; 32]);
        assert_eq!(id.to_hex().parse::<BlobId>().unwrap(), id);
        assert!("zz".parse::<BlobId>().is_err());
        assert!(id.to_hex()[..62].parse::<BlobId>().is_err());
        assert_eq!(id.short(), "a5a5a5a5");
    }

    #[test]
    fn blob_type_bytes() {
        for t in [BlobType::Data, BlobType::Tree] {
            assert_eq!(BlobType::from_byte(t.to_byte()), Some(t));
        }
        assert_eq!(BlobType::from_byte(2), None);
    }
}
