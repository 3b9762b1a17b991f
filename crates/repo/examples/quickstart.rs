//! cairn as a Rust crate, blocking: back up a directory and a stream, list, restore, forget +
//! prune, check.
//!
//! ```text
//! echo hello | cargo run -p cairn-repo --example quickstart -- REPOSITORY SOURCE_DIR RESTORE_DIR
//! ```
//!
//! REPOSITORY is a path or a URL (`s3://bucket/prefix`, ...); it is created when missing.
//! The password comes from `CAIRN_PASSWORD` (default "quickstart").

use std::path::PathBuf;

use cairn_repo::blocking::BlockingRepository;
use cairn_repo::ops::check::CheckOptions;
use cairn_repo::ops::forget::{ForgetOptions, KeepPolicy};
use cairn_repo::ops::prune::PruneOptions;
use cairn_repo::{ErrorKind, SnapshotFilter};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(source), Some(target)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: quickstart REPOSITORY SOURCE_DIR RESTORE_DIR");
        std::process::exit(2);
    };
    let password = std::env::var("CAIRN_PASSWORD").unwrap_or_else(|_| "quickstart".into());

    let repo = match BlockingRepository::open_url(&url, password.as_bytes()) {
        Err(e) if e.kind() == ErrorKind::RepositoryNotFound => {
            BlockingRepository::init_url(&url, password.as_bytes())?
        }
        other => other?,
    };
    let files = repo.backup(&[PathBuf::from(&source)], Default::default())?;
    println!("snapshot {} of {source}", files.snapshot_id.short());
    let stream = repo.backup_stream(std::io::stdin(), "stdin.txt", Default::default())?;
    println!("snapshot {} of standard input", stream.snapshot_id.short());
    for entry in repo.list_snapshots(&SnapshotFilter::default())? {
        println!(
            "  {} {} {:?}",
            entry.short_id(),
            entry.snapshot.time,
            entry.snapshot.paths
        );
    }
    let spec = format!("{}:{}", files.snapshot_id, source);
    let restored = repo.restore(&spec, target.as_ref(), Default::default())?;
    println!("restored {} files into {target}", restored.files_restored);
    let policy = KeepPolicy {
        last: Some(3),
        ..Default::default()
    };
    let forgot = repo.forget(&ForgetOptions {
        policy,
        ..Default::default()
    })?;
    let pruned = repo.prune(&PruneOptions::default())?;
    println!(
        "forgot {} snapshots, deleted {} packs",
        forgot.removed.len(),
        pruned.packs_deleted
    );
    let check = repo.check(&CheckOptions::default())?;
    println!(
        "check: {}",
        if check.is_ok() {
            "no errors"
        } else {
            "damage found"
        }
    );
    std::process::exit(i32::from(check.outcome().exit_code()));
}
