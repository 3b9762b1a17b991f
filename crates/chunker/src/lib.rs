//! Keyed, streaming content-defined chunking for cairn (FastCDC 2020, normalization level 1).
//!
//! A [`Chunker`] pairs validated [`ChunkerParams`] with a [`GearTable`] derived from the
//! repository's [`ChunkerSecret`]. It cuts in-memory data ([`Chunker::chunks`]) or any
//! [`std::io::Read`] ([`Chunker::stream`]); both find exactly the same cut points, and with
//! [`GearTable::canonical`] they are exactly the `fastcdc` crate's `v2020::FastCDC` cut points.
//!
//! The scan loop itself is `fastcdc::v2020::cut_gear`; this crate supplies the keyed table,
//! the parameter checks and a zero-copy streaming buffer. It does no other I/O.
//!
//! Layout and constants: docs/format.md#chunking.

#![warn(missing_docs)]
mod cut;
mod error;
mod gear;
mod guided;
mod params;
mod stream;

pub use cut::{is_zero, Chunk, Chunker, SliceChunks};
pub use error::ChunkerError;
pub use gear::{ChunkerSecret, GearTable, GEAR_CONTEXT};
pub use guided::Guided;
pub use params::{
    ChunkerParams, AVG_SIZE_LOWER, AVG_SIZE_UPPER, MAX_SIZE_LOWER, MAX_SIZE_UPPER, MIN_SIZE_LOWER,
    MIN_SIZE_UPPER,
};
pub use stream::{StreamChunk, StreamChunker};
