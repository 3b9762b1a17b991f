//! Exclude rules: glob patterns (restic's semantics), cache directories, other file systems.

use std::path::Path;

use globset::GlobSet;

use crate::error::{RepoError, Result};

/// The signature a `CACHEDIR.TAG` file must start with (bford.info/cachedir).
const CACHEDIR_SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

/// Compiled exclude rules.
#[derive(Debug, Default)]
pub(crate) struct Excludes {
    patterns: Option<GlobSet>,
    exclude_caches: bool,
    if_present: Vec<String>,
}

impl Excludes {
    /// The rules a backup's options give: `--exclude` patterns, those of `--exclude-file`
    /// files, `--exclude-caches` and `--exclude-if-present`.
    pub fn of(options: &super::BackupOptions) -> Result<Self> {
        let mut patterns = options.excludes.clone();
        patterns.extend(Self::read_pattern_files(&options.exclude_files)?);
        Self::new(
            &patterns,
            options.exclude_caches,
            &options.exclude_if_present,
        )
    }

    /// Patterns are matched against absolute paths: one starting with `/` from the root,
    /// any other at any depth (`*.log`, `node_modules`, `build/tmp`). `*` and `?` do not
    /// cross `/`; `**` does.
    pub fn new(patterns: &[String], exclude_caches: bool, if_present: &[String]) -> Result<Self> {
        let patterns = crate::ops::patterns::compile(patterns, "exclude")?;
        Ok(Excludes {
            patterns,
            exclude_caches,
            if_present: if_present.to_vec(),
        })
    }

    /// Reads patterns from files: one per line; blank lines and `#` comments ignored.
    pub fn read_pattern_files(files: &[std::path::PathBuf]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(file).map_err(|e| RepoError::io(file, e))?;
            out.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        Ok(out)
    }

    /// True if the (absolute) path matches a pattern.
    pub fn matches_path(&self, path: &Path) -> bool {
        self.patterns.as_ref().is_some_and(|set| set.is_match(path))
    }

    /// True if a directory is excluded by a marker file inside it.
    pub fn excludes_dir_contents(&self, dir: &Path) -> bool {
        if self.exclude_caches {
            let tag = dir.join("CACHEDIR.TAG");
            if let Ok(mut file) = std::fs::File::open(tag) {
                use std::io::Read;
                let mut head = [0u8; CACHEDIR_SIGNATURE.len()];
                if file.read_exact(&mut head).is_ok() && head == CACHEDIR_SIGNATURE {
                    return true;
                }
            }
        }
        self.if_present
            .iter()
            .any(|name| dir.join(name).symlink_metadata().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_like_matching() {
        let ex = Excludes::new(
            &[
                "*.log".into(),
                "/var/cache".into(),
                "node_modules/".into(),
                "a/b".into(),
            ],
            false,
            &[],
        )
        .unwrap();
        assert!(ex.matches_path(Path::new("/home/x/app.log")));
        assert!(ex.matches_path(Path::new("/app.log")));
        assert!(!ex.matches_path(Path::new("/home/x/app.log.1")));
        assert!(ex.matches_path(Path::new("/var/cache")));
        assert!(!ex.matches_path(Path::new("/srv/var/cache")));
        assert!(ex.matches_path(Path::new("/src/web/node_modules")));
        assert!(ex.matches_path(Path::new("/x/a/b")));
        assert!(!ex.matches_path(Path::new("/x/a/bc")));
        assert!(Excludes::new(&["!keep".into()], false, &[]).is_err());
        assert!(Excludes::new(&["[".into()], false, &[]).is_err());
    }

    #[test]
    fn cachedir_tag_needs_signature() {
        let dir = tempfile::tempdir().unwrap();
        let ex = Excludes::new(&[], true, &[]).unwrap();
        assert!(!ex.excludes_dir_contents(dir.path()));
        std::fs::write(dir.path().join("CACHEDIR.TAG"), b"nope").unwrap();
        assert!(!ex.excludes_dir_contents(dir.path()));
        std::fs::write(
            dir.path().join("CACHEDIR.TAG"),
            [CACHEDIR_SIGNATURE, b"\n# x"].concat(),
        )
        .unwrap();
        assert!(ex.excludes_dir_contents(dir.path()));
        let marker = Excludes::new(&[], false, &[".nobackup".into()]).unwrap();
        assert!(!marker.excludes_dir_contents(dir.path()));
        std::fs::write(dir.path().join(".nobackup"), b"").unwrap();
        assert!(marker.excludes_dir_contents(dir.path()));
    }
}
