//! `--max-unused` as restic defines it: how much unused data the whole repository may keep
//! after prune, so prune repacks only as many partly used packs as it takes to get there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

use crate::error::{RepoError, Result};

/// How much unused data the repository may keep after a prune (restic's `--max-unused`).
///
/// Packs no snapshot uses are always deleted; this bounds what is left in packs that are
/// still partly used. Prune repacks the partly used packs with the most unused data per used
/// byte first, until the unused data left is within the limit (or `max_repack_bytes` is
/// spent).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxUnused {
    /// At most this percentage (0 ..= 100) of the repository's size after prune may be
    /// unused: restic's `5%` (the default). 100 means no limit.
    Percent(f64),
    /// At most this many bytes may be unused: restic's `0`, `10M`, `1G` (`0` repacks every
    /// pack holding any unused data).
    Bytes(u64),
    /// Keep every partly used pack as it is: restic's `unlimited`.
    Unlimited,
}

impl Default for MaxUnused {
    fn default() -> Self {
        MaxUnused::Percent(5.0)
    }
}

impl MaxUnused {
    /// The most unused bytes allowed to remain, given how many bytes are used: for a
    /// percentage p, unused / (used + unused) <= p / 100, so unused <= used * p / (100 - p).
    pub fn allowed_bytes(self, used_bytes: u64) -> u64 {
        match self {
            MaxUnused::Unlimited => u64::MAX,
            MaxUnused::Bytes(bytes) => bytes,
            MaxUnused::Percent(p) if p >= 100.0 => u64::MAX,
            MaxUnused::Percent(p) => {
                let allowed = used_bytes as f64 * p / (100.0 - p);
                // `as` saturates: a huge quotient is u64::MAX, never a wrapped value.
                allowed as u64
            }
        }
    }

    /// Checks the range (a percentage within 0 ..= 100, finite).
    ///
    /// # Errors
    /// [`RepoError::InvalidInput`] naming the value.
    pub fn validate(self) -> Result<Self> {
        match self {
            MaxUnused::Percent(p) if !(0.0..=100.0).contains(&p) => Err(RepoError::InvalidInput(
                format!("--max-unused must be between 0% and 100%, not {p}%"),
            )),
            other => Ok(other),
        }
    }
}

impl fmt::Display for MaxUnused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnused::Percent(p) => write!(f, "{p}%"),
            MaxUnused::Bytes(b) => write!(f, "{b}"),
            MaxUnused::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl FromStr for MaxUnused {
    type Err = RepoError;

    /// restic's grammar: `unlimited`, a percentage (`5%`, `2.5%`), or a size in bytes with an
    /// optional binary suffix `k`, `m`, `g` or `t` (either case; `0` is a size).
    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        let invalid = |why: &str| {
            RepoError::InvalidInput(format!(
                "invalid --max-unused {text:?}: {why} (use a percentage such as 5%, a size \
                 such as 0 or 500M, or \"unlimited\")"
            ))
        };
        if text.eq_ignore_ascii_case("unlimited") {
            return Ok(MaxUnused::Unlimited);
        }
        if let Some(number) = text.strip_suffix('%') {
            let percent: f64 = number.trim().parse().map_err(|_| invalid("not a number"))?;
            if !percent.is_finite() {
                return Err(invalid("not a number"));
            }
            return MaxUnused::Percent(percent).validate();
        }
        let (digits, unit) = match text.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], Some(c)),
            _ => (text, None),
        };
        let multiplier: u64 = match unit.map(|c| c.to_ascii_lowercase()) {
            None | Some('b') => 1,
            Some('k') => 1 << 10,
            Some('m') => 1 << 20,
            Some('g') => 1 << 30,
            Some('t') => 1 << 40,
            Some(_) => return Err(invalid("unknown size suffix")),
        };
        let value: u64 = digits.trim().parse().map_err(|_| invalid("not a number"))?;
        value
            .checked_mul(multiplier)
            .map(MaxUnused::Bytes)
            .ok_or_else(|| invalid("too large"))
    }
}

