//! The blob path of a backup: id → dedup → encode → pack → hand to the uploader.
//!
//! Callers on any thread hand chunks in; encoding runs on a thread pool of its own, bounded
//! by an in-flight limit so memory stays flat however large the input is. Finished packs go
//! to the async uploader through a bounded channel, which is the backpressure from storage.
//!
//! Why a pool of its own: the walker reads files on rayon's global pool, and a walker
//! thread waiting for an encode slot used to run other queued work meanwhile (it must not
//! block the pool its encodes run on) — which could be the next file, and the next, each
//! with its own read buffer: memory then grew with how deep those waits nested. With
//! encodes elsewhere, a walker thread simply waits, so at most one file per walker thread
//! is being read. A chunk to encode is copied out of the reader's buffer (a copy at memory
//! speed, next to compression at a few hundred MB/s), so encodes in flight never keep a
//! file's whole read buffer alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cairn_pack::{
    BlobEncoder, BlobId, BlobType, EncodedBlob, FinishedPack, MasterKeys, PackWriter,
};
use tokio::sync::mpsc::Sender;

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::ops::progress::CancelToken;

const SEEN_SHARDS: usize = 16;

/// Blob counters for the snapshot summary.
#[derive(Debug, Default)]
pub(crate) struct BlobStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    pub data_added: AtomicU64,
    pub data_added_packed: AtomicU64,
}

pub(crate) struct Saver {
    keys: Arc<MasterKeys>,
    encoder: BlobEncoder,
    index: Arc<Index>,
    seen: Vec<Mutex<super::seen::SeenIds>>,
    /// Ids of all-zero chunks by length: holes and zeroed regions yield the same few
    /// chunks over and over, hashed once each.
    zero_ids: Mutex<HashMap<usize, BlobId>>,
    packers: [Mutex<PackWriter>; 2],
    pack_size: usize,
    uploads: Mutex<Option<Sender<FinishedPack>>>,
    failure: Mutex<Option<RepoError>>,
    failed: AtomicBool,
    in_flight: Mutex<usize>,
    in_flight_changed: Condvar,
    in_flight_limit: usize,
    /// Worker threads the memory budget allows (file readers; as many encoders).
    threads: usize,
    pending_encodes: AtomicUsize,
    encoders: rayon::ThreadPool,
    pub stats: BlobStats,
    pub cancel: CancelToken,
}

