//! `dump`: one file of a snapshot written to a stream, and the path lookup it (and
//! `SNAPSHOT:PATH` restores) use. A whole tree as tar is in `dump_tar`.

use std::io::Write;

use cairn_pack::BlobType;
use futures::{StreamExt, TryStreamExt};

use crate::error::{RepoError, Result};
use crate::index::Index;
use crate::snapshot::Snapshot;
use crate::tree::{Name, Node, NodeKind};
use crate::Repository;

impl Repository {
    /// Finds the node at `path` (components separated by `/`) in a snapshot.
    pub async fn find_node(&self, index: &Index, snapshot: &Snapshot, path: &str) -> Result<Node> {
        let mut tree_id = snapshot.tree;
        let components: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        if components.is_empty() {
            return Err(RepoError::InvalidInput(
                "path names the snapshot root, not a file".into(),
            ));
        }
        for (i, component) in components.iter().enumerate() {
            let name = Name(component.as_bytes().to_vec());
            let node = self
                .find_in_dir(index, &tree_id, &name)
                .await?
                .ok_or_else(|| {
                    RepoError::InvalidInput(format!("{path}: no such file in the snapshot"))
                })?;
            if i + 1 == components.len() {
                return Ok(node);
            }
            tree_id = node.subtree.ok_or_else(|| {
                RepoError::InvalidInput(format!("{path}: {component} is not a directory"))
            })?;
        }
        unreachable!("loop returns on the last component")
    }

    /// Writes one file's content to `writer`, in order, reading a few blobs ahead.
    pub async fn dump<W: Write + Send>(
        &self,
        index: &Index,
        node: &Node,
        mut writer: W,
    ) -> Result<u64> {
        if node.kind != NodeKind::File {
            return Err(RepoError::InvalidInput(format!(
                "{} is not a regular file",
                node.name.display()
            )));
        }
        let mut blobs = futures::stream::iter(node.content.iter())
            .map(|id| self.read_blob(index, BlobType::Data, id))
            .buffered(4);
        let mut written = 0u64;
        while let Some(blob) = blobs.try_next().await? {
            writer
                .write_all(&blob)
                .map_err(|e| RepoError::io("<output>", e))?;
            written += blob.len() as u64;
        }
        writer.flush().map_err(|e| RepoError::io("<output>", e))?;
        Ok(written)
    }
}
