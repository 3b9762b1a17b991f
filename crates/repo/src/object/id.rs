//! Typed ids of content-addressed repository files: each is the BLAKE3 hash of the sealed
//! bytes, 64 lowercase hex digits, and one kind of id cannot be passed where another is due.

use std::fmt;
use std::str::FromStr;

use crate::error::{RepoError, Result};

/// What every typed file id offers the generic file layer.
pub trait FileId:
    Clone + Eq + Ord + std::hash::Hash + fmt::Display + fmt::Debug + Send + Sync + 'static
{
    /// Takes a stored name as an id; `None` unless it is 64 lowercase hex digits.
    fn from_name(name: &str) -> Option<Self>;
    /// The id as its hex name.
    fn as_str(&self) -> &str;
}

/// True when `text` is a full id: 64 lowercase hex digits.
pub fn is_full_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

macro_rules! file_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The id as its 64 hex digits.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The first 8 hex digits, as listings show ids.
            pub fn short(&self) -> &str {
                &self.0[..8]
            }
        }

        impl FileId for $name {
            fn from_name(name: &str) -> Option<Self> {
                is_full_id(name).then(|| $name(name.to_string()))
            }
            fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = RepoError;
            /// A full id; a prefix or anything else is [`RepoError::InvalidInput`].
            fn from_str(text: &str) -> Result<Self> {
                <$name as FileId>::from_name(text).ok_or_else(|| {
                    RepoError::InvalidInput(format!(
                        concat!("{:?} is not a ", $what, " id (64 lowercase hex digits)"),
                        text
                    ))
                })
            }
        }

        impl TryFrom<String> for $name {
            type Error = RepoError;
            fn try_from(text: String) -> Result<Self> {
                text.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

file_id!(
    /// Id of a snapshot (`snapshots/<id>`).
    SnapshotId,
    "snapshot"
);
file_id!(
    /// Id of an index file (`index/<id>`).
    IndexId,
    "index file"
);
file_id!(
    /// Id of a pending-deletion record (`pending/<id>`).
    PendingId,
    "pending-deletion record"
);
file_id!(
    /// Id of a drill record (`drills/<id>`).
    DrillId,
    "drill record"
);
file_id!(
    /// Id of a check record (`checks/<id>`).
    CheckId,
    "check record"
);
file_id!(
    /// Id of a key file (`keys/<id>`).
    KeyId,
    "key"
);

#[cfg(test)]
impl SnapshotId {
    /// A test id standing for a short label: the label's bytes in hex, padded with zeros.
    /// Ids compare as their labels do, so tests can reason about id order with names.
    pub(crate) fn for_test(label: &str) -> SnapshotId {
        assert!(label.len() <= 32 && !label.contains('\0'));
        SnapshotId(format!("{:0<64}", hex::encode(label)))
    }

    /// The label [`SnapshotId::for_test`] made this id from.
    pub(crate) fn test_label(&self) -> String {
        let bytes = hex::decode(&self.0).expect("hex");
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        String::from_utf8(bytes[..end].to_vec()).expect("a test label")
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_full_lowercase_hex_is_an_id() {
        let hex = "ab".repeat(32);
        assert_eq!(hex.parse::<SnapshotId>().unwrap().as_str(), hex);
        assert_eq!(hex.parse::<SnapshotId>().unwrap().short(), "abababab");
        for bad in [
            &hex[..63],
            &hex.to_uppercase(),
            &format!("{hex}0"),
            "",
            "../config",
        ] {
            let err = bad.parse::<IndexId>().unwrap_err();
            assert!(err.to_string().contains("index file id"), "{err}");
        }
    }

    #[test]
    fn ids_serialize_as_strings_and_refuse_junk() {
        let hex = "0f".repeat(32);
        let id: KeyId = serde_json::from_str(&format!("\"{hex}\"")).unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{hex}\""));
        assert!(serde_json::from_str::<KeyId>("\"0f\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(text in "[0-9a-fA-F./]{0,70}") {
            if let Ok(id) = text.parse::<DrillId>() {
                prop_assert_eq!(id.to_string(), text);
            }
        }
    }
}
