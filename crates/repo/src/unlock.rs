//! Unlocking a repository: which key files to try and in what order (a key hint, then the
//! key that last opened it on this host, then the rest, at most [`MAX_KEYS_TRIED`]), each
//! checked against its name before any key derivation, and, when none opens, a message
//! that says why.

use std::sync::Arc;

use cairn_pack::{KeyFile, MasterKeys, MAX_KEY_FILE_LEN};
use zeroize::Zeroizing;

use crate::error::{RepoError, Result};
use crate::key_hint::{self, OpenOptions};
use crate::object::{content_id, KeyFiles};
use crate::repository::MAX_KEYS_TRIED;
use crate::storage::Listed;

/// The key file this host remembers opening the repository named `cache_name` with, when
/// it is to be tried alone before any listing: there is one, and no key hint asks for
/// another order.
pub(crate) fn remembered_first(options: &OpenOptions, cache_name: &str) -> Option<String> {
    if options.key_hint.as_deref().is_some_and(|h| !h.is_empty()) {
        return None;
    }
    key_hint::read(options.cache_dir.as_deref()?, cache_name)
}

/// Tries key file `name` alone, without listing the key files: one GET where a listing
/// and a GET would be spent. `None` if it is gone, not what its name says, not a key file,
/// or the password does not open it (the full search then runs without it).
pub(crate) async fn try_alone(
    files: KeyFiles<'_>,
    name: &str,
    password: &[u8],
) -> Result<Option<MasterKeys>> {
    let Some(bytes) = files.fetch(name).await? else {
        return Ok(None);
    };
    let Ok(key_file) = check_key_file(name, &bytes) else {
        return Ok(None);
    };
    let password = Arc::new(Zeroizing::new(password.to_vec()));
    Ok(derive(key_file, password).await?.ok())
}

/// Checks a key file's bytes before any derivation: not oversized, named by their hash (a
/// file copied or altered under another name is not the key file it claims to be),
/// well-formed. The error says why not, for the wrong-password message.
fn check_key_file(name: &str, bytes: &[u8]) -> std::result::Result<KeyFile, String> {
    if bytes.len() > MAX_KEY_FILE_LEN {
        return Err(format!("{} bytes, larger than any key file", bytes.len()));
    }
    let actual = content_id(bytes);
    if actual != name {
        return Err(format!(
            "content does not match its name: it hashes to {actual}"
        ));
    }
    KeyFile::parse(bytes).map_err(|e| e.to_string())
}

/// Runs the key derivation off the runtime's threads.
async fn derive(
    key_file: KeyFile,
    password: Arc<Zeroizing<Vec<u8>>>,
) -> Result<std::result::Result<MasterKeys, cairn_pack::PackError>> {
    tokio::task::spawn_blocking(move || key_file.unlock(&password))
        .await
        .map_err(RepoError::task("key derivation task"))
}

/// The key files to try, in order, and what was noticed choosing them.
pub(crate) struct KeyOrder<'a> {
    order: Vec<&'a str>,
    /// The key file this host's cache remembers for the repository.
    pub remembered: Option<String>,
    /// Why a hint did not help, and similar, for the wrong-password message.
    pub notes: Vec<String>,
}

/// What trying the key files found.
pub(crate) struct KeyTrial {
    /// The keys and the id of the key file that opened them.
    pub unlocked: Option<(MasterKeys, String)>,
    derived: usize,
    skipped: Vec<String>,
    notes: Vec<String>,
}

