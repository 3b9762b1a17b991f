//! `restore --delete`: removing what the target holds in restored directories but the
//! snapshot does not, through directory descriptors, never following a symlink.

use super::*;

impl Restorer {
    /// Removes what the directories `dirs` (below the target, each with its listing in the
    /// snapshot) hold but the snapshot does not.
    pub(super) fn delete_extraneous(
        &self,
        dirs: &[(PathBuf, Arc<Tree>)],
        include: Option<&GlobSet>,
        exclude: Option<&GlobSet>,
    ) -> Result<u64> {
        let spare: &dyn Fn(&Path) -> bool =
            &|rel: &Path| exclude.is_some_and(|set| matches_self_or_ancestor(set, rel));
        let mut deleted = 0;
        for (dir, listing) in dirs {
            let io = |e| RepoError::io(self.shared.fs.path_of(dir), e);
            let present: HashSet<&[u8]> = listing.nodes.iter().map(|n| &n.name.0[..]).collect();
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
