//! `cairn mount MOUNTPOINT`: the repository as a read-only FUSE file system, laid out as
//! restic's `mount` lays it out (`snapshots/`, `ids/`, `hosts/`, `tags/`, each with `latest`).

mod blob_cache;
mod fs;
mod layout;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use cairn_repo::Outcome;
use fuser::MountOption;
use serde_json::json;

use super::snapshots::FilterArgs;
use crate::context::Globals;
use crate::output::json_line;

/// Default size of the blob cache, in MiB.
pub const DEFAULT_BLOB_CACHE_MIB: usize = 64;
/// Default least time between two listings of the snapshots, in seconds.
pub const DEFAULT_REFRESH_SECS: u64 = 5;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Directory to mount the repository on (must exist).
    mountpoint: PathBuf,
    #[command(flatten)]
    filter: FilterArgs,
    /// Let other users than the one mounting read the mount (needs user_allow_other in
    /// /etc/fuse.conf unless root).
    #[arg(long)]
    allow_other: bool,
    /// Do not let the kernel check permissions against the stored modes and owners (with
    /// --allow-other, everyone can read everything).
    #[arg(long)]
    no_default_permissions: bool,
    /// Show every file as owned by root.
    #[arg(long)]
    owner_root: bool,
}

/// Parsed `-o` options.
#[derive(Debug, PartialEq, Eq)]
struct MountOptions {
    blob_cache_mib: usize,
    refresh_secs: u64,
}

/// Reads the mount's keys among the global `-o KEY=VALUE` options: `mount.blob_cache=MIB`
/// (decoded chunks kept, default 64) and `mount.refresh=SECONDS` (least time between two
/// listings of the snapshots, default 5); other keys are the backend's.
fn parse_options(options: &[String]) -> anyhow::Result<MountOptions> {
    let mut parsed = MountOptions {
        blob_cache_mib: DEFAULT_BLOB_CACHE_MIB,
        refresh_secs: DEFAULT_REFRESH_SECS,
    };
    for option in options {
        let (key, value) = option.split_once('=').unwrap_or((option, ""));
        let Some(key) = key.trim().strip_prefix("mount.") else {
            continue;
        };
        let value = value.trim();
        let number = || {
            value
                .parse::<u64>()
                .with_context(|| format!("-o {key}={value}: not a whole number"))
        };
        match key {
            "blob_cache" => parsed.blob_cache_mib = usize::try_from(number()?)?,
            "refresh" => parsed.refresh_secs = number()?,
            _ => bail!(
                "unknown option mount.{key} (known: mount.blob_cache=MIB, mount.refresh=SECONDS)"
            ),
        }
    }
    Ok(parsed)
}

/// Refuses early, naming what to install, when FUSE cannot work here.
fn check_fuse(mountpoint: &Path) -> anyhow::Result<()> {
    if !Path::new("/dev/fuse").exists() {
        bail!(
            "FUSE is not available: /dev/fuse is missing (load the fuse kernel module, or in a \
             container pass the device with --device /dev/fuse)"
        );
    }
    let is_root = nix::unistd::geteuid().is_root();
    let helper = ["fusermount3", "fusermount"].iter().any(|name| {
        std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
    });
    if !is_root && !helper {
        bail!(
            "FUSE is not available: fusermount3 is not installed (install the fuse3 package, \
             e.g. apt-get install fuse3)"
        );
    }
    if !mountpoint.is_dir() {
        bail!(
            "{}: the mountpoint is not a directory",
            mountpoint.display()
        );
    }
    Ok(())
}

pub async fn run(globals: &Globals, args: Args) -> anyhow::Result<Outcome> {
    let options = parse_options(&globals.options)?;
    check_fuse(&args.mountpoint)?;
    let repo = globals.open().await?;
    let filter = args.filter.filter();
    let entries = repo.list_snapshots(&filter).await?;
    let index = repo.load_index().await?;
    let settings = fs::Settings {
        blob_cache_bytes: options.blob_cache_mib << 20,
        refresh: Duration::from_secs(options.refresh_secs),
        owner_root: args.owner_root,
        filter,
    };
    let filesystem = fs::MountedFs::new(
        repo,
        tokio::runtime::Handle::current(),
        settings,
        index,
        layout::Layout::of(&entries),
    );
    let mut mount_options = vec![
        MountOption::RO,
        MountOption::FSName("cairn".into()),
        MountOption::Subtype("cairn".into()),
    ];
    if args.allow_other {
        mount_options.push(MountOption::AllowOther);
    }
    if !args.no_default_permissions {
        mount_options.push(MountOption::DefaultPermissions);
    }
    let session = fuser::spawn_mount2(filesystem, &args.mountpoint, &mount_options)
        .with_context(|| format!("mounting on {}", args.mountpoint.display()))?;
    if !globals.quiet && !globals.json {
        eprintln!(
            "Now serving the repository at {}\nWhen finished, quit with Ctrl-c here or umount \
             the mountpoint.",
            args.mountpoint.display()
        );
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            // Unmounted from outside (umount, fusermount3 -u): the session has ended.
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if session.guard.is_finished() {
                    break;
                }
            }
        }
    }
    // Dropping the session unmounts (if still mounted) and ends its thread. A mount still
    // in use (a shell inside it, an open file) refuses that; it is then detached, so this
    // process never leaves a dead mount behind.
    drop(session);
    if is_mounted(&args.mountpoint) {
        for (program, flags) in [
            ("fusermount3", "-uz"),
            ("fusermount", "-uz"),
            ("umount", "-l"),
        ] {
            let detached = std::process::Command::new(program)
                .arg(flags)
                .arg(&args.mountpoint)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if detached {
                break;
            }
        }
    }
    if globals.json {
        json_line(&json!({
            "message_type": "summary",
            "mountpoint": args.mountpoint.display().to_string(),
        }));
    }
    Ok(Outcome::Success)
}

/// True if `point` is a mount point in this process's mount table.
fn is_mounted(point: &Path) -> bool {
    let Ok(point) = point.canonicalize() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mounts").is_ok_and(|mounts| {
        mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .any(|target| Path::new(target) == point)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_refuse_the_unknown() {
        let parsed = parse_options(&[
            "mount.blob_cache=8".into(),
            "s3.region=x".into(),
            "mount.refresh=1".into(),
        ])
        .unwrap();
        assert_eq!(
            parsed,
            MountOptions {
                blob_cache_mib: 8,
                refresh_secs: 1
            }
        );
        assert_eq!(
            parse_options(&[]).unwrap().blob_cache_mib,
            DEFAULT_BLOB_CACHE_MIB
        );
        assert!(parse_options(&["mount.blob_cache=lots".into()]).is_err());
        assert!(parse_options(&["mount.allow_root=1".into()]).is_err());
    }
}
