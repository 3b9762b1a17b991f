//! Index tables: the merged index as a sorted, fixed-width file in the local cache, mapped
//! rather than held in memory (docs/format.md#index-tables).
//!
//! A table is a derivative of the repository's index files, which stay the authority: it
//! names the index files it was built from, carries a MAC under a key derived from the
//! repository's data key, and is checked whole before it is mapped. A table that fails any
//! check is deleted and rebuilt from the (authenticated) index files; deleting every table
//! loses nothing.
//!
//! Layout (integers little-endian; `n` slots, `p` packs, `c` covered index files, `2^b`
//! filter partitions):
//! ```text
//! slots      n × 48   id [32] ‖ pack number u32 (top bit: tree) ‖ offset ‖ stored ‖ plain
//! fanout     65 537 × u32: first slot whose id's 16-bit prefix is ≥ i
//! packs      p × 32   pack ids, by pack number
//! covered    c × 32   the index files this table lists, sorted
//! partitions 2^b × 36 filter descriptor [20] ‖ offset u64 ‖ length u64 (see below)
//! filters    binary fuse fingerprints of every partition, concatenated
//! footer     "CAIRNIT1" ‖ n u64 ‖ p u64 ‖ c u64 ‖ filter bytes u64 ‖ b u32 ‖ zero u32
//! mac        keyed BLAKE3 of everything before it
//! ```
//! Slots are sorted by id with no id twice. Partition `i` holds the ids whose top `b` bits
//! are `i`, filtered on bytes 8..16 of the id; a length of 0 means the partition is empty,
//! `u64::MAX` that it has no filter (every lookup goes to the slots).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_pack::PackId;
use memmap2::Mmap;
use xorf::{BinaryFuse8, BinaryFuse8Ref, DmaSerializable, Filter, FilterRef};

use super::{prefix16, Slot};
use crate::error::{RepoError, Result};
use crate::object::{FileId, IndexId};

/// Bytes per slot.
pub(crate) const SLOT_LEN: usize = 48;
const FANOUT_LEN: usize = 65_537;
const MAGIC: &[u8; 8] = b"CAIRNIT1";
const FOOTER_LEN: usize = 48;
const MAC_LEN: usize = 32;
const DESCRIPTOR_LEN: usize = 20;
const PARTITION_LEN: usize = DESCRIPTOR_LEN + 16;
const EMPTY: u64 = 0;
const UNFILTERED: u64 = u64::MAX;
/// Ids per filter partition aimed at: binary fuse filters are compact from about this many
/// keys up, and building one needs about 25 bytes per key.
const KEYS_PER_PARTITION: u64 = 1 << 16;
const MAX_PARTITION_BITS: u32 = 8;

/// The MAC key of index tables, derived from the repository's data key.
pub(crate) fn table_key(data_key: &[u8; 32]) -> zeroize::Zeroizing<[u8; 32]> {
    zeroize::Zeroizing::new(blake3::derive_key(
        "cairn 2026-12 index table mac",
        data_key,
    ))
}

fn partition_bits(expected: u64) -> u32 {
    let mut bits = 0;
    while bits < MAX_PARTITION_BITS && (expected >> (bits + 1)) >= KEYS_PER_PARTITION {
        bits += 1;
    }
    bits
}

fn partition_of(id: &[u8], bits: u32) -> usize {
    if bits == 0 {
        0
    } else {
        (id[0] >> (8 - bits)) as usize
    }
}

fn filter_key(id: &[u8]) -> u64 {
    u64::from_le_bytes(id[8..16].try_into().expect("8 bytes"))
}

/// Everything written goes through the MAC.
struct MacWriter {
    out: BufWriter<File>,
    mac: blake3::Hasher,
}

impl MacWriter {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.mac.update(bytes);
        self.out.write_all(bytes)
    }
}

/// Writes one table from slots given in strictly increasing id order, in bounded memory
/// (the fanout, one partition's filter keys, and a buffer).
pub(crate) struct TableWriter {
    dir: PathBuf,
    file: MacWriter,
    temp: tempfile::TempPath,
    slots: u64,
    counts: Vec<u32>,
    bits: u32,
    partition: usize,
    keys: Vec<u64>,
    partitions: Vec<[u8; PARTITION_LEN]>,
    fingerprints: BufWriter<File>,
    fingerprint_bytes: u64,
    last: Option<[u8; 32]>,
}

