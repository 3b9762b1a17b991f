//! Path patterns for excludes and restore selection, with restic's semantics: matched against
//! absolute paths, a pattern starting with `/` anchored at the root, any other matching at any
//! depth (`*.log`, `node_modules`, `build/tmp`); `*` and `?` do not cross `/`, `**` does.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{RepoError, Result};

/// Compiles patterns; `None` when there are none. `what` names them in errors.
pub(crate) fn compile(patterns: &[String], what: &str) -> Result<Option<GlobSet>> {
    let mut set = GlobSetBuilder::new();
    let mut any = false;
    for pattern in patterns {
        let pattern = pattern.trim();
        if pattern.is_empty() {
            continue;
        }
        if pattern.starts_with('!') {
            return Err(RepoError::InvalidInput(format!(
                "{what} pattern {pattern:?}: negated patterns are not supported"
            )));
        }
        let trimmed = pattern.trim_end_matches('/');
        let full = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("**/{trimmed}")
        };
        let glob = GlobBuilder::new(&full)
            .literal_separator(true)
            .build()
            .map_err(|e| RepoError::InvalidInput(format!("{what} pattern {pattern:?}: {e}")))?;
        set.add(glob);
        any = true;
    }
    if !any {
        return Ok(None);
    }
    set.build()
        .map(Some)
        .map_err(|e| RepoError::InvalidInput(format!("{what} patterns: {e}")))
}
