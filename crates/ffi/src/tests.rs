//! The ABI's guards, driven through the exported functions as a C caller would: calls from
//! inside callbacks, the owned copy of the last error, and closing a handle in use.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::{null, null_mut};
use std::sync::mpsc;

use crate::handle::{cairn_repo_close, cairn_repo_init, cairn_repo_open};
use crate::operations::{cairn_backup_reader, cairn_dump, cairn_snapshots};
use crate::status::{cairn_last_error, cairn_last_error_copy, cairn_string_free};
use crate::{CairnRepo, CairnStatus};

const INIT: &CStr = c"{\"kdf_memory_kib\": 19456, \"kdf_time_cost\": 2}";

struct Repo {
    _dir: tempfile::TempDir,
    url: CString,
    handle: *mut CairnRepo,
}

fn init() -> Repo {
    let dir = tempfile::tempdir().unwrap();
    let url = CString::new(dir.path().join("repo").to_str().unwrap()).unwrap();
    let mut handle = null_mut();
    // SAFETY: valid strings and out pointer.
    let status =
        unsafe { cairn_repo_init(url.as_ptr(), c"pw".as_ptr(), INIT.as_ptr(), &mut handle) };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
    Repo {
        _dir: dir,
        url,
        handle,
    }
}

/// This thread's last error, copied through `cairn_last_error_copy`.
fn last_error() -> Option<String> {
    let copy = cairn_last_error_copy();
    if copy.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string cairn allocated; freed right after reading.
    let text = unsafe { CStr::from_ptr(copy) }.to_str().unwrap().to_owned();
    // SAFETY: a string cairn returned, freed once.
    unsafe { cairn_string_free(copy) };
    Some(text)
}