impl TableWriter {
    /// Starts a table in `dir` for about `expected` slots (which sizes its filter partitions).
    pub(crate) fn create(dir: &Path, key: &[u8; 32], expected: u64) -> Result<TableWriter> {
        let io = |e| RepoError::io(dir, e);
        let (file, temp) = tempfile::Builder::new()
            .prefix(".table-")
            .tempfile_in(dir)
            .map_err(io)?
            .into_parts();
        let fingerprints = tempfile::tempfile_in(dir).map_err(io)?;
        let bits = partition_bits(expected);
        Ok(TableWriter {
            dir: dir.to_path_buf(),
            file: MacWriter {
                out: BufWriter::with_capacity(1 << 20, file),
                mac: blake3::Hasher::new_keyed(key),
            },
            temp,
            slots: 0,
            counts: vec![0; FANOUT_LEN],
            bits,
            partition: 0,
            keys: Vec::new(),
            partitions: Vec::with_capacity(1 << bits),
            fingerprints: BufWriter::with_capacity(1 << 20, fingerprints),
            fingerprint_bytes: 0,
            last: None,
        })
    }

    /// Appends a slot; ids must strictly increase.
    pub(crate) fn push(&mut self, slot: &Slot) -> Result<()> {
        if self.last.is_some_and(|last| last >= slot.id) {
            return Err(RepoError::InvalidInput(
                "index table slots out of order".into(),
            ));
        }
        self.last = Some(slot.id);
        let partition = partition_of(&slot.id, self.bits);
        while self.partition < partition {
            self.close_partition()?;
        }
        self.keys.push(filter_key(&slot.id));
        self.counts[prefix16(&slot.id) + 1] += 1;
        self.slots += 1;
        let bytes = slot.to_bytes();
        self.file
            .put(&bytes)
            .map_err(|e| RepoError::io(&self.dir, e))
    }

    /// Builds the filter of the current partition and moves to the next.
    fn close_partition(&mut self) -> Result<()> {
        let mut entry = [0u8; PARTITION_LEN];
        let mut keys = std::mem::take(&mut self.keys);
        keys.sort_unstable();
        keys.dedup();
        let length = if keys.is_empty() {
            EMPTY
        } else {
            // Construction fails only for degenerate key sets; the partition then goes
            // unfiltered, which costs lookups time, never correctness.
            match BinaryFuse8::try_from(&keys) {
                Ok(filter) => {
                    filter.dma_copy_descriptor_to(&mut entry[..DESCRIPTOR_LEN]);
                    let fingerprints = filter.dma_fingerprints();
                    self.fingerprints
                        .write_all(fingerprints)
                        .map_err(|e| RepoError::io(&self.dir, e))?;
                    fingerprints.len() as u64
                }
                Err(_) => UNFILTERED,
            }
        };
        let offset = if length == EMPTY || length == UNFILTERED {
            0
        } else {
            let at = self.fingerprint_bytes;
            self.fingerprint_bytes += length;
            at
        };
        entry[DESCRIPTOR_LEN..DESCRIPTOR_LEN + 8].copy_from_slice(&offset.to_le_bytes());
        entry[DESCRIPTOR_LEN + 8..].copy_from_slice(&length.to_le_bytes());
        self.partitions.push(entry);
        self.partition += 1;
        keys.clear();
        self.keys = keys;
        Ok(())
    }

