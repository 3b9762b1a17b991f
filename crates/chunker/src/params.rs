//! Chunk size parameters, validated once so the cut loop can trust them.

use crate::ChunkerError;

/// Smallest allowed minimum chunk size (FastCDC 2020's `MINIMUM_MIN`).
pub const MIN_SIZE_LOWER: usize = fastcdc::v2020::MINIMUM_MIN;
/// Largest allowed minimum chunk size (FastCDC 2020's `MINIMUM_MAX`).
pub const MIN_SIZE_UPPER: usize = fastcdc::v2020::MINIMUM_MAX;
/// Smallest allowed average chunk size (FastCDC 2020's `AVERAGE_MIN`).
pub const AVG_SIZE_LOWER: usize = fastcdc::v2020::AVERAGE_MIN;
/// Largest allowed average chunk size (FastCDC 2020's `AVERAGE_MAX`).
pub const AVG_SIZE_UPPER: usize = fastcdc::v2020::AVERAGE_MAX;
/// Smallest allowed maximum chunk size (FastCDC 2020's `MAXIMUM_MIN`).
pub const MAX_SIZE_LOWER: usize = fastcdc::v2020::MAXIMUM_MIN;
/// Largest allowed maximum chunk size (FastCDC 2020's `MAXIMUM_MAX`).
pub const MAX_SIZE_UPPER: usize = fastcdc::v2020::MAXIMUM_MAX;

/// Minimum, average and maximum chunk size of one repository.
///
/// Guarantees, once built by [`ChunkerParams::new`]: every size is even (FastCDC scans byte
/// pairs and silently shifts odd boundaries), within FastCDC 2020's ranges, and
/// `min < avg < max`. Parameters are never clamped or rounded: bad input is an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkerParams {
    min: usize,
    avg: usize,
    max: usize,
}

impl ChunkerParams {
    /// restic's sizes: 512 KiB / 1 MiB / 8 MiB.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min: 512 * 1024,
        avg: 1024 * 1024,
        max: 8 * 1024 * 1024,
    };

    /// Validates and builds parameters.
    ///
    /// # Errors
    /// [`ChunkerError::InvalidParams`] naming the first rule broken.
    pub fn new(min: usize, avg: usize, max: usize) -> Result<Self, ChunkerError> {
        let fail = |reason| {
            Err(ChunkerError::InvalidParams {
                min,
                avg,
                max,
                reason,
            })
        };
        if !(MIN_SIZE_LOWER..=MIN_SIZE_UPPER).contains(&min) {
            return fail("min must be between 64 B and 1 MiB");
        }
        if !(AVG_SIZE_LOWER..=AVG_SIZE_UPPER).contains(&avg) {
            return fail("avg must be between 256 B and 4 MiB");
        }
        if !(MAX_SIZE_LOWER..=MAX_SIZE_UPPER).contains(&max) {
            return fail("max must be between 1 KiB and 16 MiB");
        }
        if min % 2 != 0 || avg % 2 != 0 || max % 2 != 0 {
            return fail("sizes must be even");
        }
        if !(min < avg && avg < max) {
            return fail("sizes must satisfy min < avg < max");
        }
        Ok(ChunkerParams { min, avg, max })
    }

    /// Minimum chunk size in bytes; every chunk but a stream's last is at least this long.
    pub fn min(&self) -> usize {
        self.min
    }

    /// Target average chunk size in bytes.
    pub fn avg(&self) -> usize {
        self.avg
    }

    /// Maximum chunk size in bytes; no chunk is longer.
    pub fn max(&self) -> usize {
        self.max
    }
}

impl Default for ChunkerParams {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        let p = ChunkerParams::DEFAULT;
        assert_eq!(ChunkerParams::new(p.min, p.avg, p.max).unwrap(), p);
    }

    #[test]
    fn rejects_bad_params_without_clamping() {
        for (min, avg, max) in [
            (32, 1024, 4096),            // min too small
            (2 << 20, 4 << 20, 8 << 20), // min too large
            (64, 128, 4096),             // avg too small
            (64, 8 << 20, 16 << 20),     // avg too large
            (64, 512, 1000),             // max too small
            (64, 1024, 32 << 20),        // max too large
            (65, 1024, 4096),            // odd
            (64, 1024, 4095),            // odd
            (4096, 1024, 8192),          // min > avg
            (1024, 8192, 8192),          // avg == max
        ] {
            let err = ChunkerParams::new(min, avg, max).unwrap_err();
            assert!(
                matches!(err, ChunkerError::InvalidParams { .. }),
                "{min} {avg} {max}"
            );
            assert!(err.to_string().contains(&min.to_string()));
        }
    }
}
