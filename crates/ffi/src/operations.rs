//! The operations: backup, snapshots, restore, dump, forget, prune, check, copy and keys.
//! Each parses its JSON options, runs on the handle's runtime and returns a JSON result.

use std::ffi::{c_char, c_void};
use std::path::PathBuf;

use cairn_repo::ops::backup::{BackupOptions, BackupReport};
use cairn_repo::ops::check::CheckOptions;
use cairn_repo::ops::copy::CopyOptions;
use cairn_repo::ops::forget::ForgetOptions;
use cairn_repo::ops::prune::PruneOptions;
use cairn_repo::ops::restore::RestoreOptions;
use cairn_repo::ops::rpo::RpoOptions;
use cairn_repo::ops::wire::{BackupWire, CheckWire, CopyWire, ForgetWire, RpoWire};
use cairn_repo::{KdfParams, SnapshotFilter};
use serde_json::{json, Value};

use crate::callbacks::{
    progress, token, CairnCancel, CairnProgressFn, CairnReadFn, CairnWriteFn, CallbackReader,
    CallbackWriter, UserData,
};
use crate::handle::{handle, CairnRepo};
use crate::options::{parse, DrillJson, MetricsJson};
use crate::status::{give_string, guard, optional_str, required_str, CairnStatus, Failure};

/// The common shape of a JSON-in, JSON-out call: borrow the handle, parse the options
/// (`what` names them in errors), run `body`, hand its JSON to `out_json`.
///
/// # Safety
/// `repo` is null or a handle from `cairn_repo_open`/`cairn_repo_init`; `options_json` is
/// null or a NUL-terminated string; `out_json` is null or points to writable storage for
/// one pointer.
unsafe fn json_call<T: serde::de::DeserializeOwned + Default>(
    repo: *const CairnRepo,
    options_json: *const c_char,
    what: &str,
    out_json: *mut *mut c_char,
    body: impl FnOnce(&CairnRepo, T) -> Result<(CairnStatus, String), Failure>,
) -> CairnStatus {
    guard(|| {
        // SAFETY: the caller's contract: strings null or valid, out null or writable.
        let handle = handle(repo)?;
        // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
        let options: T = parse(unsafe { optional_str(options_json, what) }?, what)?;
        let (status, text) = body(&handle, options)?;
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, text) }?;
        Ok(status)
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, Failure> {
    serde_json::to_string(value).map_err(|e| Failure::invalid(e.to_string()))
}

fn backup_result(report: &BackupReport) -> (CairnStatus, String) {
    let value = json!({
        "snapshot_id": report.snapshot_id,
        "snapshot": cairn_repo::SnapshotEntry {
            id: report.snapshot_id.clone(),
            snapshot: report.snapshot.clone(),
        }.to_json(),
        "issues": report.issues.iter().map(|i| json!({
            "item": i.path.display().to_string(),
            "during": i.during,
            "message": i.message,
        })).collect::<Vec<_>>(),
    });
    let status = CairnStatus::from(report.outcome());
    (status, value.to_string())
}

/// Backs up `paths` (`count` NUL-terminated strings) into a new snapshot. Returns
/// `CAIRN_STATUS_INCOMPLETE` when some items could not be read (the snapshot is written and
/// lists them). `*out_json` (if `out_json` is not null) receives `{"snapshot_id",
/// "snapshot", "issues": [{"item", "during", "message"}]}`.
///
/// `options_json`: null or `{"host", "tags": [], "excludes": [], "exclude_files": [],
/// "exclude_caches", "exclude_if_present": [], "one_file_system", "force", "parent":
/// "latest" | "none" | id, "time": RFC 3339, "memory_budget": bytes}`. `progress` (may be null) is called with
/// `user`; `cancel` may be null.
///
/// # Safety
/// `repo` is a live handle; `paths` points to `count` valid strings; other pointers are null
/// or valid as described.
#[no_mangle]
pub unsafe extern "C" fn cairn_backup_paths(
    repo: *const CairnRepo,
    paths: *const *const c_char,
    count: usize,
    options_json: *const c_char,
    progress_fn: CairnProgressFn,
    user: *mut c_void,
    cancel: *const CairnCancel,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        if paths.is_null() || count == 0 {
            return Err(Failure::invalid("no paths given"));
        }
        let mut list = Vec::with_capacity(count);
        for i in 0..count {
            // SAFETY: `paths` has `count` entries.
            let path = unsafe { required_str(*paths.add(i), "path") }?;
            list.push(PathBuf::from(path));
        }
        // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
        let mut options: BackupOptions =
            parse::<BackupWire>(unsafe { optional_str(options_json, "options") }?, "backup")?
                .try_into()?;
        options.progress = progress(progress_fn, user);
        // SAFETY: `cancel` is null or a live cancel handle (this function's # Safety contract).
        options.cancel = unsafe { token(cancel) };
        let report = handle.run(handle.repo().backup(&list, options))?;
        let (status, text) = backup_result(&report);
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, text) }?;
        Ok(status)
    })
}