/// What a callback saw when it called cairn: a status and the message, per call.
type Seen = Vec<(&'static str, CairnStatus, Option<String>)>;

/// Makes the cairn calls a misbehaving callback would make on `repo`, recording each.
fn call_cairn_from_callback(repo: *mut CairnRepo, url: &CStr, seen: &mut Seen) {
    // SAFETY (all): valid strings and out pointers; `repo` is open.
    // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
    let status = unsafe { cairn_snapshots(repo, null(), null_mut()) };
    seen.push(("snapshots", status, last_error()));
    let mut other = null_mut();
    // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
    let status = unsafe { cairn_repo_open(url.as_ptr(), c"pw".as_ptr(), null(), &mut other) };
    seen.push(("open", status, last_error()));
    assert!(other.is_null(), "no handle from a refused open");
    let status = cairn_repo_close(repo);
    seen.push(("close", status, last_error()));
}

fn assert_all_refused(seen: &Seen, kind: &str) {
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (call, status, message) in seen {
        assert_eq!(*status, CairnStatus::Reentrant, "{call}: {message:?}");
        let message = message.as_deref().unwrap_or_default();
        assert!(
            message.contains(&format!("inside a {kind} callback")),
            "{call}: {message}"
        );
    }
}

struct ReadState {
    repo: *mut CairnRepo,
    url: CString,
    seen: Seen,
    left: usize,
}

unsafe extern "C-unwind" fn read_and_reenter(user: *mut c_void, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `user` is the `ReadState` the test passed; reads are never concurrent.
    let state = unsafe { &mut *user.cast::<ReadState>() };
    if state.seen.is_empty() {
        call_cairn_from_callback(state.repo, &state.url.clone(), &mut state.seen);
    }
    let n = len.min(state.left);
    // SAFETY: `buf` has `len` writable bytes.
    unsafe { std::ptr::write_bytes(buf, b'x', n) };
    state.left -= n;
    n as isize
}

#[test]
fn cairn_calls_from_a_read_callback_are_refused() {
    let repo = init();
    let mut state = ReadState {
        repo: repo.handle,
        url: repo.url.clone(),
        seen: Vec::new(),
        left: 100_000,
    };
    let mut out = null_mut();
    // SAFETY: valid handle, callback and strings; `state` outlives the call.
    let status = unsafe {
        cairn_backup_reader(
            repo.handle,
            Some(read_and_reenter),
            (&raw mut state).cast(),
            c"data.bin".as_ptr(),
            null(),
            None,
            null_mut(),
            null(),
            &mut out,
        )
    };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
    // SAFETY: a string cairn returned, freed once.
    unsafe { cairn_string_free(out) };
    assert_all_refused(&state.seen, "read");
    // The refused close did nothing: the handle still works and closes normally.
    assert_eq!(
        // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
        unsafe { cairn_snapshots(repo.handle, null(), null_mut()) },
        CairnStatus::Ok
    );
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}

struct WriteState {
    repo: *mut CairnRepo,
    url: CString,
    seen: Seen,
    bytes: usize,
}

unsafe extern "C-unwind" fn write_and_reenter(
    user: *mut c_void,
    _buf: *const u8,
    len: usize,
) -> i32 {
    // SAFETY: `user` is the `WriteState` the test passed.
    let state = unsafe { &mut *user.cast::<WriteState>() };
    if state.seen.is_empty() {
        call_cairn_from_callback(state.repo, &state.url.clone(), &mut state.seen);
    }
    state.bytes += len;
    0
}

unsafe extern "C-unwind" fn read_pattern(user: *mut c_void, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `user` is a `usize` count of bytes left.
    let left = unsafe { &mut *user.cast::<usize>() };
    let n = len.min(*left);
    // SAFETY: `buf` has room for `len` bytes (the read callback's contract) and `n <= len`.
    unsafe { std::ptr::write_bytes(buf, 7, n) };
    *left -= n;
    n as isize
}

fn backup_pattern(repo: *mut CairnRepo, bytes: usize) {
    let mut left = bytes;
    // SAFETY: valid handle, callback and strings.
    let status = unsafe {
        cairn_backup_reader(
            repo,
            Some(read_pattern),
            (&raw mut left).cast(),
            c"data.bin".as_ptr(),
            null(),
            None,
            null_mut(),
            null(),
            null_mut(),
        )
    };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
}

/// The write callback runs on the caller's own thread, inside the call: a nested call there
/// used to panic ("cannot start a runtime from within a runtime") and come back `Internal`.
#[test]
fn cairn_calls_from_a_write_callback_are_refused() {
    let repo = init();
    backup_pattern(repo.handle, 50_000);
    let mut state = WriteState {
        repo: repo.handle,
        url: repo.url.clone(),
        seen: Vec::new(),
        bytes: 0,
    };
    let mut dumped = 0u64;
    // SAFETY: valid handle, callback and strings; `state` outlives the call.
    let status = unsafe {
        cairn_dump(
            repo.handle,
            c"latest".as_ptr(),
            c"data.bin".as_ptr(),
            Some(write_and_reenter),
            (&raw mut state).cast(),
            &mut dumped,
        )
    };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
    assert_eq!((dumped, state.bytes), (50_000, 50_000));
    assert_all_refused(&state.seen, "write");
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}

struct ProgressState {
    repo: *mut CairnRepo,
    url: CString,
    seen: std::sync::Mutex<Seen>,
}

unsafe extern "C-unwind" fn progress_and_reenter(_json: *const c_char, user: *mut c_void) {
    // SAFETY: `user` is the `ProgressState` the test passed.
    let state = unsafe { &*user.cast::<ProgressState>() };
    let mut seen = state.seen.lock().unwrap();
    if seen.is_empty() {
        call_cairn_from_callback(state.repo, &state.url, &mut seen);
    }
}

/// Progress runs on a thread of its own, outside any runtime, while the operation waits for
/// it: a close from there used to free the handle under the running backup.
#[test]
fn cairn_calls_from_a_progress_callback_are_refused() {
    let repo = init();
    let state = ProgressState {
        repo: repo.handle,
        url: repo.url.clone(),
        seen: std::sync::Mutex::new(Vec::new()),
    };
    let mut left = 10_000usize;
    // SAFETY: valid handle, callbacks and strings; `state` and `left` outlive the call.
    let status = unsafe {
        cairn_backup_reader(
            repo.handle,
            Some(read_pattern),
            (&raw mut left).cast(),
            c"data.bin".as_ptr(),
            null(),
            Some(progress_and_reenter),
            (&raw const state).cast_mut().cast(),
            null(),
            null_mut(),
        )
    };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
    assert_all_refused(&state.seen.lock().unwrap(), "progress");
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}

fn open_missing(path: &str) -> CairnStatus {
    let url = CString::new(path).unwrap();
    let mut out = null_mut();
    // SAFETY: valid strings and out pointer.
    unsafe { cairn_repo_open(url.as_ptr(), c"pw".as_ptr(), null(), &mut out) }
}

#[test]
fn last_error_copy_stays_valid_after_later_calls() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first-missing");
    assert_ne!(open_missing(first.to_str().unwrap()), CairnStatus::Ok);
    let copy = cairn_last_error_copy();
    assert!(!copy.is_null());
    // SAFETY: a string from cairn.
    let original = unsafe { CStr::from_ptr(copy) }.to_str().unwrap().to_owned();
    assert!(original.contains("first-missing"), "{original}");
    // Reading the copy does not consume the error.
    assert!(!cairn_last_error().is_null());

    // Later calls on this thread replace (and free) the borrowed message...
    let second = dir.path().join("second-missing");
    assert_ne!(open_missing(second.to_str().unwrap()), CairnStatus::Ok);
    // SAFETY: the borrowed message of the call just made.
    let now = unsafe { CStr::from_ptr(cairn_last_error()) }
        .to_str()
        .unwrap();
    assert!(now.contains("second-missing"), "{now}");
    assert_eq!(cairn_repo_close(null_mut()), CairnStatus::Ok);
    assert!(cairn_last_error().is_null(), "a success clears the message");
    assert!(cairn_last_error_copy().is_null(), "no copy after a success");

    // ...but the copy is the caller's: unchanged, and readable from another thread.
    let address = copy as usize;
    let read_elsewhere = std::thread::spawn(move || {
        assert_ne!(open_missing("/nonexistent/third"), CairnStatus::Ok);
        // SAFETY: the copy is still allocated (freed below, after the join).
        unsafe { CStr::from_ptr(address as *const c_char) }
            .to_str()
            .unwrap()
            .to_owned()
    })
    .join()
    .unwrap();
    assert_eq!(read_elsewhere, original);
    // SAFETY: from `cairn_last_error_copy`, freed once.
    unsafe { cairn_string_free(copy) };
}

