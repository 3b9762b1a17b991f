//! Request accounting: how many requests of each kind a run made, per file type, and the
//! bytes moved. On a remote store each request costs a round trip (10-50 ms), so this is
//! what an operator reads to see what a run cost, and what tests assert read-ahead and
//! coalescing against.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::FileType;

/// What a request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read a whole object or a range of one.
    Get,
    /// Wrote an object (create, overwrite, conditional replace).
    Put,
    /// Asked for an object's size and time.
    Head,
    /// Listed a directory.
    List,
    /// Deleted an object.
    Delete,
}

const OPS: usize = 5;
const TYPES: [FileType; 9] = FileType::ALL;

fn type_slot(file_type: FileType) -> usize {
    TYPES.iter().position(|t| *t == file_type).unwrap_or(0)
}

/// Live counters, shared by every clone of a [`super::Storage`].
#[derive(Debug, Default)]
pub(crate) struct RequestLog {
    count: [[AtomicU64; OPS]; TYPES.len()],
    bytes_read: [AtomicU64; TYPES.len()],
    bytes_written: [AtomicU64; TYPES.len()],
}

impl RequestLog {
    pub(crate) fn record(&self, file_type: FileType, op: Op) {
        self.count[type_slot(file_type)][op as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn read(&self, file_type: FileType, bytes: u64) {
        self.bytes_read[type_slot(file_type)].fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn written(&self, file_type: FileType, bytes: u64) {
        self.bytes_written[type_slot(file_type)].fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Requests {
        let mut out = Requests::default();
        for (slot, file_type) in TYPES.iter().enumerate() {
            let load = |op: Op| self.count[slot][op as usize].load(Ordering::Relaxed);
            let kind = RequestKind {
                kind: file_type.name().to_string(),
                get: load(Op::Get),
                put: load(Op::Put),
                head: load(Op::Head),
                list: load(Op::List),
                delete: load(Op::Delete),
                bytes_read: self.bytes_read[slot].load(Ordering::Relaxed),
                bytes_written: self.bytes_written[slot].load(Ordering::Relaxed),
            };
            if kind.total() > 0 {
                out.kinds.push(kind);
            }
        }
        out
    }
}

/// Requests made through one storage (and its clones) so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Requests {
    /// One entry per file type that saw any request, in a fixed order.
    pub kinds: Vec<RequestKind>,
}

/// The requests made for one file type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestKind {
    /// The file type's directory name ("data" for packs, "index", "snapshots", ...).
    pub kind: String,
    /// Reads of whole objects or ranges.
    pub get: u64,
    /// Writes.
    pub put: u64,
    /// Size and time queries.
    pub head: u64,
    /// Directory listings.
    pub list: u64,
    /// Deletions.
    pub delete: u64,
    /// Bytes received.
    pub bytes_read: u64,
    /// Bytes sent.
    pub bytes_written: u64,
}

impl RequestKind {
    /// Every request of this kind.
    pub fn total(&self) -> u64 {
        self.get + self.put + self.head + self.list + self.delete
    }
}

impl Requests {
    /// The entry for `file_type`, if it saw any request.
    pub fn of(&self, file_type: FileType) -> Option<&RequestKind> {
        self.kinds.iter().find(|k| k.kind == file_type.name())
    }

    /// Reads (GETs) of `file_type`.
    pub fn gets(&self, file_type: FileType) -> u64 {
        self.of(file_type).map_or(0, |k| k.get)
    }

    /// Every request of every kind.
    pub fn total(&self) -> u64 {
        self.kinds.iter().map(RequestKind::total).sum()
    }

    /// What was made since `earlier` (a snapshot of the same storage).
    pub fn since(&self, earlier: &Requests) -> Requests {
        let kinds = self
            .kinds
            .iter()
            .map(|now| {
                let before = earlier.kinds.iter().find(|k| k.kind == now.kind);
                let minus = |f: fn(&RequestKind) -> u64| f(now).saturating_sub(before.map_or(0, f));
                RequestKind {
                    kind: now.kind.clone(),
                    get: minus(|k| k.get),
                    put: minus(|k| k.put),
                    head: minus(|k| k.head),
                    list: minus(|k| k.list),
                    delete: minus(|k| k.delete),
                    bytes_read: minus(|k| k.bytes_read),
                    bytes_written: minus(|k| k.bytes_written),
                }
            })
            .filter(|k| k.total() > 0)
            .collect();
        Requests { kinds }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_type_and_differences_taken() {
        let log = RequestLog::default();
        log.record(FileType::Pack, Op::Get);
        log.read(FileType::Pack, 100);
        let before = log.snapshot();
        log.record(FileType::Pack, Op::Get);
        log.record(FileType::Index, Op::List);
        log.read(FileType::Pack, 50);
        let now = log.snapshot();
        assert_eq!(now.gets(FileType::Pack), 2);
        let since = now.since(&before);
        assert_eq!(since.gets(FileType::Pack), 1);
        assert_eq!(since.of(FileType::Pack).unwrap().bytes_read, 50);
        assert_eq!(since.of(FileType::Index).unwrap().list, 1);
        assert_eq!(since.total(), 2);
        assert!(since.of(FileType::Snapshot).is_none());
    }
}
