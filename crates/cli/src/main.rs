//! `cairn`: the command-line front end over `cairn-repo`. Flags, environment variables, JSON
//! shapes and exit codes follow restic's (see docs/cli.md), so scripts and operators written
//! for restic drive cairn by changing the binary's name.

mod backend_options;
mod commands;
mod context;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use context::{outcome_for, Globals};

/// Tunes glibc's allocator for cairn's memory pattern: many threads (rayon, tokio, blocking
/// pool) each get an arena by default, and freed buffers of 16 MiB raise the mmap threshold
/// so later ones stay resident in those arenas. Measured on a 43 000-file restore: a third of
/// peak RSS. Two arenas and a fixed 1 MiB mmap threshold give large buffers (chunker blocks,
/// packs) back to the OS when freed. (mimalloc was tried too: it kept more, not less.)
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before any thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// cairn: content-addressed, deduplicating, encrypted backups.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about, after_help = context::ENV_HELP)]
struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a new repository.
    Init(commands::init::Args),
    /// Back up files and directories, or standard input, into a new snapshot.
    Backup(commands::backup::Args),
    /// List snapshots.
    Snapshots(commands::snapshots::Args),
    /// List the files of a snapshot.
    Ls(commands::ls::Args),
    /// Restore a snapshot into a directory.
    Restore(commands::restore::Args),
    /// Write one file of a snapshot to standard output.
    Dump(commands::dump::Args),
    /// Mount the repository read-only with FUSE (snapshots/, ids/, hosts/, tags/).
    Mount(commands::mount::Args),
    /// Show repository statistics (logical size, stored size, deduplication).
    Stats(commands::stats::Args),
    /// Manage the repository's keys (passwords).
    Key(commands::key::Args),
    /// Check the repository for damage (exit 1 if any).
    Check(commands::check::Args),
    /// Remove snapshots by retention policy or by id (exit 3 if some could not be removed).
    Forget(commands::forget::Args),
    /// Remove data no snapshot uses (exit 11 if another maintenance run holds the lock).
    Prune(commands::prune::Args),
    /// Remove stale locks (every lock with --remove-all).
    Unlock(commands::unlock::Args),
    /// Rebuild the index from the packs, or rewrite snapshots around lost data.
    Repair(commands::repair::Args),
    /// Copy snapshots from another repository (--from-repo) into this one.
    Copy(commands::copy::Args),
    /// List the ids of the repository's snapshots, index files, packs, keys, locks or blobs.
    List(commands::list::Args),
    /// Restore a snapshot into a scratch directory, verify it, run a command against it and
    /// record the outcome (exit 26 if the drill fails).
    Drill(commands::drill::Args),
    /// List recorded restore drills.
    Drills(commands::drill::ListArgs),
    /// Check every group's recovery point against age limits (exit 25 on a breach).
    Rpo(commands::rpo::Args),
    /// Write Prometheus metrics (recovery points, last check, sizes).
    Metrics(commands::metrics::Args),
}

fn main() -> ExitCode {
    tune_allocator();
    // `--help` also says which variables would be used here (names, never values).
    // Every subcommand's `--help` says it too: that is where a K8up operator looks.
    let in_use = context::env_in_use();
    let help = format!("{}\n\n{in_use}", context::ENV_HELP);
    let matches = Cli::command()
        .after_help(help)
        .mut_subcommands(|sub| sub.after_help(in_use.clone()))
        .get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cairn: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let globals = cli.globals;
    let result = runtime.block_on(async {
        let globals = &globals;
        match cli.command {
            Command::Init(args) => commands::init::run(globals, args).await,
            Command::Backup(args) => commands::backup::run(globals, args).await,
            Command::Snapshots(args) => commands::snapshots::run(globals, args).await,
            Command::Ls(args) => commands::ls::run(globals, args).await,
            Command::Restore(args) => commands::restore::run(globals, args).await,
            Command::Dump(args) => commands::dump::run(globals, args).await,
            Command::Mount(args) => commands::mount::run(globals, args).await,
            Command::Stats(args) => commands::stats::run(globals, args).await,
            Command::Key(args) => commands::key::run(globals, args).await,
            Command::Check(args) => commands::check::run(globals, args).await,
            Command::Copy(args) => commands::copy::run(globals, args).await,
            Command::Repair(args) => commands::repair::run(globals, args).await,
            Command::Forget(args) => commands::forget::run(globals, args).await,
            Command::Prune(args) => commands::prune::run(globals, args).await,
            Command::Unlock(args) => commands::unlock::run(globals, args).await,
            Command::List(args) => commands::list::run(globals, args).await,
            Command::Drill(args) => commands::drill::run(globals, args).await,
            Command::Drills(args) => commands::drill::list(globals, args).await,
            Command::Rpo(args) => commands::rpo::run(globals, args).await,
            Command::Metrics(args) => commands::metrics::run(globals, args).await,
        }
    });
    match result {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        Err(error) => {
            let outcome = outcome_for(&error);
            output::error_line(&globals, &error, outcome);
            ExitCode::from(outcome.exit_code())
        }
    }
}