/// What the blocking read callback shares with the test: it says when it has started and
/// waits until told to go on.
struct Gate {
    started: mpsc::Sender<()>,
    proceed: mpsc::Receiver<()>,
    left: usize,
    waited: bool,
}

unsafe extern "C-unwind" fn read_blocking(user: *mut c_void, buf: *mut u8, len: usize) -> isize {
    // SAFETY: `user` is the `Gate` the test passed; reads are never concurrent.
    let gate = unsafe { &mut *user.cast::<Gate>() };
    if !gate.waited {
        gate.waited = true;
        gate.started.send(()).unwrap();
        gate.proceed.recv().unwrap();
    }
    let n = len.min(gate.left);
    // SAFETY: `buf` has room for `len` bytes (the read callback's contract) and `n <= len`.
    unsafe { std::ptr::write_bytes(buf, 3, n) };
    gate.left -= n;
    n as isize
}

#[test]
fn close_refuses_while_another_thread_uses_the_handle() {
    let repo = init();
    let (started_tx, started_rx) = mpsc::channel();
    let (proceed_tx, proceed_rx) = mpsc::channel();
    let address = repo.handle as usize;
    let backup = std::thread::spawn(move || {
        let mut gate = Gate {
            started: started_tx,
            proceed: proceed_rx,
            left: 200_000,
            waited: false,
        };
        // SAFETY: an open handle; `gate` outlives the call.
        let status = unsafe {
            cairn_backup_reader(
                address as *mut CairnRepo,
                Some(read_blocking),
                (&raw mut gate).cast(),
                c"slow.bin".as_ptr(),
                null(),
                None,
                null_mut(),
                null(),
                null_mut(),
            )
        };
        (status, last_error())
    });
    started_rx.recv().unwrap();

    // The backup is inside its read callback: close must refuse and change nothing.
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Busy);
    let message = last_error().unwrap();
    assert!(message.contains("still running"), "{message}");
    let mut out = null_mut();
    // SAFETY: the handle is still open.
    assert_eq!(
        // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
        unsafe { cairn_snapshots(repo.handle, null(), &mut out) },
        CairnStatus::Ok
    );
    // SAFETY: a string cairn returned, freed once.
    unsafe { cairn_string_free(out) };

    proceed_tx.send(()).unwrap();
    let (status, error) = backup.join().unwrap();
    assert_eq!(status, CairnStatus::Ok, "{error:?}");
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);

    // A closed handle is an error, not a use after free.
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::InvalidArgument);
    assert!(last_error().unwrap().contains("not an open cairn_repo"));
    // SAFETY: the pointer is looked up, not dereferenced.
    assert_eq!(
        // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
        unsafe { cairn_snapshots(repo.handle, null(), null_mut()) },
        CairnStatus::InvalidArgument
    );
}

/// Opens `url` with `password` and `options` (JSON or null); returns the status and closes
/// any handle it got.
fn open_with(url: &CStr, password: &CStr, options: Option<&CStr>) -> CairnStatus {
    let mut out = null_mut();
    let options = options.map_or(null(), CStr::as_ptr);
    // SAFETY: valid strings and out pointer.
    let status = unsafe { cairn_repo_open(url.as_ptr(), password.as_ptr(), options, &mut out) };
    if status == CairnStatus::Ok {
        assert_eq!(cairn_repo_close(out), CairnStatus::Ok);
    }
    status
}