/// Backs up everything read from `read(read_user, ...)` as one file named `filename` at the
/// snapshot's root (a database dump piped in). Options, progress, cancel and result as for
/// `cairn_backup_paths`.
///
/// # Safety
/// `read` is a valid function (see `CairnReadFn`); other pointers as for
/// `cairn_backup_paths`.
#[no_mangle]
pub unsafe extern "C" fn cairn_backup_reader(
    repo: *const CairnRepo,
    read: CairnReadFn,
    read_user: *mut c_void,
    filename: *const c_char,
    options_json: *const c_char,
    progress_fn: CairnProgressFn,
    user: *mut c_void,
    cancel: *const CairnCancel,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        let read = read.ok_or_else(|| Failure::invalid("read callback is null"))?;
        let reader = CallbackReader {
            read,
            user: UserData(read_user),
        };
        // SAFETY: per the contract above.
        unsafe {
            backup_stream(
                repo,
                reader,
                filename,
                options_json,
                progress_fn,
                user,
                cancel,
                out_json,
            )
        }
    })
}

/// Like `cairn_backup_reader`, reading file descriptor `fd` to its end (a pipe, a socket, a
/// file). The descriptor stays the caller's: it is neither closed nor moved.
///
/// # Safety
/// `fd` is open for reading for the whole call; other pointers as for `cairn_backup_paths`.
#[no_mangle]
pub unsafe extern "C" fn cairn_backup_fd(
    repo: *const CairnRepo,
    fd: i32,
    filename: *const c_char,
    options_json: *const c_char,
    progress_fn: CairnProgressFn,
    user: *mut c_void,
    cancel: *const CairnCancel,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        if fd < 0 {
            return Err(Failure::invalid(format!("invalid file descriptor {fd}")));
        }
        // Read through a duplicate, so closing ours leaves the caller's descriptor open.
        let duplicate = nix::unistd::dup(
            // SAFETY: the caller keeps `fd` open for the call.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        )
        .map_err(|e| Failure::invalid(format!("file descriptor {fd}: {e}")))?;
        let file = std::fs::File::from(duplicate);
        // SAFETY: per the contract above.
        unsafe {
            backup_stream(
                repo,
                file,
                filename,
                options_json,
                progress_fn,
                user,
                cancel,
                out_json,
            )
        }
    })
}

/// Backs up what `reader` yields as one file: the body of `cairn_backup_reader` and
/// `cairn_backup_fd`.
///
/// # Safety
/// As for `cairn_backup_reader`: `repo` a live handle or null, the strings NUL-terminated
/// or null, `cancel` null or from `cairn_cancel_new`, `out_json` null or writable.
#[allow(clippy::too_many_arguments)]
unsafe fn backup_stream<R: std::io::Read + Send + 'static>(
    repo: *const CairnRepo,
    reader: R,
    filename: *const c_char,
    options_json: *const c_char,
    progress_fn: CairnProgressFn,
    user: *mut c_void,
    cancel: *const CairnCancel,
    out_json: *mut *mut c_char,
) -> Result<CairnStatus, Failure> {
    // SAFETY: forwarded contract.
    let handle = handle(repo)?;
    // SAFETY: `filename` is null (refused) or a NUL-terminated string (this function's # Safety contract).
    let filename = unsafe { required_str(filename, "filename") }?;
    // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
    let mut options: BackupOptions =
        parse::<BackupWire>(unsafe { optional_str(options_json, "options") }?, "backup")?
            .try_into()?;
    options.progress = progress(progress_fn, user);
    // SAFETY: `cancel` is null or a live cancel handle (this function's # Safety contract).
    options.cancel = unsafe { token(cancel) };
    let report = handle.run(handle.repo().backup_stream(reader, filename, options))?;
    let (status, text) = backup_result(&report);
    // SAFETY: `out_json` is null or writable (this function's # Safety contract).
    unsafe { give_string(out_json, text) }?;
    Ok(status)
}

