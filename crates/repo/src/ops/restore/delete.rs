//! `restore --delete`: removing what the target holds in restored directories but the
//! snapshot does not, through directory descriptors, never following a symlink.

use super::*;

impl Restorer {
    /// Removes entries of restored directories that the snapshot does not have.
    pub(super) fn delete_extraneous(
        &self,
        include: Option<&GlobSet>,
        exclude: Option<&GlobSet>,
    ) -> Result<u64> {
        let present: HashSet<&Path> = self.items.iter().map(|item| item.rel.as_path()).collect();
        let dirs = std::iter::once(Path::new("")).chain(
            self.items
                .iter()
                .enumerate()
                .filter(|(i, item)| item.node().kind == NodeKind::Dir && self.ok(*i))
                .map(|(_, item)| item.rel.as_path()),
        );
        let spare: &dyn Fn(&Path) -> bool =
            &|rel: &Path| exclude.is_some_and(|set| matches_self_or_ancestor(set, rel));
        let mut deleted = 0;
        for dir in dirs {
            let io = |e| RepoError::io(self.fs.path_of(dir), e);
            // Only directories this restore holds open are listed: never through a symlink.
            let fd = self.fs.dir(dir).map_err(io)?;
            for name in list(fd.as_fd()).map_err(io)? {
                let rel = dir.join(&name);
                if present.contains(rel.as_path())
                    || spare(&rel)
                    || include.is_some_and(|set| !matches_self_or_ancestor(set, &rel))
                {
                    continue;
                }
                if remove_at(fd.as_fd(), &name, &rel, Some(spare))
                    .map_err(|e| RepoError::io(self.fs.path_of(&rel), e))?
                {
                    deleted += 1;
                }
            }
        }
        if deleted > 0 {
            self.fs.forget_all();
        }
        Ok(deleted)
    }
}
