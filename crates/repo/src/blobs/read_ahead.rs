//! Blob reads with read-ahead, served by one task on the runtime, for consumers that need
//! blobs one at a time in their own order: synchronous ones on blocking or rayon threads
//! (the backup walker comparing against its parent, the tar writer, copy's re-chunker,
//! repair) and ordered async ones (`ls`, depth first in name order). Each would otherwise
//! pay a full round trip per blob. Here they send requests to a task on the runtime and wait on a
//! reply channel; the task keeps reads in flight, and reads ahead what a consumer announced
//! with [`ReadAhead::prefetch`] (a file's next chunks, a tree's subtrees; the newest
//! announcement first, as depth-first consumers want), holding at
//! most [`READ_AHEAD_BYTES`] of answers nobody has asked for yet. A consumer's own request
//! is started at once, ahead of read-ahead, so read-ahead never delays it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use cairn_pack::{BlobId, BlobType};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::tree::{Node, PartList, Tree, TreeBlob};
use crate::Repository;

/// Decoded blobs read ahead and not yet asked for are kept up to this many bytes; read-ahead
/// pauses while they fill it.
pub const READ_AHEAD_BYTES: usize = 32 * 1024 * 1024;

/// Announced blobs waiting to be read ahead, at most; the oldest announcements beyond it are
/// forgotten (such a blob is read when asked for).
const READ_AHEAD_QUEUE: usize = 65_536;

enum Request {
    Read {
        blob_type: BlobType,
        id: BlobId,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    Prefetch(Vec<(BlobType, BlobId)>),
}

/// A handle for reading blobs with read-ahead, from blocking threads ([`ReadAhead::read`])
/// or async code ([`ReadAhead::read_async`]). Cheap to clone; the serving task ends when
/// the last handle is dropped.
#[derive(Clone)]
pub struct ReadAhead {
    requests: mpsc::UnboundedSender<Request>,
}

impl ReadAhead {
    /// Starts the serving task on the current tokio runtime, reading through `index` with
    /// `concurrency` reads in flight.
    ///
    /// # Panics
    /// Outside a tokio runtime (as `tokio::spawn`).
    pub fn start(repo: Repository, index: Arc<Index>, concurrency: usize) -> Self {
        let (requests, received) = mpsc::unbounded_channel();
        tokio::spawn(serve(repo, index, concurrency.max(1), received));
        ReadAhead { requests }
    }

    fn ask(&self, blob_type: BlobType, id: &BlobId) -> Result<oneshot::Receiver<Result<Vec<u8>>>> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Read {
                blob_type,
                id: *id,
                reply,
            })
            .map_err(|_| gone())?;
        Ok(answer)
    }

    /// Reads one blob, waiting for it. Call from a blocking thread, never from async code.
    pub fn read(&self, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        self.ask(blob_type, id)?
            .blocking_recv()
            .map_err(|_| gone())?
    }

    /// Reads one blob from async code.
    pub async fn read_async(&self, blob_type: BlobType, id: &BlobId) -> Result<Vec<u8>> {
        self.ask(blob_type, id)?.await.map_err(|_| gone())?
    }

    /// Reads and decodes one tree blob from async code, and announces its subtrees (or, for
    /// a part list, its first part).
    pub async fn read_tree_blob_async(&self, id: &BlobId) -> Result<TreeBlob> {
        let plain = self.read_async(BlobType::Tree, id).await?;
        self.announced_tree(id, &plain)
    }

    /// Reads and decodes one tree blob, and announces its subtrees (they are usually next)
    /// or, for a part list, its first part.
    pub fn read_tree_blob(&self, id: &BlobId) -> Result<TreeBlob> {
        let plain = self.read(BlobType::Tree, id)?;
        self.announced_tree(id, &plain)
    }

    fn announced_tree(&self, id: &BlobId, plain: &[u8]) -> Result<TreeBlob> {
        let blob = TreeBlob::decode(plain, &format!("tree {id}"))?;
        match &blob {
            TreeBlob::Nodes(tree) => self.prefetch(
                tree.nodes
                    .iter()
                    .filter_map(|n| n.subtree)
                    .map(|id| (BlobType::Tree, id)),
            ),
            TreeBlob::Parts(list) => self.prefetch([(BlobType::Tree, list.parts[0].tree)]),
        }
        Ok(blob)
    }

    /// Reads part `i` of the part list `list` (tree `list_id`), checked against the list;
    /// announces the next part.
    pub fn read_part(&self, list_id: &BlobId, list: &PartList, i: usize) -> Result<Tree> {
        self.announce_part(list, i + 1);
        let blob = self.read_tree_blob(&list.parts[i].tree)?;
        list.check_part(i, blob, &format!("tree {list_id}"))
    }

    /// [`ReadAhead::read_part`] from async code.
    pub async fn read_part_async(
        &self,
        list_id: &BlobId,
        list: &PartList,
        i: usize,
    ) -> Result<Tree> {
        self.announce_part(list, i + 1);
        let blob = self.read_tree_blob_async(&list.parts[i].tree).await?;
        list.check_part(i, blob, &format!("tree {list_id}"))
    }

    fn announce_part(&self, list: &PartList, i: usize) {
        if let Some(part) = list.parts.get(i) {
            self.prefetch([(BlobType::Tree, part.tree)]);
        }
    }

    /// A directory's nodes, read part by part (from blocking threads).
    pub fn read_dir(&self, id: &BlobId) -> Result<DirReader> {
        Ok(DirReader::new(self.clone(), *id, self.read_tree_blob(id)?))
    }

    /// A directory's nodes, read part by part (from async code).
    pub async fn read_dir_async(&self, id: &BlobId) -> Result<DirReader> {
        Ok(DirReader::new(
            self.clone(),
            *id,
            self.read_tree_blob_async(id).await?,
        ))
    }

    /// Announces blobs that will be asked for soon, in the order they will be wanted.
    pub fn prefetch(&self, blobs: impl IntoIterator<Item = (BlobType, BlobId)>) {
        let blobs: Vec<_> = blobs.into_iter().collect();
        if !blobs.is_empty() {
            // A closed channel means the task is gone; the next read reports it.
            let _ = self.requests.send(Request::Prefetch(blobs));
        }
    }
}