/// Lists snapshots as restic's `snapshots --json` does (a JSON array, oldest first).
/// `filter_json`: null or `{"hosts": [], "tags": [], "paths": []}`.
///
/// # Safety
/// `repo` is a live handle; `out_json` is writable; `filter_json` is null or a string.
#[no_mangle]
pub unsafe extern "C" fn cairn_snapshots(
    repo: *const CairnRepo,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            filter_json,
            "filter",
            out_json,
            |handle, filter: SnapshotFilter| {
                let list = handle.run(handle.repo().list_snapshots(&filter))?;
                let value = Value::Array(list.iter().map(|s| s.to_json()).collect());
                Ok((CairnStatus::Ok, value.to_string()))
            },
        )
    }
}

/// Counts what the snapshots passing `filter_json` (null or `{"hosts": [], "tags": [],
/// "paths": []}`) hold and what the repository stores: `*out_json` receives restic's `stats
/// --json` object (`total_size`, `total_file_count`, `snapshots_count`, `total_blob_count`,
/// `total_uncompressed_size`, `total_stored_size`, `repository_size`, `pack_count`,
/// `dedup_ratio`, `compression_ratio`, `compression_space_saving`), as `cairn stats --json`.
///
/// # Safety
/// `repo` is a live handle; `out_json` is writable; `filter_json` is null or a string.
#[no_mangle]
pub unsafe extern "C" fn cairn_stats(
    repo: *const CairnRepo,
    filter_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            filter_json,
            "filter",
            out_json,
            |handle, filter: SnapshotFilter| {
                let stats = handle.run(handle.repo().stats(&filter))?;
                Ok((CairnStatus::Ok, to_json(&stats)?))
            },
        )
    }
}

/// Restores snapshot `snapshot` (id, unique prefix or "latest", optionally followed by
/// `:PATH` to restore only the directory PATH in it, as restic's `SNAPSHOT:PATH`) into
/// directory `target`, where each backed-up path is recreated under its full original path
/// (with `:PATH`, PATH's contents are restored at the top of `target`). `options_json`: null
/// or `{"include": [], "exclude": [], "verify": false, "delete": false, "no_owner": false,
/// "no_setid": false, "no_devices": false, "include_xattr": [], "exclude_xattr": [],
/// "max_entries": N}` (docs/ffi.md; a snapshot expanding to more than `max_entries` entries
/// is refused before anything is written). Every path is resolved beneath `target`, never
/// through a symlink. `*out_json` receives
/// `{"files_restored", "dirs_restored", "bytes_restored", "files_verified", "errors":
/// [{"path", "message"}]}`; errors for single items give `CAIRN_STATUS_INCOMPLETE`.
///
/// # Safety
/// As for `cairn_backup_paths`.
#[no_mangle]
pub unsafe extern "C" fn cairn_restore(
    repo: *const CairnRepo,
    snapshot: *const c_char,
    target: *const c_char,
    options_json: *const c_char,
    progress_fn: CairnProgressFn,
    user: *mut c_void,
    cancel: *const CairnCancel,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        // SAFETY: `snapshot` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let spec = unsafe { required_str(snapshot, "snapshot") }?;
        // SAFETY: `target` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let target = PathBuf::from(unsafe { required_str(target, "target") }?);
        let mut options: RestoreOptions =
            // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
            parse(unsafe { optional_str(options_json, "options") }?, "restore")?;
        options.progress = progress(progress_fn, user);
        // SAFETY: `cancel` is null or a live cancel handle (this function's # Safety contract).
        options.cancel = unsafe { token(cancel) };
        let report = handle.run(handle.repo().restore_spec(spec, &target, options))?;
        let value = json!({
            "files_restored": report.files_restored,
            "dirs_restored": report.dirs_restored,
            "bytes_restored": report.bytes_restored,
            "files_verified": report.files_verified,
            "errors": report.errors.iter().map(|(p, m)| json!({
                "path": p.display().to_string(),
                "message": m,
            })).collect::<Vec<_>>(),
        });
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, value.to_string()) }?;
        Ok(CairnStatus::from(report.outcome()))
    })
}