    /// Writes the rest of the table and renames it into place as `path`.
    ///
    /// `packs` are the pack ids by pack number; `covered` the index files listed.
    pub(crate) fn finish(
        mut self,
        packs: impl IntoIterator<Item = Result<PackId>>,
        covered: &[IndexId],
        path: &Path,
    ) -> Result<()> {
        while self.partition < (1 << self.bits) {
            self.close_partition()?;
        }
        let io = |e| RepoError::io(path, e);
        let mut sum = 0u32;
        for count in &self.counts {
            sum += count;
            self.file.put(&sum.to_le_bytes()).map_err(io)?;
        }
        let mut pack_count = 0u64;
        for pack in packs {
            self.file.put(pack?.as_bytes()).map_err(io)?;
            pack_count += 1;
        }
        let mut covered: Vec<[u8; 32]> = covered.iter().map(index_id_bytes).collect();
        covered.sort_unstable();
        for id in &covered {
            self.file.put(id).map_err(io)?;
        }
        for entry in std::mem::take(&mut self.partitions) {
            self.file.put(&entry).map_err(io)?;
        }
        let mut fingerprints = self
            .fingerprints
            .into_inner()
            .map_err(|e| io(e.into_error()))?;
        fingerprints.seek(SeekFrom::Start(0)).map_err(io)?;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let read = fingerprints.read(&mut buffer).map_err(io)?;
            if read == 0 {
                break;
            }
            self.file.put(&buffer[..read]).map_err(io)?;
        }
        let mut footer = [0u8; FOOTER_LEN];
        footer[..8].copy_from_slice(MAGIC);
        footer[8..16].copy_from_slice(&self.slots.to_le_bytes());
        footer[16..24].copy_from_slice(&pack_count.to_le_bytes());
        footer[24..32].copy_from_slice(&(covered.len() as u64).to_le_bytes());
        footer[32..40].copy_from_slice(&self.fingerprint_bytes.to_le_bytes());
        footer[40..44].copy_from_slice(&self.bits.to_le_bytes());
        self.file.put(&footer).map_err(io)?;
        let mac = *self.file.mac.finalize().as_bytes();
        self.file.out.write_all(&mac).map_err(io)?;
        self.file.out.flush().map_err(io)?;
        self.temp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

fn index_id_bytes(id: &IndexId) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // Index ids are 64 hex digits by construction (`FileId::from_name` checks it).
    hex::decode_to_slice(id.as_str(), &mut bytes).expect("index ids are 64 hex digits");
    bytes
}

/// Where each section of a table starts, from its footer.
#[derive(Clone, Copy, Debug)]
struct Sections {
    slots: usize,
    packs: usize,
    covered: usize,
    bits: u32,
    fanout_at: usize,
    packs_at: usize,
    covered_at: usize,
    partitions_at: usize,
    fingerprints_at: usize,
    fingerprint_bytes: usize,
    footer_at: usize,
}

impl Sections {
    fn read(file: &File, path: &Path) -> Result<Sections> {
        let bad = |reason: &str| RepoError::corrupt(path.display().to_string(), reason);
        let len = file.metadata().map_err(|e| RepoError::io(path, e))?.len();
        let len = usize::try_from(len).map_err(|_| bad("too large"))?;
        if len < FOOTER_LEN + MAC_LEN {
            return Err(bad("truncated"));
        }
        let footer_at = len - FOOTER_LEN - MAC_LEN;
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, footer_at as u64)
            .map_err(|e| RepoError::io(path, e))?;
        if &footer[..8] != MAGIC {
            return Err(bad("not an index table"));
        }
        let word = |at: usize| u64::from_le_bytes(footer[at..at + 8].try_into().expect("8"));
        let bits = u32::from_le_bytes(footer[40..44].try_into().expect("4"));
        if bits > MAX_PARTITION_BITS {
            return Err(bad("too many filter partitions"));
        }
        let size = |n: u64, each: usize| {
            usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(each))
                .ok_or_else(|| bad("section too large"))
        };
        let slot_bytes = size(word(8), SLOT_LEN)?;
        let pack_bytes = size(word(16), 32)?;
        let covered_bytes = size(word(24), 32)?;
        let fingerprint_bytes = size(word(32), 1)?;
        let fanout_at = slot_bytes;
        let packs_at = fanout_at + FANOUT_LEN * 4;
        let covered_at = packs_at
            .checked_add(pack_bytes)
            .ok_or_else(|| bad("size"))?;
        let partitions_at = covered_at
            .checked_add(covered_bytes)
            .ok_or_else(|| bad("size"))?;
        let fingerprints_at = partitions_at + (PARTITION_LEN << bits);
        if fingerprints_at.checked_add(fingerprint_bytes) != Some(footer_at) {
            return Err(bad("sections do not add up to the file's length"));
        }
        Ok(Sections {
            slots: slot_bytes / SLOT_LEN,
            packs: pack_bytes / 32,
            covered: covered_bytes / 32,
            bits,
            fanout_at,
            packs_at,
            covered_at,
            partitions_at,
            fingerprints_at,
            fingerprint_bytes,
            footer_at,
        })
    }

    fn covered(&self, file: &File, path: &Path) -> Result<Vec<IndexId>> {
        let mut bytes = vec![0u8; self.covered * 32];
        file.read_exact_at(&mut bytes, self.covered_at as u64)
            .map_err(|e| RepoError::io(path, e))?;
        bytes
            .chunks_exact(32)
            .map(|id| {
                IndexId::from_name(&hex::encode(id)).ok_or_else(|| {
                    RepoError::corrupt(path.display().to_string(), "bad index file id")
                })
            })
            .collect()
    }
}

