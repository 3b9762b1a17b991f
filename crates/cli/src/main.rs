//! `cairn`: the command-line front end. The repository commands arrive with the repository
//! layer; for now it exposes a self-check of the chunk → blob → pack path on real files.

mod demo;

use clap::{Parser, Subcommand};

/// cairn: content-addressed, deduplicating, encrypted backups.
#[derive(Parser, Debug)]
#[command(name = "cairn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Chunk, encode and pack every file under PATH in memory, then read every pack back and
    /// check each file reassembles byte for byte. Prints what was stored.
    PackDemo {
        /// Directory (or file) to process.
        path: std::path::PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::PackDemo { path } => demo::run(&path),
    }
}