/// Writes the content of file `path` in `snapshot` through `write(write_user, ...)`, in
/// order, and stores the byte count in `*out_bytes` (if not null).
///
/// # Safety
/// `write` is a valid function (see `CairnWriteFn`); strings as for `cairn_restore`.
#[no_mangle]
pub unsafe extern "C" fn cairn_dump(
    repo: *const CairnRepo,
    snapshot: *const c_char,
    path: *const c_char,
    write: CairnWriteFn,
    write_user: *mut c_void,
    out_bytes: *mut u64,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        // SAFETY: `snapshot` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let spec = unsafe { required_str(snapshot, "snapshot") }?;
        // SAFETY: `path` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let path = unsafe { required_str(path, "path") }?;
        let write = write.ok_or_else(|| Failure::invalid("write callback is null"))?;
        let writer = CallbackWriter {
            write,
            user: UserData(write_user),
        };
        let bytes = handle.run(async {
            let entry = handle
                .repo()
                .find_snapshot(spec, &SnapshotFilter::default())
                .await?;
            let index = handle.repo().load_index().await?;
            let node = handle
                .repo()
                .find_node(&index, &entry.snapshot, path)
                .await?;
            handle.repo().dump(&index, &node, writer).await
        })?;
        // SAFETY: null or writable.
        if let Some(out) = unsafe { out_bytes.as_mut() } {
            *out = bytes;
        }
        Ok(CairnStatus::Ok)
    })
}

/// Removes snapshots by policy or id. `policy_json`: `{"ids": [], "keep_last",
/// "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly" (counts, -1 =
/// unlimited), "keep_within", "keep_within_hourly", ... (durations like "1y2m3d4h"),
/// "keep_tags": ["a,b"], "group_by": "host,paths", "allow_remove_latest", "dry_run",
/// "hosts", "tags", "paths"}`. `*out_json` receives `{"removed": [ids], "failed": [{"id",
/// "message"}], "groups": [{"key", "keep": [{"id", "reasons"}], "remove": [ids]}]}`.
///
/// # Safety
/// `repo` is a live handle; `policy_json` a string; `out_json` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_forget(
    repo: *const CairnRepo,
    policy_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        let json: ForgetWire = parse(
            // SAFETY: `policy_json` is null (refused) or a NUL-terminated string (this function's # Safety contract).
            Some(unsafe { required_str(policy_json, "policy") }?),
            "forget",
        )?;
        let options = ForgetOptions::try_from(json)?;
        let report = handle.run(handle.repo().forget(&options))?;
        let value = json!({
            "removed": report.removed,
            "failed": report.failed.iter().map(|(id, m)| json!({"id": id, "message": m})).collect::<Vec<_>>(),
            "groups": report.groups.iter().map(|g| json!({
                "key": g.key,
                "keep": g.keep.iter().map(|d| json!({"id": d.entry.id, "reasons": d.reasons})).collect::<Vec<_>>(),
                "remove": g.remove.iter().map(|d| d.entry.id.clone()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        });
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, value.to_string()) }?;
        Ok(CairnStatus::from(report.outcome()))
    })
}

/// Removes data no snapshot uses, safely while backups run (see docs/format.md).
/// `options_json`: null or `{"max_unused": "5%" | "0" | "500M" | "unlimited" | 0.05, "max_repack_bytes", "dry_run"}`.
/// `*out_json` receives the prune report. `CAIRN_STATUS_LOCKED` if another prune runs.
///
/// # Safety
/// `repo` is a live handle; strings null or valid; `out_json` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_prune(
    repo: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            options_json,
            "prune",
            out_json,
            |handle, options: PruneOptions| {
                let report = handle.run(handle.repo().prune(&options))?;
                Ok((CairnStatus::Ok, to_json(&report)?))
            },
        )
    }
}

/// Checks the repository and records the result in it (for metrics). `options_json`: null or
/// `{"read_data": false, "read_data_subset": "n/m" | "x%"}`. `*out_json` receives `{"ok",
/// "errors": [messages], "warnings": [messages], "packs_read", "snapshots_checked", "record":
/// id, "record_error": message}`; damage gives `CAIRN_STATUS_CORRUPT`.
///
/// # Safety
/// As for `cairn_prune`.
#[no_mangle]
pub unsafe extern "C" fn cairn_check(
    repo: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            options_json,
            "check",
            out_json,
            |handle, json: CheckWire| {
                let options = CheckOptions::try_from(json)?;
                let (report, recorded) = handle.run(handle.repo().check_and_record(&options))?;
                let (errors, warnings): (Vec<_>, Vec<_>) =
                    report.findings.iter().partition(|f| f.is_error());
                let value = json!({
                    "ok": report.is_ok(),
                    "errors": errors.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                    "warnings": warnings.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
                    "packs_read": report.packs_read,
                    "snapshots_checked": report.snapshots_checked,
                    "record": recorded.as_ref().ok(),
                    "record_error": recorded.as_ref().err().map(|e| e.to_string()),
                });
                let status = CairnStatus::from(report.outcome());
                Ok((status, value.to_string()))
            },
        )
    }
}