impl Saver {
    pub fn new(
        keys: Arc<MasterKeys>,
        encoder: BlobEncoder,
        index: Arc<Index>,
        pack_size: usize,
        uploads: Sender<FinishedPack>,
        cancel: CancelToken,
        threads: usize,
    ) -> Result<Arc<Saver>> {
        let writer =
            || PackWriter::new(pack_size).map_err(|e| RepoError::InvalidInput(e.to_string()));
        let encoders = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("cairn-encode-{i}"))
            .build()
            .map_err(|source| RepoError::Internal {
                what: "starting the encoder threads".into(),
                source: Box::new(source),
            })?;
        Ok(Arc::new(Saver {
            keys,
            encoder,
            index,
            seen: (0..SEEN_SHARDS)
                .map(|_| Mutex::new(super::seen::SeenIds::default()))
                .collect(),
            zero_ids: Mutex::new(HashMap::new()),
            packers: [Mutex::new(writer()?), Mutex::new(writer()?)],
            pack_size,
            uploads: Mutex::new(Some(uploads)),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            in_flight: Mutex::new(0),
            in_flight_changed: Condvar::new(),
            // One chunk per encoder thread, and one waiting for each: enough to keep the
            // encoders busy, each chunk (up to the maximum chunk size) held once.
            in_flight_limit: 2 * threads,
            threads,
            pending_encodes: AtomicUsize::new(0),
            encoders,
            stats: BlobStats::default(),
            cancel,
        }))
    }

    /// Records the first fatal error; later operations stop.
    pub fn fail(&self, error: RepoError) {
        let mut slot = self.failure.lock().expect("failure lock");
        if slot.is_none() {
            *slot = Some(error);
        }
        self.failed.store(true, Ordering::SeqCst);
    }

    /// Errors out if a fatal error happened elsewhere or the operation was cancelled.
    pub fn check(&self) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(RepoError::InvalidInput(
                "backup aborted after an earlier error".into(),
            ));
        }
        if self.cancel.is_cancelled() {
            return Err(RepoError::Cancelled);
        }
        Ok(())
    }

    /// The first fatal error, if any.
    pub fn take_failure(&self) -> Option<RepoError> {
        self.failure.lock().expect("failure lock").take()
    }

    /// True if this blob must be stored: not in the index and not claimed before in this
    /// session (by any thread).
    fn claim(&self, id: &BlobId) -> bool {
        if self.index.contains(id) {
            return false;
        }
        let shard = &self.seen[id.0[0] as usize % SEEN_SHARDS];
        shard.lock().expect("seen lock").insert(*id)
    }

    /// Stores a blob on the calling thread (small files, trees).
    pub fn save_now(&self, blob_type: BlobType, data: &[u8]) -> Result<BlobId> {
        self.check()?;
        let id = self.keys.blob_id(data);
        if self.claim(&id) {
            let encoded = self
                .encoder
                .encode_with_id(&self.keys, blob_type, id, data)
                .map_err(|source| RepoError::Pack {
                    object: format!("{blob_type} blob {id}"),
                    source,
                })?;
            self.pack(encoded)?;
        }
        Ok(id)
    }

    /// Stores a data chunk, encoding it on rayon in the background. Waits while too many
    /// chunks are in flight.
    pub fn save_chunk(self: &Arc<Self>, data: Bytes) -> Result<BlobId> {
        self.check()?;
        let id = self.data_id(&data);
        if !self.claim(&id) {
            return Ok(id);
        }
        self.acquire_slot();
        // Its own copy: the view would keep the reader's whole buffer alive until encoded.
        let data = Bytes::copy_from_slice(&data);
        let this = Arc::clone(self);
        self.encoders.spawn(move || {
            let result = this
                .encoder
                .encode_with_id(&this.keys, BlobType::Data, id, &data)
                .map_err(|source| RepoError::Pack {
                    object: format!("data blob {id}"),
                    source,
                })
                .and_then(|encoded| this.pack(encoded));
            if let Err(e) = result {
                this.fail(e);
            }
            this.release_slot();
        });
        Ok(id)
    }

    /// The keyed id of a data chunk; an all-zero chunk's is computed once per length. The
    /// zero test stops at the first non-zero 4 KiB block, so other data pays one block.
    pub fn data_id(&self, data: &[u8]) -> BlobId {
        const MOST_ZERO_LENGTHS: usize = 64;
        if data.len() < 4096 || !cairn_chunker::is_zero(data) {
            return self.keys.blob_id(data);
        }
        let mut known = self.zero_ids.lock().expect("zero ids lock");
        if let Some(id) = known.get(&data.len()) {
            return *id;
        }
        let id = self.keys.blob_id(data);
        if known.len() < MOST_ZERO_LENGTHS {
            known.insert(data.len(), id);
        }
        id
    }

    /// Waits for an encode slot. Never called on an encoder thread (encodes run on their
    /// own pool), so waiting cannot starve the work that frees a slot.
    fn acquire_slot(&self) {
        self.pending_encodes.fetch_add(1, Ordering::SeqCst);
        let mut count = self.in_flight.lock().expect("in-flight lock");
        while *count >= self.in_flight_limit {
            count = self.in_flight_changed.wait(count).expect("in-flight lock");
        }
        *count += 1;
    }

    fn release_slot(&self) {
        *self.in_flight.lock().expect("in-flight lock") -= 1;
        self.pending_encodes.fetch_sub(1, Ordering::SeqCst);
        self.in_flight_changed.notify_all();
    }

    /// Waits until every background encode finished.
    pub fn wait_idle(&self) {
        let mut count = self.in_flight.lock().expect("in-flight lock");
        while self.pending_encodes.load(Ordering::SeqCst) > 0 {
            count = self
                .in_flight_changed
                .wait_timeout(count, Duration::from_millis(20))
                .expect("in-flight lock")
                .0;
        }
    }

    fn pack(&self, blob: EncodedBlob) -> Result<()> {
        let stats = &self.stats;
        match blob.blob_type {
            BlobType::Data => stats.data_blobs.fetch_add(1, Ordering::Relaxed),
            BlobType::Tree => stats.tree_blobs.fetch_add(1, Ordering::Relaxed),
        };
        stats
            .data_added
            .fetch_add(blob.plain_len as u64, Ordering::Relaxed);
        stats
            .data_added_packed
            .fetch_add(blob.sealed.len() as u64, Ordering::Relaxed);
        let slot = match blob.blob_type {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        };
        let full = {
            let mut writer = self.packers[slot].lock().expect("packer lock");
            writer.add(blob).map_err(|source| RepoError::Pack {
                object: "pack being written".into(),
                source,
            })?;
            if writer.is_full() {
                Some(std::mem::replace(&mut *writer, self.new_writer()?))
            } else {
                None
            }
        };
        match full {
            Some(writer) => self.ship(writer),
            None => Ok(()),
        }
    }

    /// A pool of the budget's thread count for walking the source (reading files).
    pub fn walk_pool(&self) -> Result<rayon::ThreadPool> {
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .thread_name(|i| format!("cairn-walk-{i}"))
            .build()
            .map_err(|source| RepoError::Internal {
                what: "starting the walker threads".into(),
                source: Box::new(source),
            })
    }

    fn new_writer(&self) -> Result<PackWriter> {
        PackWriter::new(self.pack_size).map_err(|e| RepoError::InvalidInput(e.to_string()))
    }

    /// Seals a pack (outside any lock) and hands it to the uploader, waiting if its queue is
    /// full.
    fn ship(&self, writer: PackWriter) -> Result<()> {
        let pack = writer
            .finish(&self.keys)
            .map_err(|source| RepoError::Pack {
                object: "pack being written".into(),
                source,
            })?;
        let sender = self.uploads.lock().expect("uploads lock").clone();
        let Some(sender) = sender else {
            return Err(RepoError::InvalidInput(
                "pack written after the backup was closed".into(),
            ));
        };
        sender
            .blocking_send(pack)
            .map_err(|_| RepoError::InvalidInput("the uploader stopped (see its error)".into()))
    }

    /// Seals and ships the partly filled packs and closes the upload queue. Call after
    /// [`Saver::wait_idle`].
    pub fn close(&self) -> Result<()> {
        for slot in 0..2 {
            let writer = std::mem::replace(
                &mut *self.packers[slot].lock().expect("packer lock"),
                self.new_writer()?,
            );
            if !writer.is_empty() {
                self.ship(writer)?;
            }
        }
        self.uploads.lock().expect("uploads lock").take();
        Ok(())
    }
}