/// One directory's nodes in name order, whether it is one tree or split into parts: holds
/// one part at a time (at most [`crate::tree::PART_MAX`] nodes), each checked against the
/// part list as it is read.
pub struct DirReader {
    blobs: ReadAhead,
    id: BlobId,
    list: Option<PartList>,
    next_part: usize,
    current: std::vec::IntoIter<Node>,
}

impl DirReader {
    /// Reads on from tree `id`, already read as `blob`.
    pub fn new(blobs: ReadAhead, id: BlobId, blob: TreeBlob) -> DirReader {
        let (list, current) = match blob {
            TreeBlob::Nodes(tree) => (None, tree.nodes),
            TreeBlob::Parts(list) => (Some(list), Vec::new()),
        };
        DirReader {
            blobs,
            id,
            list,
            next_part: 0,
            current: current.into_iter(),
        }
    }

    /// The next part to read, if the current one is used up and parts remain.
    fn wants_part(&mut self) -> Option<usize> {
        let list = self.list.as_ref()?;
        (self.current.len() == 0 && self.next_part < list.parts.len()).then_some(self.next_part)
    }

    /// The next node, from blocking threads.
    pub fn next_blocking(&mut self) -> Result<Option<Node>> {
        if let Some(i) = self.wants_part() {
            let list = self.list.as_ref().expect("wants_part saw a list");
            self.current = self.blobs.read_part(&self.id, list, i)?.nodes.into_iter();
            self.next_part += 1;
        }
        Ok(self.current.next())
    }

    /// The next node, from async code.
    pub async fn next_async(&mut self) -> Result<Option<Node>> {
        if let Some(i) = self.wants_part() {
            let list = self.list.as_ref().expect("wants_part saw a list");
            self.current = self
                .blobs
                .read_part_async(&self.id, list, i)
                .await?
                .nodes
                .into_iter();
            self.next_part += 1;
        }
        Ok(self.current.next())
    }
}

fn gone() -> RepoError {
    RepoError::Internal {
        what: "blob reader".into(),
        source: "the reading task stopped (runtime shut down)".into(),
    }
}

/// What the serving task holds.
struct Server {
    repo: Repository,
    index: Arc<Index>,
    concurrency: usize,
    /// Read ahead, not yet asked for, oldest first (for eviction order).
    ready: HashMap<BlobId, Vec<u8>>,
    ready_order: VecDeque<BlobId>,
    ready_bytes: usize,
    /// Reads in flight and who waits for each (empty: read ahead).
    waiting: HashMap<BlobId, Vec<oneshot::Sender<Result<Vec<u8>>>>>,
    announced: VecDeque<(BlobType, BlobId)>,
}

type Reading = std::pin::Pin<Box<dyn std::future::Future<Output = Finished> + Send>>;
type Finished = (BlobType, BlobId, Result<Vec<u8>>);

