//! Printing: human text on stdout/stderr, or JSON on stdout with `--json`.

use serde_json::{json, Value};

use crate::context::Globals;

/// The storage of the repository this run opened (the destination of a copy), whose
/// requests a summary reports.
static OPENED: std::sync::OnceLock<cairn_repo::Storage> = std::sync::OnceLock::new();

/// Records the repository a command opened, so its summary can say what the run cost.
/// The first one counts (a copy opens its destination first).
pub fn opened(repo: &cairn_repo::Repository) {
    let _ = OPENED.set(repo.storage().clone());
}

/// Prints one JSON value as a line on stdout. A `summary` line gets a `requests` field:
/// the store requests (and bytes) this run made per file type, restic's fields untouched.
pub fn json_line(value: &Value) {
    match (value, OPENED.get()) {
        (Value::Object(map), Some(storage))
            if map.get("message_type").and_then(Value::as_str) == Some("summary") =>
        {
            let mut map = map.clone();
            let requests = storage.requests();
            map.insert(
                "requests".into(),
                serde_json::to_value(&requests.kinds).unwrap_or(Value::Null),
            );
            println!("{}", Value::Object(map));
        }
        _ => println!("{value}"),
    }
}

/// Reports a fatal error: a JSON error line with `--json`, else a message on stderr.
/// Reports the error that ends the command: on stderr, and with `--json` as restic's
/// `exit_error` line (`code` is the exit code) plus cairn's `outcome` name, the same name the
/// C ABI's outcome table gives.
pub fn error_line(globals: &Globals, error: &anyhow::Error, outcome: cairn_repo::Outcome) {
    let message = format!("{error:#}");
    if globals.json {
        json_line(&json!({
            "message_type": "exit_error",
            "code": outcome.exit_code(),
            "outcome": outcome.name(),
            "message": message,
        }));
    }
    eprintln!("cairn: {}", terminal(&message));
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.3} {}", UNITS[unit])
    }
}

/// Text safe to print on a terminal. File names (and a snapshot's host names, tags and
/// paths) can hold any byte but `/` and NUL, and a compromised host writes what it likes
/// into a snapshot: printed raw, an escape sequence in a name could move the cursor, rewrite
/// earlier lines or retitle the window. Control characters (C0, DEL and C1) are shown as
/// escapes (`\n`, `\t`, `\r`, `\x1b`, `\u{9b}`), and so are the bidirectional overrides that
/// reorder what is shown (`\u{202e}`); bytes that are not UTF-8 are shown as `\xNN`.
/// Backslashes are left as they are, so this is for reading, not parsing: `--json` output
/// carries the exact names.
pub fn terminal_bytes(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c if ('\u{80}'..='\u{9f}').contains(&c)
                    || ('\u{202a}'..='\u{202e}').contains(&c)
                    || ('\u{2066}'..='\u{2069}').contains(&c) =>
                {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// [`terminal_bytes`] of text.
pub fn terminal(text: &str) -> String {
    terminal_bytes(text.as_bytes())
}

/// [`terminal_bytes`] of a path.
pub fn terminal_path(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    terminal_bytes(path.as_os_str().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_invalid_bytes_are_escaped() {
        assert_eq!(terminal("plain name ü.txt"), "plain name ü.txt");
        assert_eq!(terminal("a\nb\tc\rd"), "a\\nb\\tc\\rd");
        assert_eq!(terminal("\x1b[31mred\x07\x7f"), "\\x1b[31mred\\x07\\x7f");
        assert_eq!(
            terminal("\u{9b}2J \u{202e}txt.exe"),
            "\\u{9b}2J \\u{202e}txt.exe"
        );
        assert_eq!(terminal_bytes(b"n\xff\xfe-x"), "n\\xff\\xfe-x");
        assert_eq!(terminal_path(std::path::Path::new("/a\x1b/b")), "/a\\x1b/b");
    }
}
