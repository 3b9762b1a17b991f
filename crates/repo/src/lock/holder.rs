//! Who holds a lock: enough about the holding process to tell, on the same host, that it no
//! longer exists (restic's `unlock` rule), and a clock that keeps counting while a host is
//! suspended.
//!
//! A process id alone is not enough: ids are reused, a host reboots under the same name,
//! and containers that share a host name (the containers of one pod) have separate process
//! id namespaces. So a lock records the boot id, the process id namespace and the process's
//! start time as well, and a holder counts as gone only when the evidence says so: another
//! boot of this host, or, in our own namespace, no such process or one started at another
//! time. Anything unknown counts as alive.

use std::time::Duration;

/// What identifies the process that took a lock (Linux; other systems record nothing).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    /// `/proc/sys/kernel/random/boot_id`: changes with every boot.
    pub boot_id: Option<String>,
    /// The process id namespace (`/proc/self/ns/pid`, e.g. `pid:[4026531836]`).
    pub pid_ns: Option<String>,
    /// The process's start time in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub start_ticks: Option<u64>,
}

impl ProcessIdentity {
    /// This process's identity.
    pub fn current() -> Self {
        ProcessIdentity {
            boot_id: boot_id(),
            pid_ns: pid_namespace(),
            start_ticks: start_ticks(std::process::id()),
        }
    }
}

fn boot_id() -> Option<String> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    link.into_os_string().into_string().ok()
}

/// Field 22 of `/proc/PID/stat`. The command name (field 2) is in parentheses and may hold
/// spaces and parentheses itself, so fields are counted after its last `)`.
fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start_ticks(&stat)
}

pub(crate) fn parse_start_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is the first; field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// Whether a lock's holder is known to be gone, judged on `host` (this host's name).
///
/// `Some(reason)` only on evidence: same host name and either another boot, or (in this
/// process id namespace) no process with that id, or one that started at another time.
pub(crate) fn holder_gone(
    lock_host: &str,
    pid: u32,
    recorded: &ProcessIdentity,
    host: &str,
    here: &ProcessIdentity,
) -> Option<String> {
    if lock_host.is_empty() || lock_host != host {
        return None;
    }
    if let (Some(then), Some(now)) = (&recorded.boot_id, &here.boot_id) {
        if then != now {
            return Some(format!("taken before this host ({host}) last booted"));
        }
    } else {
        // Without a boot id (an old lock, or no /proc) nothing more can be told safely.
        return None;
    }
    if recorded.pid_ns.is_none() || recorded.pid_ns != here.pid_ns {
        return None; // another container on this host: its process ids are not ours
    }
    if pid == 0 || i32::try_from(pid).is_err() {
        return None;
    }
    // EPERM means it exists under another user: alive.
    if let Err(nix::errno::Errno::ESRCH) =
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), None)
    {
        return Some(format!(
            "process {pid} on this host ({host}) no longer exists"
        ));
    }
    match (recorded.start_ticks, start_ticks(pid)) {
        (Some(then), Some(now)) if then != now => Some(format!(
            "process {pid} on this host ({host}) no longer exists (the id now belongs to another process)"
        )),
        _ => None,
    }
}

/// Time since boot including time suspended (`CLOCK_BOOTTIME`): unlike `Instant`
/// (`CLOCK_MONOTONIC`), it keeps counting while a laptop sleeps or a VM is suspended, so a
/// holder sees how long it really went without refreshing.
pub(crate) fn boot_time() -> Duration {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => Duration::new(
            ts.tv_sec().max(0) as u64,
            ts.tv_nsec().clamp(0, 999_999_999) as u32,
        ),
        // No boot clock (not Linux): the wall clock, which at least counts suspension.
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn start_time_is_read_past_odd_command_names() {
        let stat = "42 (a) b) (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_ticks(stat), Some(987654));
        assert_eq!(parse_start_ticks("42 (x) S 1"), None);
        assert_eq!(parse_start_ticks("no paren"), None);
        let me = ProcessIdentity::current();
        assert!(me.start_ticks.is_some() && me.boot_id.is_some() && me.pid_ns.is_some());
    }

    #[test]
    fn only_evidence_makes_a_holder_gone() {
        let here = ProcessIdentity::current();
        let me = std::process::id();
        // This very process: alive.
        assert_eq!(holder_gone("h", me, &here, "h", &here), None);
        // Another host, or unknown identity: never judged.
        assert_eq!(holder_gone("other", u32::MAX - 1, &here, "h", &here), None);
        assert_eq!(
            holder_gone("h", me, &ProcessIdentity::default(), "h", &here),
            None
        );
        // Another container's namespace: not judged.
        let foreign = ProcessIdentity {
            pid_ns: Some("pid:[1]".into()),
            ..here.clone()
        };
        assert_eq!(holder_gone("h", 4_000_000, &foreign, "h", &here), None);
        // A previous boot: gone.
        let rebooted = ProcessIdentity {
            boot_id: Some("another-boot".into()),
            ..here.clone()
        };
        assert!(holder_gone("h", me, &rebooted, "h", &here).is_some());
        // A pid that does not exist (above pid_max): gone.
        assert!(holder_gone("h", 4_194_305, &here, "h", &here)
            .unwrap()
            .contains("no longer exists"));
        // Our pid with another start time: reused, gone.
        let reused = ProcessIdentity {
            start_ticks: here.start_ticks.map(|t| t + 1),
            ..here.clone()
        };
        assert!(holder_gone("h", me, &reused, "h", &here)
            .unwrap()
            .contains("another process"));
    }

    #[test]
    fn boot_clock_advances() {
        let a = boot_time();
        std::thread::sleep(Duration::from_millis(5));
        assert!(boot_time() >= a + Duration::from_millis(5));
    }

    proptest! {
        #[test]
        fn stat_parsing_never_panics(s in ".{0,200}") {
            let _ = parse_start_ticks(&s);
        }
    }
}
