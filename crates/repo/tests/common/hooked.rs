//! An in-memory object store that asks a hook before every write, copy or delete, so tests
//! can inject failures (a full disk, a process that stops) at exact points.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// Decides whether a mutation of `path` may happen; an `Err` is returned to the caller
/// instead of performing it.
pub type Hook = Arc<dyn Fn(&Path) -> object_store::Result<()> + Send + Sync>;

/// Reads pass through to `inner`; every mutation asks `hook` first.
pub struct Hooked {
    pub inner: Arc<InMemory>,
    pub hook: Hook,
}

impl Hooked {
    pub fn new(inner: Arc<InMemory>, hook: Hook) -> Self {
        Hooked { inner, hook }
    }
}

/// The error hooks return for an injected failure.
pub fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "Hooked",
        source: format!("{what} (injected)").into(),
    }
}

impl fmt::Debug for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked")
    }
}

impl fmt::Display for Hooked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hooked")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Hooked {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        (self.hook)(location)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        (self.hook)(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let hook = Arc::clone(&self.hook);
        locations
            .then(move |location| {
                let inner = Arc::clone(&inner);
                let hook = Arc::clone(&hook);
                async move {
                    let location = location?;
                    hook(&location)?;
                    inner.delete(&location).await?;
                    Ok(location)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        (self.hook)(to)?;
        self.inner.copy_opts(from, to, options).await
    }
}