impl<'de> Deserialize<'de> for MaxUnused {
    /// A string in restic's grammar, or a number: a share of the repository (0.0 ..= 1.0),
    /// as the C ABI took it before it took restic's strings.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Share(f64),
        }
        let parsed = match Raw::deserialize(deserializer)? {
            Raw::Text(text) => text.parse(),
            Raw::Share(share) => MaxUnused::Percent(share * 100.0).validate(),
        };
        parsed.map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn restic_spellings_parse() {
        assert_eq!("5%".parse::<MaxUnused>().unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(
            "2.5 %".parse::<MaxUnused>().unwrap(),
            MaxUnused::Percent(2.5)
        );
        assert_eq!("0".parse::<MaxUnused>().unwrap(), MaxUnused::Bytes(0));
        assert_eq!("0%".parse::<MaxUnused>().unwrap(), MaxUnused::Percent(0.0));
        assert_eq!(
            "10k".parse::<MaxUnused>().unwrap(),
            MaxUnused::Bytes(10 << 10)
        );
        assert_eq!(
            "500M".parse::<MaxUnused>().unwrap(),
            MaxUnused::Bytes(500 << 20)
        );
        assert_eq!(
            "1g".parse::<MaxUnused>().unwrap(),
            MaxUnused::Bytes(1 << 30)
        );
        assert_eq!(
            "2T".parse::<MaxUnused>().unwrap(),
            MaxUnused::Bytes(2 << 40)
        );
        assert_eq!(
            "unlimited".parse::<MaxUnused>().unwrap(),
            MaxUnused::Unlimited
        );
        for bad in [
            "",
            "%",
            "-1%",
            "101%",
            "NaN%",
            "inf%",
            "5x",
            "-3",
            "1.5G",
            "99999999999T",
        ] {
            let err = bad.parse::<MaxUnused>().unwrap_err();
            assert!(err.to_string().contains("--max-unused"), "{bad}: {err}");
        }
    }

    #[test]
    fn allowance_matches_restic() {
        // 5% of the size after prune: 1000 used bytes allow 52 unused (52 / 1052 < 5%).
        assert_eq!(MaxUnused::Percent(5.0).allowed_bytes(1000), 52);
        assert_eq!(MaxUnused::Percent(0.0).allowed_bytes(1000), 0);
        assert_eq!(MaxUnused::Percent(100.0).allowed_bytes(1000), u64::MAX);
        assert_eq!(MaxUnused::Bytes(7).allowed_bytes(1000), 7);
        assert_eq!(MaxUnused::Unlimited.allowed_bytes(0), u64::MAX);
    }

    #[test]
    fn json_takes_strings_and_shares() {
        let parse = |json: &str| serde_json::from_str::<MaxUnused>(json);
        assert_eq!(parse("\"5%\"").unwrap(), MaxUnused::Percent(5.0));
        assert_eq!(parse("\"0\"").unwrap(), MaxUnused::Bytes(0));
        assert_eq!(parse("0.25").unwrap(), MaxUnused::Percent(25.0));
        assert!(parse("1.5").is_err());
        assert!(parse("\"lots\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_never_panics(text in ".{0,24}") {
            let _ = text.parse::<MaxUnused>();
        }

        #[test]
        fn percent_allowance_keeps_the_share(p in 0.0f64..99.9, used in 0u64..1 << 50) {
            let allowed = MaxUnused::Percent(p).allowed_bytes(used);
            let total = used as f64 + allowed as f64;
            if total > 0.0 {
                prop_assert!(allowed as f64 / total <= p / 100.0 + 1e-9);
            }
        }

        #[test]
        fn sizes_round_trip(bytes in any::<u64>()) {
            prop_assert_eq!(bytes.to_string().parse::<MaxUnused>().unwrap(), MaxUnused::Bytes(bytes));
        }
    }
}