#[test]
fn the_hinted_key_is_tried_first() {
    let repo = init();
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
    // More keys than one open examines, each with its own password (added through the
    // library at the lowest cost a new key may have, so the test stays quick).
    let path = repo.url.to_str().unwrap().to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (order, passwords) = runtime.block_on(async {
        let storage = cairn_repo::Storage::open(&path).unwrap();
        let lib = cairn_repo::Repository::open(storage.clone(), b"pw")
            .await
            .unwrap();
        let cheap = cairn_repo::KdfParams::new(19456, 2, 1).unwrap();
        let mut passwords = std::collections::HashMap::new();
        for i in 0..cairn_repo::MAX_KEYS_TRIED + 1 {
            let password = format!("other-{i}");
            let id = lib.add_key(password.as_bytes(), cheap).await.unwrap();
            passwords.insert(id, password);
        }
        // The order an open without a hint examines key files in.
        let order: Vec<String> = storage
            .list(cairn_repo::FileType::Key)
            .await
            .unwrap()
            .into_iter()
            .map(|listed| listed.name)
            .collect();
        (order, passwords)
    });
    // A key beyond the first MAX_KEYS_TRIED examined (one of the added ones).
    let last = order[cairn_repo::MAX_KEYS_TRIED..]
        .iter()
        .find(|name| passwords.contains_key(*name))
        .unwrap();
    let password = CString::new(passwords[last].clone()).unwrap();

    assert_eq!(
        open_with(&repo.url, &password, None),
        CairnStatus::WrongPassword
    );
    let message = last_error().unwrap();
    assert!(message.contains("key hint"), "{message}");

    let hint = CString::new(format!("{{\"key_hint\": \"{}\"}}", &last[..12])).unwrap();
    assert_eq!(
        open_with(&repo.url, &password, Some(&hint)),
        CairnStatus::Ok,
        "{:?}",
        last_error()
    );
    // A hint naming no key changes nothing else: the original key still opens.
    assert_eq!(
        open_with(&repo.url, c"pw", Some(c"{\"key_hint\": \"ffffffffffff\"}")),
        if order
            .iter()
            .position(|n| !passwords.contains_key(n))
            .unwrap()
            < cairn_repo::MAX_KEYS_TRIED
        {
            CairnStatus::Ok
        } else {
            CairnStatus::WrongPassword
        }
    );
    assert_eq!(
        open_with(&repo.url, c"pw", Some(c"{\"key_hint\": 7}")),
        CairnStatus::InvalidArgument
    );
}

/// Backs up `dir` through the ABI with default options; the backup must succeed.
fn backup_dir(repo: *mut CairnRepo, dir: &std::path::Path) {
    let path = CString::new(dir.to_str().unwrap()).unwrap();
    let paths = [path.as_ptr()];
    // SAFETY: valid handle, strings and counts; no callbacks.
    let status = unsafe {
        crate::operations::cairn_backup_paths(
            repo,
            paths.as_ptr(),
            1,
            null(),
            None,
            null_mut(),
            null(),
            null_mut(),
        )
    };
    assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
}

/// Backs up `dir` through the ABI, restores the latest snapshot into `target` with
/// `options`, and returns the status and the JSON report.
fn restore_with(
    repo: *mut CairnRepo,
    dir: &std::path::Path,
    target: &std::path::Path,
    options: &CStr,
) -> (CairnStatus, String) {
    backup_dir(repo, dir);
    let target_c = CString::new(target.to_str().unwrap()).unwrap();
    let mut out: *mut c_char = null_mut();
    // SAFETY: as above; `out` receives a string freed below.
    let status = unsafe {
        crate::operations::cairn_restore(
            repo,
            c"latest".as_ptr(),
            target_c.as_ptr(),
            options.as_ptr(),
            None,
            null_mut(),
            null(),
            &mut out,
        )
    };
    let report = if out.is_null() {
        last_error().unwrap_or_default()
    } else {
        // SAFETY: a string from cairn, freed once.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: a string cairn returned, freed once.
        unsafe { cairn_string_free(out) };
        text
    };
    (status, report)
}