/// Copies snapshots from `source` into `dest` (see docs/cli.md, `copy`). `options_json`:
/// null or `{"ids": [], "hosts": [], "tags": [], "paths": []}`. `*out_json` receives the
/// copy report.
///
/// # Safety
/// Both handles are live (they may be the same only if you mean it); strings null or valid.
#[no_mangle]
pub unsafe extern "C" fn cairn_copy(
    source: *const CairnRepo,
    dest: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let source = handle(source)?;
        let dest = handle(dest)?;
        // SAFETY: `options_json` is null or a NUL-terminated string (this function's # Safety contract).
        let json: CopyWire = parse(unsafe { optional_str(options_json, "options") }?, "copy")?;
        let options = CopyOptions::from(json);
        let report = source.run(source.repo().copy_snapshots(&dest.repo(), &options))?;
        let text = to_json(&report)?;
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, text) }?;
        Ok(CairnStatus::Ok)
    })
}

/// Adds a key (password) to the repository; `*out_id` receives the new key's id.
///
/// # Safety
/// `repo` is a live handle; `password` a string; `out_id` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_key_add(
    repo: *const CairnRepo,
    password: *const c_char,
    out_id: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        // SAFETY: `password` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let password = unsafe { required_str(password, "password") }?;
        let id = handle.run(
            handle
                .repo()
                .add_key(password.as_bytes(), KdfParams::DEFAULT),
        )?;
        // SAFETY: `out_id` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_id, id) }?;
        Ok(CairnStatus::Ok)
    })
}

/// Changes the password of the key this handle was opened with: adds a key for
/// `new_password`, then removes the old one. `*out_id` receives the new key's id.
///
/// # Safety
/// `repo` is a live handle; `new_password` a string; `out_id` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_key_passwd(
    repo: *const CairnRepo,
    new_password: *const c_char,
    out_id: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        // SAFETY: `new_password` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let password = unsafe { required_str(new_password, "new password") }?;
        let mut shared = handle
            .shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut changed = shared.clone();
        let id = handle.run(changed.change_password(password.as_bytes(), KdfParams::DEFAULT))?;
        *shared = changed;
        drop(shared);
        // SAFETY: `out_id` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_id, id) }?;
        Ok(CairnStatus::Ok)
    })
}

/// Lists keys as a JSON array of `{"id", "created", "hostname", "username", "current"}`.
///
/// # Safety
/// `repo` is a live handle; `out_json` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_key_list(
    repo: *const CairnRepo,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        let keys = handle.run(handle.repo().list_keys())?;
        let value = Value::Array(
            keys.iter()
                .map(|k| {
                    json!({"id": k.id, "created": k.created, "hostname": k.hostname,
                           "username": k.username, "current": k.current})
                })
                .collect(),
        );
        // SAFETY: `out_json` is null or writable (this function's # Safety contract).
        unsafe { give_string(out_json, value.to_string()) }?;
        Ok(CairnStatus::Ok)
    })
}

/// Removes the key `id` (or unique prefix). The key this handle was opened with cannot be
/// removed.
///
/// # Safety
/// `repo` is a live handle; `id` a string.
#[no_mangle]
pub unsafe extern "C" fn cairn_key_remove(
    repo: *const CairnRepo,
    id: *const c_char,
) -> CairnStatus {
    guard(|| {
        // SAFETY: per the contract above.
        let handle = handle(repo)?;
        // SAFETY: `id` is null (refused) or a NUL-terminated string (this function's # Safety contract).
        let id = unsafe { required_str(id, "id") }?;
        handle.run(handle.repo().remove_key(id))?;
        Ok(CairnStatus::Ok)
    })
}