/// The index files a table at `path` says it covers, read without checking its MAC (for
/// choosing tables; [`Table::open`] checks everything before a table is used).
pub(crate) fn peek_covered(path: &Path) -> Result<Vec<IndexId>> {
    let file = File::open(path).map_err(|e| RepoError::io(path, e))?;
    Sections::read(&file, path)?.covered(&file, path)
}

#[derive(Clone, Copy, Debug)]
enum Partition {
    Empty,
    Unfiltered,
    Filtered {
        descriptor: [u8; DESCRIPTOR_LEN],
        start: usize,
        len: usize,
    },
}

/// One index table, checked and mapped.
pub(crate) struct Table {
    path: PathBuf,
    file: File,
    map: Mmap,
    sections: Sections,
    fanout: Vec<u32>,
    covered: Vec<IndexId>,
    partitions: Vec<Partition>,
    /// Lookups since the mapping's pages were last released.
    lookups: AtomicU64,
}

/// Lookups between releases of a table's resident pages. A lookup touches up to five pages
/// (three of the filter, two of slots), but the kernel maps 64 KiB around each page it
/// faults in when the file is in the page cache (`fault_around_bytes`), so a lookup can add
/// ~320 KiB to the resident size (measured: ~100 KiB on average). Releasing every 8192
/// lookups bounds a table's share (under 1 GiB whatever its size); each release makes the
/// next lookups fault their pages in again, which is what it costs (releasing every 512
/// lookups, check of 20 M blobs took three times as long). Passes that look every blob up
/// read slots with `pread` instead ([`Table::find_by_reading`]), leaving nothing resident.
const RELEASE_EVERY: u64 = 8192;

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("path", &self.path)
            .field("slots", &self.sections.slots)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens the table at `path`: checks its MAC under `key` by reading it once through
    /// (never through the mapping, so the check leaves nothing resident), then maps it.
    ///
    /// # Errors
    /// [`RepoError::Corrupt`] naming the file if it is not a whole, authentic table.
    pub(crate) fn open(path: &Path, key: &[u8; 32]) -> Result<Table> {
        let io = |e| RepoError::io(path, e);
        let bad = |reason: &str| RepoError::corrupt(path.display().to_string(), reason);
        let file = File::open(path).map_err(io)?;
        let sections = Sections::read(&file, path)?;
        let mac_at = sections.footer_at + FOOTER_LEN;
        let mut mac = blake3::Hasher::new_keyed(key);
        let mut buffer = vec![0u8; 1 << 20];
        let mut at = 0;
        while at < mac_at {
            let take = buffer.len().min(mac_at - at);
            file.read_exact_at(&mut buffer[..take], at as u64)
                .map_err(io)?;
            mac.update(&buffer[..take]);
            at += take;
        }
        let mut stored = [0u8; MAC_LEN];
        file.read_exact_at(&mut stored, mac_at as u64).map_err(io)?;
        if mac.finalize() != blake3::Hash::from_bytes(stored) {
            return Err(bad("MAC does not match (a damaged or foreign table)"));
        }
        let mut fanout_bytes = vec![0u8; FANOUT_LEN * 4];
        file.read_exact_at(&mut fanout_bytes, sections.fanout_at as u64)
            .map_err(io)?;
        let fanout: Vec<u32> = fanout_bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4")))
            .collect();
        if fanout.windows(2).any(|w| w[0] > w[1])
            || fanout[0] != 0
            || fanout[FANOUT_LEN - 1] as usize != sections.slots
        {
            return Err(bad("fanout does not match the slots"));
        }
        let covered = sections.covered(&file, path)?;
        let mut directory = vec![0u8; PARTITION_LEN << sections.bits];
        file.read_exact_at(&mut directory, sections.partitions_at as u64)
            .map_err(io)?;
        let partitions = directory
            .chunks_exact(PARTITION_LEN)
            .map(|entry| {
                parse_partition(entry, &sections).ok_or_else(|| bad("filter out of range"))
            })
            .collect::<Result<Vec<_>>>()?;
        let map = super::mapped::map_read_only(&file).map_err(io)?;
        if map.len() != mac_at + MAC_LEN {
            return Err(bad("changed while opened"));
        }
        Ok(Table {
            path: path.to_path_buf(),
            file,
            map,
            sections,
            fanout,
            covered,
            partitions,
            lookups: AtomicU64::new(0),
        })
    }

    /// Number of slots.
    pub(crate) fn len(&self) -> usize {
        self.sections.slots
    }

    /// Number of packs.
    pub(crate) fn pack_count(&self) -> usize {
        self.sections.packs
    }

    /// The index files this table was built from.
    pub(crate) fn covered(&self) -> &[IndexId] {
        &self.covered
    }

    /// Where the table lives.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of the heap this table holds (the mapping is not counted: it is paged in on
    /// demand and its clean pages are the kernel's to drop).
    pub(crate) fn memory_bytes(&self) -> usize {
        self.fanout.capacity() * 4
            + self.covered.capacity() * (std::mem::size_of::<IndexId>() + 64)
            + self.partitions.capacity() * std::mem::size_of::<Partition>()
    }

    fn maybe_contains(&self, id: &[u8; 32]) -> bool {
        match self.partitions[partition_of(id, self.sections.bits)] {
            Partition::Empty => false,
            Partition::Unfiltered => true,
            Partition::Filtered {
                descriptor,
                start,
                len,
            } => BinaryFuse8Ref::from_dma(&descriptor, &self.map[start..start + len])
                .contains(&filter_key(id)),
        }
    }

    /// Counts a lookup through the mapping, releasing its resident pages every
    /// [`RELEASE_EVERY`] lookups.
    fn count_lookup(&self) {
        if self.lookups.fetch_add(1, Ordering::Relaxed) % RELEASE_EVERY == RELEASE_EVERY - 1 {
            super::mapped::release_resident(&self.map);
        }
    }

    fn id_at(&self, i: usize) -> &[u8] {
        &self.map[i * SLOT_LEN..i * SLOT_LEN + 32]
    }

    /// The slot number holding `id`, if any. Touches the slots only when the filter says
    /// the id may be present.
    pub(crate) fn find(&self, id: &[u8; 32]) -> Option<usize> {
        self.count_lookup();
        if !self.maybe_contains(id) {
            return None;
        }
        let p = prefix16(id);
        let (mut lo, mut hi) = (self.fanout[p] as usize, self.fanout[p + 1] as usize);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.id_at(mid).cmp(&id[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Like [`Table::find`], returning the slot itself, but reading the bucket of slots
    /// with one `pread` rather than through the mapping: for passes that look up every blob
    /// of a repository (check), which would otherwise fault the whole table in. The filter
    /// is still probed through the mapping, and released like every lookup's pages.
    pub(crate) fn find_by_reading(&self, id: &[u8; 32]) -> Result<Option<(usize, Slot)>> {
        // The filter is still probed through the mapping: its pages are released too.
        self.count_lookup();
        if !self.maybe_contains(id) {
            return Ok(None);
        }
        let p = prefix16(id);
        let (start, end) = (self.fanout[p] as usize, self.fanout[p + 1] as usize);
        let mut bucket = vec![0u8; (end - start) * SLOT_LEN];
        self.file
            .read_exact_at(&mut bucket, (start * SLOT_LEN) as u64)
            .map_err(|e| RepoError::io(&self.path, e))?;
        let (mut lo, mut hi) = (0, end - start);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let slot = &bucket[mid * SLOT_LEN..(mid + 1) * SLOT_LEN];
            match slot[..32].cmp(&id[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => {
                    return Ok(Some((start + mid, Slot::from_bytes(slot))))
                }
            }
        }
        Ok(None)
    }

    /// Slot number `i` (< [`Table::len`]).
    pub(crate) fn slot(&self, i: usize) -> Slot {
        Slot::from_bytes(&self.map[i * SLOT_LEN..(i + 1) * SLOT_LEN])
    }

    /// Pack number `n`, or `None` past the end.
    pub(crate) fn pack(&self, n: usize) -> Option<PackId> {
        (n < self.sections.packs).then(|| {
            let at = self.sections.packs_at + n * 32;
            PackId(self.map[at..at + 32].try_into().expect("32"))
        })
    }

    /// Reads the slots in order through the file (not the mapping, so a pass over a large
    /// table leaves nothing resident).
    pub(crate) fn read_slots(&self) -> Result<SlotReader> {
        SlotReader::new(&self.path, self.sections.slots, 0)
    }

    /// Reads the pack ids in order through the file.
    pub(crate) fn read_packs(&self) -> Result<impl Iterator<Item = Result<PackId>>> {
        let mut reader = SlotReader::with_width(
            &self.path,
            self.sections.packs,
            self.sections.packs_at as u64,
            32,
        )?;
        Ok(std::iter::from_fn(move || {
            reader
                .next_bytes()
                .map(|bytes| bytes.map(|b| PackId(b.try_into().expect("32"))))
        }))
    }
}

fn parse_partition(entry: &[u8], sections: &Sections) -> Option<Partition> {
    let offset = u64::from_le_bytes(entry[DESCRIPTOR_LEN..DESCRIPTOR_LEN + 8].try_into().ok()?);
    let length = u64::from_le_bytes(entry[DESCRIPTOR_LEN + 8..].try_into().ok()?);
    Some(match length {
        EMPTY => Partition::Empty,
        UNFILTERED => Partition::Unfiltered,
        _ => {
            let start = usize::try_from(offset).ok()?;
            let len = usize::try_from(length).ok()?;
            if start.checked_add(len)? > sections.fingerprint_bytes
                || !descriptor_fits(&entry[..DESCRIPTOR_LEN], len)
            {
                return None;
            }
            Partition::Filtered {
                descriptor: entry[..DESCRIPTOR_LEN].try_into().ok()?,
                start: sections.fingerprints_at + start,
                len,
            }
        }
    })
}

/// True if every probe a binary fuse filter with this descriptor makes stays within `len`
/// fingerprints (xorf indexes its fingerprints unchecked by the descriptor: a table whose MAC
/// holds but whose content is wrong must still not make a lookup panic). Probes fall in
/// segments `k`, `k + 1` and `k + 2` of a power-of-two segment length, `k` below the segment
/// count.
fn descriptor_fits(descriptor: &[u8], len: usize) -> bool {
    let word = |at: usize| u32::from_le_bytes(descriptor[at..at + 4].try_into().expect("4"));
    let (segment, mask, count_length) = (word(8), word(12), word(16));
    segment.is_power_of_two()
        && mask == segment - 1
        && count_length % segment == 0
        && u64::from(count_length) + 2 * u64::from(segment) <= len as u64
        && u64::from(count_length) + 2 * u64::from(segment) <= u64::from(u32::MAX)
}

/// Fixed-width records read in order through a file, a buffer at a time.
pub(crate) struct SlotReader {
    file: File,
    path: PathBuf,
    width: usize,
    left: usize,
    at: u64,
    buffer: Vec<u8>,
    pos: usize,
}

impl SlotReader {
    fn new(path: &Path, count: usize, at: u64) -> Result<SlotReader> {
        Self::with_width(path, count, at, SLOT_LEN)
    }

    fn with_width(path: &Path, count: usize, at: u64, width: usize) -> Result<SlotReader> {
        Ok(SlotReader {
            file: File::open(path).map_err(|e| RepoError::io(path, e))?,
            path: path.to_path_buf(),
            width,
            left: count,
            at,
            buffer: Vec::new(),
            pos: 0,
        })
    }

    fn next_bytes(&mut self) -> Option<Result<&[u8]>> {
        if self.pos == self.buffer.len() {
            if self.left == 0 {
                return None;
            }
            let take = self.left.min((256 << 10) / self.width);
            self.buffer.resize(take * self.width, 0);
            if let Err(e) = self.file.read_exact_at(&mut self.buffer, self.at) {
                self.left = 0;
                self.buffer.clear();
                self.pos = 0;
                return Some(Err(RepoError::io(&self.path, e)));
            }
            self.at += self.buffer.len() as u64;
            self.left -= take;
            self.pos = 0;
        }
        let record = &self.buffer[self.pos..self.pos + self.width];
        self.pos += self.width;
        Some(Ok(record))
    }
}

impl Iterator for SlotReader {
    type Item = Result<Slot>;

    fn next(&mut self) -> Option<Result<Slot>> {
        self.next_bytes().map(|bytes| bytes.map(Slot::from_bytes))
    }
}
