//! A file's content as a blocking `Read`, for consumers that want a reader (a chunker
//! re-cutting a copy, a tar writer) on a blocking thread. Its blobs come through
//! [`ReadAhead`], announced up front so they are read ahead while earlier ones are
//! consumed.

use std::cell::RefCell;
use std::io::Read;

use cairn_pack::{BlobId, BlobType};

use crate::blobs::ReadAhead;
use crate::error::RepoError;

/// Reads the concatenated plaintext of blobs handed over one at a time by `next` (`None`
/// at the end). A repository error is returned to the consumer as an io error and kept in
/// `error` (so callers can report the real one).
pub(crate) struct BlobChain<'a, F> {
    next: F,
    current: Vec<u8>,
    offset: usize,
    error: &'a RefCell<Option<RepoError>>,
}

impl<'a, F: FnMut() -> Option<Result<Vec<u8>, RepoError>>> BlobChain<'a, F> {
    /// Reads the blobs `next` hands over, in order.
    pub fn new(next: F, error: &'a RefCell<Option<RepoError>>) -> Self {
        BlobChain {
            next,
            current: Vec::new(),
            offset: 0,
            error,
        }
    }
}

/// The content of `ids` through [`ReadAhead`], announced up front so later blobs are read
/// while earlier ones are consumed.
pub(crate) fn content_reader<'a>(
    blobs: &'a ReadAhead,
    ids: &'a [BlobId],
    error: &'a RefCell<Option<RepoError>>,
) -> BlobChain<'a, impl FnMut() -> Option<Result<Vec<u8>, RepoError>> + 'a> {
    blobs.prefetch(ids.iter().map(|id| (BlobType::Data, *id)));
    let mut ids = ids.iter();
    BlobChain::new(
        move || ids.next().map(|id| blobs.read(BlobType::Data, id)),
        error,
    )
}

impl<F: FnMut() -> Option<Result<Vec<u8>, RepoError>>> Read for BlobChain<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.current.len() {
            match (self.next)() {
                None => return Ok(0),
                Some(Ok(plain)) => {
                    self.current = plain;
                    self.offset = 0;
                }
                Some(Err(e)) => {
                    let message = e.to_string();
                    *self.error.borrow_mut() = Some(e);
                    return Err(std::io::Error::other(message));
                }
            }
        }
        let n = buf.len().min(self.current.len() - self.offset);
        buf[..n].copy_from_slice(&self.current[self.offset..self.offset + n]);
        self.offset += n;
        Ok(n)
    }
}
