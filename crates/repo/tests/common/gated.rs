//! A wrapper around any object store (local, memory, S3) that can hold every request, as a
//! frozen process or a paused VM would send none, and can run an action in the middle of
//! one read (between the store answering and the caller seeing the answer) or just before
//! one write reaches the store, to stage races at exact points.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use tokio::sync::watch;

/// An action run once, when a read of a path ending in the armed suffix has been answered.
pub type Interception = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send>;

type Armed = Arc<Mutex<Option<(String, Interception)>>>;

pub struct Gated {
    inner: Arc<dyn ObjectStore>,
    open: watch::Receiver<bool>,
    intercept: Armed,
    intercept_write: Armed,
}

/// The switch of a [`Gated`] store.
#[derive(Clone)]
pub struct Gate {
    open: Arc<watch::Sender<bool>>,
    intercept: Armed,
    intercept_write: Armed,
}

impl Gate {
    /// From now on every request waits until [`Gate::thaw`].
    pub fn freeze(&self) {
        self.open.send_replace(false);
    }

    /// Lets held and new requests through.
    pub fn thaw(&self) {
        self.open.send_replace(true);
    }

    /// Runs `action` once, inside the next read of a path ending in `suffix`, after the
    /// store answered it.
    pub fn intercept_read(&self, suffix: &str, action: Interception) {
        *self.intercept.lock().unwrap() = Some((suffix.to_string(), action));
    }

    /// Runs `action` once, before the next write of a path ending in `suffix` reaches the
    /// store.
    pub fn intercept_write(&self, suffix: &str, action: Interception) {
        *self.intercept_write.lock().unwrap() = Some((suffix.to_string(), action));
    }
}

/// Takes the action armed in `slot` if `location` ends in its suffix.
fn armed_for(slot: &Armed, location: &Path) -> Option<Interception> {
    let mut armed = slot.lock().unwrap();
    match armed.as_ref() {
        Some((suffix, _)) if location.as_ref().ends_with(suffix.as_str()) => {
            armed.take().map(|(_, action)| action)
        }
        _ => None,
    }
}

/// Wraps `inner`; requests pass until the gate is frozen.
pub fn gated(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Gate) {
    let (tx, rx) = watch::channel(true);
    let intercept: Armed = Arc::default();
    let intercept_write: Armed = Arc::default();
    let store = Gated {
        inner,
        open: rx,
        intercept: Arc::clone(&intercept),
        intercept_write: Arc::clone(&intercept_write),
    };
    (
        Arc::new(store),
        Gate {
            open: Arc::new(tx),
            intercept,
            intercept_write,
        },
    )
}

impl Gated {
    async fn pass(&self) {
        let mut open = self.open.clone();
        let _ = open.wait_for(|open| *open).await;
    }
}

impl fmt::Debug for Gated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gated({})", self.inner)
    }
}

impl fmt::Display for Gated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gated({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Gated {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.pass().await;
        if let Some(action) = armed_for(&self.intercept_write, location) {
            action().await;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.pass().await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.pass().await;
        let head = options.head;
        let mut result = self.inner.get_opts(location, options).await?;
        if head {
            return Ok(result);
        }
        let action = armed_for(&self.intercept, location);
        if let Some(action) = action {
            // Read the answer whole before the action changes the store under it.
            let payload = std::mem::replace(
                &mut result.payload,
                GetResultPayload::Stream(futures::stream::empty().boxed()),
            );
            let bytes: Bytes = match payload {
                GetResultPayload::Stream(stream) => {
                    let parts: Vec<Bytes> = stream.try_collect().await?;
                    parts.concat().into()
                }
                GetResultPayload::File(mut file, _) => {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut out = vec![0; (result.range.end - result.range.start) as usize];
                    file.seek(SeekFrom::Start(result.range.start)).unwrap();
                    file.read_exact(&mut out).unwrap();
                    out.into()
                }
            };
            action().await;
            result.payload =
                GetResultPayload::Stream(futures::stream::once(async move { Ok(bytes) }).boxed());
        }
        Ok(result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.pass().await;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let open = self.open.clone();
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |location| {
                let mut open = open.clone();
                let inner = Arc::clone(&inner);
                async move {
                    let _ = open.wait_for(|open| *open).await;
                    inner
                        .delete_stream(futures::stream::once(async { location }).boxed())
                        .next()
                        .await
                        .expect("one result per location")
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let mut open = self.open.clone();
        let inner = Arc::clone(&self.inner);
        let prefix = prefix.cloned();
        futures::stream::once(async move {
            let _ = open.wait_for(|open| *open).await;
            inner.list(prefix.as_ref())
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.pass().await;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.pass().await;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        self.pass().await;
        self.inner.rename_opts(from, to, options).await
    }
}
