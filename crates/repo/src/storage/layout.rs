//! Repository layout: where each kind of file lives (docs/format.md#repository-layout).

use object_store::path::Path as ObjectPath;

/// Name of the exclusive maintenance lock under `locks/` (docs/format.md#locks).
pub const MAINTENANCE_LOCK: &str = "maintenance";

/// The kinds of repository files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// `config`: the one repository configuration object.
    Config,
    /// `keys/<id>`: key files.
    Key,
    /// `data/<first 2 hex digits>/<id>`: packs.
    Pack,
    /// `index/<id>`: index files.
    Index,
    /// `snapshots/<id>`: snapshots.
    Snapshot,
    /// `locks/<id>`: backup markers, and `locks/maintenance`.
    Lock,
    /// `pending/<id>`: packs a prune removed from the index, deleted by a later step once no
    /// backup that could still use them is running.
    Pending,
    /// `drills/<id>`: records of restore drills (docs/format.md#drill-and-check-records).
    Drill,
    /// `checks/<id>`: records of `check` runs.
    Check,
}

impl FileType {
    /// Every file type, in a fixed order.
    pub const ALL: [FileType; 9] = [
        FileType::Config,
        FileType::Key,
        FileType::Pack,
        FileType::Index,
        FileType::Snapshot,
        FileType::Lock,
        FileType::Pending,
        FileType::Drill,
        FileType::Check,
    ];

    /// The directory (prefix) holding this type's objects.
    pub fn dir(self) -> ObjectPath {
        ObjectPath::from(match self {
            FileType::Config => "",
            other => other.name(),
        })
    }

    /// A short name for messages and request accounting: the directory's name ("config"
    /// for the config).
    pub fn name(self) -> &'static str {
        match self {
            FileType::Config => "config",
            FileType::Key => "keys",
            FileType::Pack => "data",
            FileType::Index => "index",
            FileType::Snapshot => "snapshots",
            FileType::Lock => "locks",
            FileType::Pending => "pending",
            FileType::Drill => "drills",
            FileType::Check => "checks",
        }
    }

    /// The object path of the file named `name` (ignored for `Config`).
    pub fn path(self, name: &str) -> ObjectPath {
        match self {
            FileType::Config => ObjectPath::from("config"),
            FileType::Pack => {
                let fan = name.get(..2).unwrap_or("00");
                ObjectPath::from(format!("data/{fan}/{name}"))
            }
            _ => self.dir().clone().join(name),
        }
    }

    /// Names of this type are 64 lower-case hex digits (except the config, and the one
    /// maintenance lock `locks/maintenance`).
    pub fn is_valid_name(self, name: &str) -> bool {
        match self {
            FileType::Config => name == "config",
            FileType::Lock if name == MAINTENANCE_LOCK => true,
            _ => {
                name.len() == 64
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let id = "0123456789abcdef".repeat(4);
        assert_eq!(
            FileType::Pack.path(&id).to_string(),
            format!("data/01/{id}")
        );
        assert_eq!(
            FileType::Snapshot.path(&id).to_string(),
            format!("snapshots/{id}")
        );
        assert_eq!(FileType::Config.path("").to_string(), "config");
        assert!(FileType::Index.is_valid_name(&id));
        assert!(!FileType::Index.is_valid_name("#tmp"));
        assert!(!FileType::Index.is_valid_name(&id.to_uppercase()));
    }
}