async fn serve(
    repo: Repository,
    index: Arc<Index>,
    concurrency: usize,
    mut requests: mpsc::UnboundedReceiver<Request>,
) {
    let mut server = Server {
        repo,
        index,
        concurrency,
        ready: HashMap::new(),
        ready_order: VecDeque::new(),
        ready_bytes: 0,
        waiting: HashMap::new(),
        announced: VecDeque::new(),
    };
    let mut reads: FuturesUnordered<Reading> = FuturesUnordered::new();
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(request) => server.take(request, &mut reads),
                // Every handle is gone: nobody can wait for anything in flight.
                None => return,
            },
            Some(finished) = reads.next(), if !reads.is_empty() => {
                server.finish(finished, &mut reads);
            }
        }
        server.read_ahead(&mut reads);
    }
}

impl Server {
    fn start(&self, blob_type: BlobType, id: BlobId) -> Reading {
        let (repo, index) = (self.repo.clone(), Arc::clone(&self.index));
        Box::pin(async move {
            let result = repo.read_blob(&index, blob_type, &id).await;
            (blob_type, id, result)
        })
    }

    fn take(&mut self, request: Request, reads: &mut FuturesUnordered<Reading>) {
        match request {
            Request::Read {
                blob_type,
                id,
                reply,
            } => {
                if let Some(plain) = self.ready.remove(&id) {
                    self.ready_bytes -= plain.len();
                    // `ready_order` is pruned lazily (in `read_ahead`), not searched here.
                    let _ = reply.send(Ok(plain));
                } else if let Some(waiters) = self.waiting.get_mut(&id) {
                    waiters.push(reply);
                } else {
                    self.waiting.insert(id, vec![reply]);
                    reads.push(self.start(blob_type, id));
                }
            }
            Request::Prefetch(blobs) => {
                // The newest announcement is wanted first: consumers go depth first (a
                // tree's subtrees before its siblings, a file's chunks before the next
                // file), so announced batches form a stack, each batch in its own order.
                for blob in blobs.into_iter().rev() {
                    self.announced.push_front(blob);
                }
                self.announced.truncate(READ_AHEAD_QUEUE);
            }
        }
    }

    fn finish(&mut self, (blob_type, id, result): Finished, reads: &mut FuturesUnordered<Reading>) {
        let mut waiters = self.waiting.remove(&id).unwrap_or_default();
        match result {
            Ok(plain) if waiters.is_empty() => {
                // Read ahead: keep it if it fits; otherwise it is read again when asked for.
                if self.ready_bytes + plain.len() <= READ_AHEAD_BYTES {
                    self.ready_bytes += plain.len();
                    self.ready_order.push_back(id);
                    self.ready.insert(id, plain);
                }
            }
            Ok(plain) => {
                let last = waiters.pop();
                for waiter in waiters {
                    let _ = waiter.send(Ok(plain.clone()));
                }
                if let Some(last) = last {
                    let _ = last.send(Ok(plain));
                }
            }
            // A failed read ahead is forgotten: the consumer's own request gets the error.
            Err(_) if waiters.is_empty() => {}
            Err(error) => {
                let first = waiters.remove(0);
                let _ = first.send(Err(error));
                // Errors are not cloneable; anyone else waiting gets a read of their own.
                if !waiters.is_empty() {
                    self.waiting.insert(id, waiters);
                    reads.push(self.start(blob_type, id));
                }
            }
        }
    }

    fn read_ahead(&mut self, reads: &mut FuturesUnordered<Reading>) {
        while reads.len() < self.concurrency && self.ready_bytes < READ_AHEAD_BYTES {
            let Some((blob_type, id)) = self.announced.pop_front() else {
                return;
            };
            if self.ready.contains_key(&id) || self.waiting.contains_key(&id) {
                continue;
            }
            self.waiting.insert(id, Vec::new());
            reads.push(self.start(blob_type, id));
        }
        // Memory: evicting is never needed (read-ahead stops at the bound), but stale entries
        // that were never asked for must not pin the bound forever: drop the oldest when
        // the announcements have run dry and the bound is reached.
        if self.announced.is_empty() && self.ready_bytes >= READ_AHEAD_BYTES {
            while let Some(oldest) = self.ready_order.pop_front() {
                if let Some(plain) = self.ready.remove(&oldest) {
                    self.ready_bytes -= plain.len();
                    break;
                }
            }
        }
        if self.ready_order.len() > 2 * self.ready.len() + 1024 {
            let ready = &self.ready;
            self.ready_order.retain(|id| ready.contains_key(id));
        }
    }
}
