//! `restore --delete`: removing what the target holds in restored directories but the
//! snapshot does not, through directory descriptors, never following a symlink.

use super::*;
use crate::blobs::DirReader;
use crate::tree::TreeBlob;

/// The names a restored directory has in the snapshot.
pub(super) enum Present {
    /// A whole listing.
    Listing(Arc<Tree>),
    /// A split directory's names, read part by part (names only: about 50 bytes each).
    Names(HashSet<Vec<u8>>),
}

impl Present {
    pub(super) async fn of(trees: &ReadAhead, listing: Listing) -> Result<Present> {
        match listing {
            Listing::Whole(tree) => Ok(Present::Listing(tree)),
            Listing::Split { id, list } => {
                let mut reader =
                    DirReader::new(trees.clone(), id, TreeBlob::Parts((*list).clone()));
                let mut names = HashSet::new();
                while let Some(node) = reader.next_async().await? {
                    names.insert(node.name.0);
                }
                Ok(Present::Names(names))
            }
        }
    }

    fn contains(&self, name: &[u8]) -> bool {
        match self {
            Present::Listing(tree) => tree
                .nodes
                .binary_search_by(|n| n.name.0.as_slice().cmp(name))
                .is_ok(),
            Present::Names(names) => names.contains(name),
        }
    }
}

impl Restorer {
    /// Removes what the directories `dirs` (below the target, each with its listing in the
    /// snapshot) hold but the snapshot does not.
    pub(super) fn delete_extraneous(
        &self,
        dirs: &[(PathBuf, Present)],
        include: Option<&GlobSet>,
        exclude: Option<&GlobSet>,
    ) -> Result<u64> {
        let spare: &dyn Fn(&Path) -> bool =
            &|rel: &Path| exclude.is_some_and(|set| matches_self_or_ancestor(set, rel));
        let mut deleted = 0;
        for (dir, present) in dirs {
            let io = |e| RepoError::io(self.shared.fs.path_of(dir), e);
            // Only directories this restore made are listed, through descriptors opened
            // beneath the target: never through a symlink.
            let fd = self.shared.fs.dir(dir).map_err(io)?;
            for name in list(fd.as_fd()).map_err(io)? {
                let rel = dir.join(&name);
                if present.contains(name.as_bytes())
                    || spare(&rel)
                    || include.is_some_and(|set| !matches_self_or_ancestor(set, &rel))
                {
                    continue;
                }
                if remove_at(fd.as_fd(), &name, &rel, Some(spare))
                    .map_err(|e| RepoError::io(self.shared.fs.path_of(&rel), e))?
                {
                    deleted += 1;
                }
            }
        }
        if deleted > 0 {
            self.shared.fs.forget_all();
        }
        Ok(deleted)
    }
}