#[test]
fn restore_options_reach_the_library() {
    use std::os::unix::fs::PermissionsExt;
    let repo = init();
    let data = tempfile::tempdir().unwrap();
    let source = data.path().join("src");
    std::fs::create_dir(&source).unwrap();
    for name in ["a", "b", "c"] {
        std::fs::write(source.join(name), name).unwrap();
    }
    let tool = source.join("a");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let restored = |target: &std::path::Path| {
        let path = target.join(tool.strip_prefix("/").unwrap());
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    };

    let plain = data.path().join("plain");
    let (status, report) = restore_with(repo.handle, &source, &plain, c"{}");
    assert_eq!(status, CairnStatus::Ok, "{report}");
    assert_eq!(restored(&plain), 0o4755, "setuid restored by default");

    let safe = data.path().join("safe");
    let (status, report) = restore_with(repo.handle, &source, &safe, c"{\"no_setid\": true}");
    assert_eq!(status, CairnStatus::Ok, "{report}");
    assert_eq!(restored(&safe), 0o755, "no_setid drops the bit");

    let capped = data.path().join("capped");
    let (status, report) = restore_with(repo.handle, &source, &capped, c"{\"max_entries\": 2}");
    assert_ne!(status, CairnStatus::Ok);
    assert!(report.contains("entries"), "{report}");
    assert!(!capped.join(tool.strip_prefix("/").unwrap()).exists());

    let (status, _) = restore_with(repo.handle, &source, &capped, c"{\"no_setuid\": true}");
    assert_eq!(
        status,
        CairnStatus::InvalidArgument,
        "unknown options are refused"
    );
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}

#[test]
fn a_drill_applies_no_setid_bits_unless_asked() {
    use std::os::unix::fs::PermissionsExt;
    let repo = init();
    let data = tempfile::tempdir().unwrap();
    let tool = data.path().join("tool");
    std::fs::write(&tool, "x").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    backup_dir(repo.handle, data.path());
    let drill = |options: String| {
        let options = CString::new(options).unwrap();
        let mut out: *mut c_char = null_mut();
        // SAFETY: valid handle and strings; `out` freed below.
        let status =
            unsafe { crate::operations::cairn_drill(repo.handle, options.as_ptr(), &mut out) };
        if !out.is_null() {
            // SAFETY: a string cairn returned, freed once.
            unsafe { cairn_string_free(out) };
        }
        status
    };
    // The drill restores the whole snapshot; the command checks the restored file's mode.
    let file = format!("$CAIRN_DRILL_DIR{}", tool.to_str().unwrap());
    let not_setuid = format!("{{\"command\": \"test -f {file} && test ! -u {file}\"}}");
    assert_eq!(
        drill(not_setuid.clone()),
        CairnStatus::Ok,
        "{:?}",
        last_error()
    );
    let setuid = format!("{{\"command\": \"test -u {file}\", \"setid\": true}}");
    assert_eq!(drill(setuid), CairnStatus::Ok, "{:?}", last_error());
    let setuid_by_default = format!("{{\"command\": \"test -u {file}\"}}");
    assert_eq!(drill(setuid_by_default), CairnStatus::DrillFailed);
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}

#[test]
fn stats_report_what_the_library_counts() {
    let repo = init();
    backup_pattern(repo.handle, 100_000);
    backup_pattern(repo.handle, 100_000);
    let stats = |filter: &CStr| {
        let mut out: *mut c_char = null_mut();
        // SAFETY: an open handle, NUL-terminated strings, writable out pointers.
        let status =
            unsafe { crate::operations::cairn_stats(repo.handle, filter.as_ptr(), &mut out) };
        assert_eq!(status, CairnStatus::Ok, "{:?}", last_error());
        // SAFETY: a NUL-terminated string cairn returned, not yet freed.
        let text = unsafe { CStr::from_ptr(out) }.to_str().unwrap().to_owned();
        // SAFETY: a string cairn returned, freed once.
        unsafe { cairn_string_free(out) };
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let all = stats(c"{}");
    assert_eq!(all["snapshots_count"], 2);
    assert_eq!(all["total_size"], 200_000);
    assert_eq!(all["total_file_count"], 2);
    // The same bytes twice are stored once (plus two small trees).
    let unique = all["total_uncompressed_size"].as_u64().unwrap();
    assert!((100_000..101_000).contains(&unique), "{all}");
    assert!(all["dedup_ratio"].as_f64().unwrap() > 1.9, "{all}");
    let none = stats(c"{\"hosts\": [\"elsewhere\"]}");
    assert_eq!(none["snapshots_count"], 0);
    assert_eq!(none["pack_count"], all["pack_count"]);
    assert_eq!(cairn_repo_close(repo.handle), CairnStatus::Ok);
}