/// Runs a restore drill (see docs/cli.md, `drill`): restores the snapshot into a scratch
/// directory, verifies it, runs `command` with `sh -c` there, records the outcome.
/// `options_json`: `{"command": "...", "snapshot": "latest", "path": null, "timeout":
/// "10min", "scratch_dir": null, "hosts": [], "tags": [], "owners": false, "setid": false,
/// "devices": false, "security_xattrs": false, "pass_env": []}`: by default the scratch
/// restore applies no owners, setuid/setgid bits, device nodes or security xattrs, and the
/// command's environment lacks every `CAIRN_*`, `RESTIC_*` and cloud credential variable
/// except those named in `pass_env`. `*out_json` receives the drill
/// record plus its `id`. A drill that ran and failed gives `CAIRN_STATUS_DRILL_FAILED`. The
/// command's output is discarded.
///
/// # Safety
/// As for `cairn_prune`.
#[no_mangle]
pub unsafe extern "C" fn cairn_drill(
    repo: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            options_json,
            "drill",
            out_json,
            |handle, json: DrillJson| {
                let options = json.options()?;
                let spec = json.snapshot.as_deref().unwrap_or("latest");
                let repo = handle.repo();
                let result = handle.run(async {
                    let entry = repo.find_snapshot(spec, &json.filter()).await?;
                    repo.drill(&entry, &options).await
                })?;
                let mut value = serde_json::to_value(&result.record)
                    .map_err(|e| Failure::invalid(e.to_string()))?;
                value["id"] = Value::from(result.record_id);
                let status = CairnStatus::from(result.record.verdict());
                Ok((status, value.to_string()))
            },
        )
    }
}

/// Lists recorded drills, oldest first. `*out_json` receives a JSON array of drill records,
/// each with its `id`.
///
/// # Safety
/// `repo` is a live handle; `out_json` null or writable.
#[no_mangle]
pub unsafe extern "C" fn cairn_drills(
    repo: *const CairnRepo,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            std::ptr::null(),
            "drills",
            out_json,
            |handle, (): ()| {
                let drills = handle.run(handle.repo().drills())?;
                let values: Vec<Value> = drills
                    .into_iter()
                    .map(|(id, record)| {
                        let mut value = serde_json::to_value(record).unwrap_or(Value::Null);
                        value["id"] = Value::from(String::from(id));
                        value
                    })
                    .collect();
                Ok((CairnStatus::Ok, Value::from(values).to_string()))
            },
        )
    }
}

/// Recovery-point status (see docs/cli.md, `rpo`). `options_json`: `{"max_age": "26h",
/// "max_verified_age": "8d", "group_by": "host,paths", "hosts": [], "tags": [], "paths":
/// []}`. `*out_json` receives the report; a breach gives `CAIRN_STATUS_RPO_BREACHED`.
///
/// # Safety
/// As for `cairn_prune`.
#[no_mangle]
pub unsafe extern "C" fn cairn_rpo(
    repo: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            options_json,
            "rpo",
            out_json,
            |handle, json: RpoWire| {
                let report = handle.run(handle.repo().rpo(&RpoOptions::try_from(json)?))?;
                let status = CairnStatus::from(report.outcome());
                Ok((status, to_json(&report)?))
            },
        )
    }
}

/// Repository metrics. `options_json`: null or `{"group_by": "host,paths", "textfile":
/// path}`. `*out_json` receives the metrics as JSON plus `"prometheus"`: the text
/// exposition, which is also written atomically to `textfile` when given.
///
/// # Safety
/// As for `cairn_prune`.
#[no_mangle]
pub unsafe extern "C" fn cairn_metrics(
    repo: *const CairnRepo,
    options_json: *const c_char,
    out_json: *mut *mut c_char,
) -> CairnStatus {
    // SAFETY: per the contract above.
    unsafe {
        json_call(
            repo,
            options_json,
            "metrics",
            out_json,
            |handle, json: MetricsJson| {
                let metrics =
                    handle.run(handle.repo().metrics(json.group_by()?, chrono::Utc::now()))?;
                let text = metrics.to_prometheus();
                if let Some(path) = &json.textfile {
                    cairn_repo::ops::metrics::write_textfile(path.as_ref(), &text)?;
                }
                let mut value =
                    serde_json::to_value(&metrics).map_err(|e| Failure::invalid(e.to_string()))?;
                value["prometheus"] = Value::from(text);
                Ok((CairnStatus::Ok, value.to_string()))
            },
        )
    }
}
