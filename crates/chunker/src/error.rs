//! The chunker's one error type.

/// Errors raised by `cairn-chunker`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkerError {
    /// Occurs when chunker parameters are out of FastCDC's range, odd, or out of order.
    #[error("invalid chunker parameters (min {min}, avg {avg}, max {max}): {reason}")]
    InvalidParams {
        /// Requested minimum chunk size in bytes.
        min: usize,
        /// Requested average chunk size in bytes.
        avg: usize,
        /// Requested maximum chunk size in bytes.
        max: usize,
        /// Which rule the parameters broke.
        reason: &'static str,
    },
    /// Occurs when the underlying reader fails (other than `Interrupted`, which is retried).
    #[error("reading chunker input: {0}")]
    Io(#[from] std::io::Error),
}
