//! Reading a file by its data extents: the holes of a sparse file (`SEEK_DATA`/`SEEK_HOLE`)
//! are handed out as zeros without being read. With the chunker's zero-run cut and the
//! saver's zero-chunk ids, a hole costs neither a read, a gear hash nor a BLAKE3 pass, so a
//! sparse volume image costs about its data, not its apparent size.
//!
//! The bytes produced are exactly the file's (holes read as zeros), so chunks and ids are
//! the same as from a plain read: sparse and dense copies of one image deduplicate.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;

use nix::errno::Errno;
use nix::unistd::{lseek, Whence};

/// What is known of the file from the current position on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Extent {
    /// Nothing yet: ask the file system at the current position.
    Unknown,
    /// Data up to `end` (exclusive).
    Data { end: u64 },
    /// A hole up to `end` (exclusive).
    Hole { end: u64 },
}

/// A `Read` over a file that skips reading its holes.
pub(crate) struct SparseReader {
    file: File,
    pos: u64,
    extent: Extent,
    /// False once the file system said it does not report extents: plain reads from then on.
    extents: bool,
}

impl SparseReader {
    /// Reads `file` from its start.
    pub fn new(file: File) -> Self {
        SparseReader {
            file,
            pos: 0,
            extent: Extent::Unknown,
            extents: true,
        }
    }

    /// Where the extent at the current position ends, and whether it is a hole.
    fn locate(&mut self) -> std::io::Result<Extent> {
        let all_data = Extent::Data { end: u64::MAX };
        let Ok(pos) = i64::try_from(self.pos) else {
            return Ok(all_data);
        };
        if !self.extents {
            return Ok(all_data);
        }
        match lseek(&self.file, pos, Whence::SeekData) {
            Ok(data) if data as u64 > self.pos => Ok(Extent::Hole { end: data as u64 }),
            Ok(_) => match lseek(&self.file, pos, Whence::SeekHole) {
                Ok(hole) if hole as u64 > self.pos => Ok(Extent::Data { end: hole as u64 }),
                // A race with a writer, or no answer: read until the next check.
                _ => Ok(all_data),
            },
            // No data at or after `pos`: a trailing hole up to the size, or the end.
            Err(Errno::ENXIO) => {
                let size = self.file.metadata()?.len();
                Ok(if self.pos < size {
                    Extent::Hole { end: size }
                } else {
                    all_data
                })
            }
            // The file system does not report extents (or the file is not seekable).
            Err(_) => {
                self.extents = false;
                Ok(all_data)
            }
        }
    }
}

impl Read for SparseReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.extent {
                Extent::Data { end } if self.pos < end => {
                    let want = buf
                        .len()
                        .min((end - self.pos).min(usize::MAX as u64) as usize);
                    let got = match self.file.read_at(&mut buf[..want], self.pos) {
                        Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                        other => other?,
                    };
                    if got == 0 && end != u64::MAX {
                        // Shorter than the extent said (truncated meanwhile): ask again.
                        self.extent = Extent::Unknown;
                        if self.pos >= self.file.metadata()?.len() {
                            return Ok(0);
                        }
                        continue;
                    }
                    self.pos += got as u64;
                    return Ok(got);
                }
                Extent::Hole { end } if self.pos < end => {
                    let n = buf
                        .len()
                        .min((end - self.pos).min(usize::MAX as u64) as usize);
                    buf[..n].fill(0);
                    self.pos += n as u64;
                    return Ok(n);
                }
                _ => self.extent = self.locate()?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    /// Where a test file has data: (offset, bytes); holes elsewhere.
    type Layout = Vec<(u64, Vec<u8>)>;

    /// Writes `layout` into a new file of `size` bytes.
    fn sparse_file(size: u64, layout: &Layout) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("image");
        let mut file = File::create(&path).unwrap();
        file.set_len(size).unwrap();
        for (offset, bytes) in layout {
            file.seek(SeekFrom::Start(*offset)).unwrap();
            file.write_all(bytes).unwrap();
        }
        (dir, path)
    }

    fn read_all(reader: &mut impl Read, step: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0xAAu8; step];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn reads_exactly_the_files_bytes_holes_as_zeros() {
        let mib = 1u64 << 20;
        let layouts: Vec<(u64, Layout)> = vec![
            (0, vec![]),
            (5 * mib, vec![]),
            (5 * mib, vec![(0, vec![1; 1000])]),
            (
                5 * mib,
                vec![(2 * mib, vec![2; 70_000]), (5 * mib - 10, vec![3; 10])],
            ),
            (
                9 * mib + 7,
                vec![(mib, vec![4; 5]), (3 * mib + 1, vec![5; mib as usize])],
            ),
        ];
        for (size, layout) in layouts {
            let (_dir, path) = sparse_file(size, &layout);
            let expected = std::fs::read(&path).unwrap();
            assert_eq!(expected.len() as u64, size);
            for step in [1usize << 16, 1 << 20, 12_345] {
                let mut reader = SparseReader::new(File::open(&path).unwrap());
                assert_eq!(
                    read_all(&mut reader, step),
                    expected,
                    "size {size}, step {step}"
                );
            }
        }
    }
}