impl<'a> KeyOrder<'a> {
    /// The order for `listed`, leaving out `tried` (already tried alone).
    pub fn new(
        listed: &'a [Listed],
        options: &OpenOptions,
        cache_name: &str,
        tried: Option<&str>,
    ) -> Self {
        let mut notes: Vec<String> = Vec::new();
        let mut first: Vec<&str> = Vec::new();
        if let Some(hint) = options.key_hint.as_deref().filter(|h| !h.is_empty()) {
            let matches: Vec<&str> = listed
                .iter()
                .map(|l| l.name.as_str())
                .filter(|name| name.starts_with(hint))
                .collect();
            match matches.as_slice() {
                [one] => first.push(one),
                [] => notes.push(format!("key hint {hint:?} matches no key file")),
                _ => notes.push(format!("key hint {hint:?} matches several key files")),
            }
        }
        let remembered = options
            .cache_dir
            .as_deref()
            .and_then(|dir| key_hint::read(dir, cache_name));
        if let Some(l) = remembered
            .as_ref()
            .and_then(|id| listed.iter().find(|l| &l.name == id))
        {
            if !first.contains(&l.name.as_str()) {
                first.push(&l.name);
            }
        }
        let rest = listed
            .iter()
            .map(|l| l.name.as_str())
            .filter(|name| !first.contains(name));
        let order = first
            .iter()
            .copied()
            .chain(rest)
            .filter(|name| Some(*name) != tried)
            .collect();
        if let Some(tried) = tried {
            notes.push(format!(
                "keys/{tried}, which last opened this repository here, was tried first"
            ));
        }
        KeyOrder {
            order,
            remembered,
            notes,
        }
    }

    /// Tries the key files in order until one opens with `password`.
    pub async fn try_keys(
        &self,
        files: KeyFiles<'_>,
        listed: &[Listed],
        password: &[u8],
    ) -> Result<KeyTrial> {
        // One copy of the password, wiped when the last derivation task is done with it.
        let password = Arc::new(Zeroizing::new(password.to_vec()));
        let mut trial = KeyTrial {
            unlocked: None,
            derived: 0,
            skipped: Vec::new(),
            notes: Vec::new(),
        };
        for (examined, name) in self.order.iter().copied().enumerate() {
            if examined == MAX_KEYS_TRIED {
                trial.notes.push(format!(
                    "stopped after {MAX_KEYS_TRIED} of {} key files (the most tried per open): name the key to try first with a key hint (--key-hint ID)",
                    listed.len()
                ));
                break;
            }
            let size = listed.iter().find(|l| l.name == name).map_or(0, |l| l.size);
            let Some(key_file) = trial.fetch(files, name, size).await? else {
                continue;
            };
            trial.derived += 1;
            match derive(key_file, Arc::clone(&password)).await? {
                Ok(keys) => {
                    trial.unlocked = Some((keys, name.to_string()));
                    break;
                }
                Err(cairn_pack::PackError::WrongPassword) => {}
                Err(e) => trial.skipped.push(format!("keys/{name} ({e})")),
            }
        }
        Ok(trial)
    }
}

impl KeyTrial {
    /// Reads key file `name` and checks it before any derivation: not oversized, named by
    /// the hash of its bytes (a file copied or altered under another name is not the key
    /// file it claims to be), well-formed. `None` (noted) if it is not worth deriving.
    async fn fetch(
        &mut self,
        files: KeyFiles<'_>,
        name: &str,
        size: u64,
    ) -> Result<Option<KeyFile>> {
        let object = KeyFiles::object_name(name);
        if size > MAX_KEY_FILE_LEN as u64 {
            self.skipped
                .push(format!("{object} ({size} bytes, larger than any key file)"));
            return Ok(None);
        }
        // Removed since the listing (a concurrent `key remove`): not ours.
        let Some(bytes) = files.fetch(name).await? else {
            return Ok(None);
        };
        match check_key_file(name, &bytes) {
            Ok(key_file) => Ok(Some(key_file)),
            Err(why) => {
                self.skipped.push(format!("{object} ({why})"));
                Ok(None)
            }
        }
    }

    /// The wrong-password message's detail: how many keys were derived, which were skipped
    /// and why, and the notes.
    pub fn detail(&self, listed: usize, order_notes: Vec<String>) -> String {
        let mut detail = format!(
            "; ran the key derivation on {} of {listed} key files",
            self.derived
        );
        if !self.skipped.is_empty() {
            detail.push_str(&format!(
                "; skipped {} without deriving: {}",
                self.skipped.len(),
                self.skipped.join(", ")
            ));
        }
        for note in order_notes.iter().chain(&self.notes) {
            detail.push_str("; ");
            detail.push_str(note);
        }
        detail
    }
}
