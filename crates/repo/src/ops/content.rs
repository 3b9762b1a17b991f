//! A file's content as a blocking `Read`, fetching its blobs one by one from a repository:
//! for consumers that want a reader (a chunker re-cutting a copy, a tar writer), called from
//! a blocking thread with a handle to the runtime.

use std::cell::RefCell;
use std::io::Read;

use cairn_pack::{BlobId, BlobType};

use crate::error::RepoError;
use crate::index::Index;
use crate::Repository;

/// Reads the concatenated plaintext of `ids`. A repository error is returned to the consumer
/// as an io error and kept in `error` (so callers can report the real one).
pub(crate) struct ContentReader<'a> {
    pub repo: &'a Repository,
    pub index: &'a Index,
    pub handle: &'a tokio::runtime::Handle,
    pub ids: std::slice::Iter<'a, BlobId>,
    pub current: Vec<u8>,
    pub offset: usize,
    pub error: &'a RefCell<Option<RepoError>>,
}

impl<'a> ContentReader<'a> {
    pub fn new(
        repo: &'a Repository,
        index: &'a Index,
        handle: &'a tokio::runtime::Handle,
        ids: &'a [BlobId],
        error: &'a RefCell<Option<RepoError>>,
    ) -> Self {
        ContentReader {
            repo,
            index,
            handle,
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
            match self
                .handle
                .block_on(self.repo.read_blob(self.index, BlobType::Data, id))
            {
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
