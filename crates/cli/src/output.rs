//! Printing: human text on stdout/stderr, or JSON on stdout with `--json`.

use serde_json::{json, Value};

use crate::context::Globals;

/// Prints one JSON value as a line on stdout.
pub fn json_line(value: &Value) {
    println!("{value}");
}

/// Reports a fatal error: a JSON error line with `--json`, else a message on stderr.
pub fn error_line(globals: &Globals, error: &anyhow::Error) {
    let message = format!("{error:#}");
    if globals.json {
        json_line(
            &json!({"message_type": "error", "error": {"message": message}, "during": "", "item": ""}),
        );
    }
    eprintln!("cairn: {message}");
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
