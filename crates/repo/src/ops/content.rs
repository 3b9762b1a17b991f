//! A file's content as a blocking `Read`, for consumers that want a reader (a chunker
//! re-cutting a copy, a tar writer) on a blocking thread. Its blobs come through
//! [`ReadAhead`], announced up front so they are read ahead while earlier ones are
//! consumed.

use std::cell::RefCell;
use std::io::Read;

use cairn_pack::{BlobId, BlobType};

use crate::blobs::ReadAhead;
use crate::error::RepoError;

/// Reads the concatenated plaintext of `ids`. A repository error is returned to the consumer
/// as an io error and kept in `error` (so callers can report the real one).
pub(crate) struct ContentReader<'a> {
    pub blobs: &'a ReadAhead,
    pub ids: std::slice::Iter<'a, BlobId>,
    pub current: Vec<u8>,
    pub offset: usize,
    pub error: &'a RefCell<Option<RepoError>>,
}

impl<'a> ContentReader<'a> {
    pub fn new(
        blobs: &'a ReadAhead,
        ids: &'a [BlobId],
        error: &'a RefCell<Option<RepoError>>,
    ) -> Self {
        blobs.prefetch(ids.iter().map(|id| (BlobType::Data, *id)));
        ContentReader {
            blobs,
            ids: ids.iter(),
            current: Vec::new(),
            offset: 0,
            error,
        }
    }
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.offset == self.current.len() {
            let Some(id) = self.ids.next() else {
                return Ok(0);
            };
            match self.blobs.read(BlobType::Data, id) {
                Ok(plain) => {
                    self.current = plain;
                    self.offset = 0;
                }
                Err(e) => {
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
