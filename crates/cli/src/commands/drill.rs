//! `cairn drill [SNAPSHOT] --command CMD`: restore into a scratch directory, verify, run a
//! command against the result, record the outcome; `cairn drills`: list recorded drills.

use cairn_repo::Outcome;
use std::path::PathBuf;

use cairn_repo::ops::drill::DrillOptions;
use cairn_repo::ops::rpo::parse_duration;
use cairn_repo::SnapshotFilter;
use serde_json::json;

use crate::context::Globals;
use crate::output::{human_bytes, json_line, terminal};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Snapshot: "latest" (default), an id or a unique id prefix.
    #[arg(default_value = "latest")]
    snapshot: String,
    /// Restore only this path of the snapshot (and what is below it).
    #[arg(long, value_name = "PATH")]
    path: Option<String>,
    /// Command run with `sh -c` in the restored directory; CAIRN_DRILL_DIR names that
    /// directory and, when a single file was restored (a stdin backup), CAIRN_DRILL_FILE
    /// names the file. Exit 0 means the data is usable.
    #[arg(long, value_name = "CMD")]
    command: String,
    /// Kill the command after this long (e.g. 10min, 2h) and record the drill as failed.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// Create the scratch directory here instead of the system's temporary directory.
    #[arg(long, value_name = "DIR")]
    scratch_dir: Option<PathBuf>,
    /// With "latest": only snapshots of this host (repeatable).
    #[arg(long = "host")]
    hosts: Vec<String>,
    /// With "latest": only snapshots with this tag (repeatable).
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Restore owners (as root). A drill proves data; by default it does not install the
    /// owners, setuid/setgid bits, device nodes or security attributes a snapshot carries.
    #[arg(long)]
    owners: bool,
    /// Restore setuid and setgid bits.
    #[arg(long)]
    setid: bool,
    /// Create block and character device nodes.
    #[arg(long)]
    devices: bool,
    /// Restore security.* and trusted.* extended attributes (capabilities, SELinux labels).
    #[arg(long)]
    security_xattrs: bool,
    /// Pass this variable to the command although it is scrubbed by default (repeatable;
    /// scrubbed: CAIRN_*, RESTIC_* and cloud credentials such as AWS_*, AZURE_*, GOOGLE_*).
    #[arg(long = "pass-env", value_name = "NAME")]
    pass_env: Vec<String>,
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let timeout = args
        .timeout
        .as_deref()
        .map(|t| parse_duration(t, "--timeout"))
        .transpose()?;
    let repo = globals.open().await?;
    let filter = SnapshotFilter {
        hosts: args.hosts,
        tags: args.tags,
        paths: Vec::new(),
    };
    let entry = repo.find_snapshot(&args.snapshot, &filter).await?;
    if !globals.json && !globals.quiet {
        eprintln!(
            "drilling snapshot {}: restore, verify, then `{}`",
            entry.short_id(),
            terminal(&args.command)
        );
    }
    let options = DrillOptions {
        path: args.path,
        command: args.command,
        timeout,
        scratch_parent: args.scratch_dir,
        command_output_to_stderr: !globals.quiet,
        owners: args.owners,
        setid: args.setid,
        devices: args.devices,
        security_xattrs: args.security_xattrs,
        pass_env: args.pass_env,
        ..Default::default()
    };
    let result = repo.drill(&entry, &options).await?;
    let record = &result.record;
    if globals.json {
        let mut value = serde_json::to_value(record)?;
        if let serde_json::Value::Object(map) = &mut value {
            map.insert("message_type".into(), "summary".into());
            map.insert("id".into(), result.record_id.clone().into());
            map.insert("passed".into(), record.passed().into());
        }
        json_line(&value);
    } else if !globals.quiet || !record.passed() {
        let verdict = if record.passed() { "passed" } else { "FAILED" };
        println!(
            "drill {} of snapshot {} {verdict}: {} files, {} restored and verified in {:.2}s{}",
            &result.record_id[..8],
            entry.short_id(),
            record.files_restored,
            human_bytes(record.bytes_restored),
            record.duration_seconds,
            record
                .error
                .as_deref()
                .map(|e| format!("; {}", terminal(e)))
                .unwrap_or_default()
        );
    }
    Ok(record.verdict())
}

#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// Only drills of this snapshot (id or unique prefix).
    #[arg(long)]
    snapshot: Option<String>,
}

pub async fn list(globals: &Globals, args: ListArgs) -> anyhow::Result<Outcome> {
    let repo = globals.open().await?;
    let mut drills = repo.drills().await?;
    if let Some(prefix) = &args.snapshot {
        drills.retain(|(_, d)| d.snapshot.starts_with(prefix.as_str()));
    }
    if globals.json {
        let values: Vec<serde_json::Value> = drills
            .iter()
            .map(|(id, d)| {
                let mut value = serde_json::to_value(d).expect("records serialize");
                if let serde_json::Value::Object(map) = &mut value {
                    map.insert("id".into(), String::from(id.clone()).into());
                    map.insert("passed".into(), d.passed().into());
                }
                value
            })
            .collect();
        println!("{}", serde_json::Value::Array(values));
        return Ok(Outcome::Success);
    }
    println!(
        "{:<8}  {:<8}  {:<20}  {:<14}  {:>9}  {:>10}  command",
        "ID", "Snapshot", "Time", "Outcome", "Seconds", "Restored"
    );
    for (id, d) in &drills {
        println!(
            "{:<8}  {:<8}  {:<20}  {:<14}  {:>9.1}  {:>10}  {}",
            id.short(),
            d.snapshot.get(..8).unwrap_or(&d.snapshot),
            d.time.get(..19).unwrap_or(&d.time).replace('T', " "),
            json!(d.outcome).as_str().unwrap_or(""),
            d.duration_seconds,
            human_bytes(d.bytes_restored),
            terminal(&d.command)
        );
    }
    println!("{} drills", drills.len());
    Ok(Outcome::Success)
}
