#!/usr/bin/env python3
"""A cairn C ABI consumer in Python (ctypes): init, back up a directory and a stream, list,
restore, dump through a callback, check, and the error paths. Prints "all steps passed".

    python3 cairn_demo.py LIBCAIRN_FFI_SO REPO_DIR SOURCE_DIR RESTORE_DIR STREAM_FILE
"""
import ctypes
import json
import os
import sys

OK, INCOMPLETE, WRONG_PASSWORD, INVALID_ARGUMENT, ALREADY_INITIALIZED = 0, 3, 12, 20, 21
DRILL_FAILED = 26

PROGRESS = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
READ = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)
WRITE = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t)


class Cairn:
    """Thin wrapper: every call checks its status and raises with cairn's message."""

    def __init__(self, path):
        lib = ctypes.CDLL(path)
        self.lib = lib
        handle = ctypes.c_void_p
        out = ctypes.POINTER(ctypes.c_void_p)
        s = ctypes.c_char_p
        lib.cairn_last_error.restype = ctypes.c_char_p
        lib.cairn_version.restype = ctypes.c_char_p
        lib.cairn_abi_version.restype = ctypes.c_uint32
        lib.cairn_repo_init.argtypes = [s, s, s, ctypes.POINTER(handle)]
        lib.cairn_repo_open.argtypes = [s, s, s, ctypes.POINTER(handle)]
        lib.cairn_repo_close.argtypes = [handle]
        lib.cairn_repo_close.restype = ctypes.c_int
        lib.cairn_string_free.argtypes = [ctypes.c_void_p]
        lib.cairn_backup_paths.argtypes = [handle, ctypes.POINTER(s), ctypes.c_size_t, s, PROGRESS, ctypes.c_void_p, ctypes.c_void_p, out]
        lib.cairn_backup_fd.argtypes = [handle, ctypes.c_int32, s, s, PROGRESS, ctypes.c_void_p, ctypes.c_void_p, out]
        lib.cairn_backup_reader.argtypes = [handle, READ, ctypes.c_void_p, s, s, PROGRESS, ctypes.c_void_p, ctypes.c_void_p, out]
        lib.cairn_snapshots.argtypes = [handle, s, out]
        lib.cairn_restore.argtypes = [handle, s, s, s, PROGRESS, ctypes.c_void_p, ctypes.c_void_p, out]
        lib.cairn_dump.argtypes = [handle, s, s, WRITE, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint64)]
        lib.cairn_check.argtypes = [handle, s, out]
        lib.cairn_forget.argtypes = [handle, s, out]
        lib.cairn_prune.argtypes = [handle, s, out]
        lib.cairn_key_add.argtypes = [handle, s, out]
        lib.cairn_key_list.argtypes = [handle, out]
        lib.cairn_key_remove.argtypes = [handle, s]
        lib.cairn_key_passwd.argtypes = [handle, s, out]
        lib.cairn_drill.argtypes = [handle, s, out]
        lib.cairn_drills.argtypes = [handle, out]
        lib.cairn_rpo.argtypes = [handle, s, out]
        lib.cairn_metrics.argtypes = [handle, s, out]

    def error(self):
        message = self.lib.cairn_last_error()
        return message.decode() if message else None

    def take_string(self, pointer):
        """Copies a string cairn returned, then frees it."""
        if not pointer.value:
            return None
        text = ctypes.cast(pointer, ctypes.c_char_p).value.decode()
        self.lib.cairn_string_free(pointer)
        return text

    def call(self, name, *args, expect=OK):
        status = getattr(self.lib, name)(*args)
        if status != expect:
            raise RuntimeError(f"{name}: status {status}, expected {expect}: {self.error()}")


def main():
    lib_path, repo_dir, source, restore_dir, stream = sys.argv[1:6]
    c = Cairn(lib_path)
    assert c.lib.cairn_abi_version() == 1
    assert c.lib.cairn_version()
    options = json.dumps({"kdf_memory_kib": 19456, "kdf_time_cost": 2, "pack_size_mib": 1}).encode()
    repo = ctypes.c_void_p()
    c.call("cairn_repo_init", repo_dir.encode(), b"py password", options, ctypes.byref(repo))
    again = ctypes.c_void_p()
    c.call("cairn_repo_init", repo_dir.encode(), b"py password", options, ctypes.byref(again), expect=ALREADY_INITIALIZED)
    assert "already initialized" in c.error()

    out = ctypes.c_void_p()
    calls = []
    progress = PROGRESS(lambda text, user: calls.append(json.loads(text)))
    paths = (ctypes.c_char_p * 1)(source.encode())
    c.call("cairn_backup_paths", repo, paths, 1, json.dumps({"tags": ["py"]}).encode(), progress, None, None, ctypes.byref(out))
    result = json.loads(c.take_string(out))
    assert result["snapshot"]["tags"] == ["py"], result
    assert calls and "files_done" in calls[-1], calls

    with open(stream, "rb") as f:
        c.call("cairn_backup_fd", repo, f.fileno(), b"dump.sql", None, PROGRESS(), None, None, None)

    data = bytes(range(256)) * 4096  # 1 MiB
    position = [0]

    def read(user, buf, length):
        chunk = data[position[0]:position[0] + length]
        ctypes.memmove(buf, chunk, len(chunk))
        position[0] += len(chunk)
        return len(chunk)

    reader = READ(read)
    c.call("cairn_backup_reader", repo, reader, None, b"bytes.bin", None, PROGRESS(), None, None, None)

    c.call("cairn_snapshots", repo, None, ctypes.byref(out))
    snapshots = json.loads(c.take_string(out))
    assert len(snapshots) == 3, snapshots
    assert all(len(s["id"]) == 64 and s["short_id"] == s["id"][:8] for s in snapshots)

    received = bytearray()

    def write(user, buf, length):
        received.extend(ctypes.string_at(buf, length))
        return 0

    writer = WRITE(write)
    size = ctypes.c_uint64()
    c.call("cairn_dump", repo, b"latest", b"bytes.bin", writer, None, ctypes.byref(size))
    assert bytes(received) == data and size.value == len(data)

    tagged = [s for s in snapshots if s.get("tags") == ["py"]][0]
    c.call("cairn_restore", repo, tagged["id"].encode(), restore_dir.encode(), b'{"verify": true}', PROGRESS(), None, None, ctypes.byref(out))
    restored = json.loads(c.take_string(out))
    assert restored["errors"] == [] and restored["files_verified"] >= 2, restored
    with open(os.path.join(restore_dir, source.lstrip("/"), "sub", "b.bin"), "rb") as got, open(os.path.join(source, "sub", "b.bin"), "rb") as want:
        assert got.read() == want.read()

    c.call("cairn_check", repo, b'{"read_data": true}', ctypes.byref(out))
    assert json.loads(c.take_string(out))["ok"] is True
    c.call("cairn_forget", repo, b'{"keep_last": 1, "group_by": ""}', ctypes.byref(out))
    forgotten = json.loads(c.take_string(out))
    assert len(forgotten["removed"]) == 2, forgotten
    c.call("cairn_prune", repo, None, ctypes.byref(out))
    assert json.loads(c.take_string(out))["snapshots"] == 1

    # DR signals: a drill that checks the restored stream, one that fails, RPO and metrics.
    drill = json.dumps({"command": 'test -n "$(ls -A "$CAIRN_DRILL_DIR")"', "timeout": "1min"}).encode()
    c.call("cairn_drill", repo, drill, ctypes.byref(out))
    passed = json.loads(c.take_string(out))
    assert passed["outcome"] == "passed", passed
    c.call("cairn_drill", repo, b'{"command": "exit 3"}', ctypes.byref(out), expect=DRILL_FAILED)
    assert json.loads(c.take_string(out))["exit_code"] == 3
    c.call("cairn_drills", repo, ctypes.byref(out))
    assert [d["outcome"] for d in json.loads(c.take_string(out))] == ["passed", "command_failed"]
    c.call("cairn_rpo", repo, b'{"max_age": "1h", "max_verified_age": "1h"}', ctypes.byref(out))
    assert json.loads(c.take_string(out))["ok"] is True
    c.call("cairn_rpo", repo, b'{"max_age": "1h", "group_by": "host,pod"}', ctypes.byref(out), expect=INVALID_ARGUMENT)
    assert "pod" in c.error()
    c.call("cairn_metrics", repo, None, ctypes.byref(out))
    metrics = json.loads(c.take_string(out))
    assert metrics["snapshots"] == 1 and metrics["drills_passed"] == 1, metrics
    assert "cairn_snapshot_newest_verified_timestamp_seconds{" in metrics["prometheus"]

    # Keys: add one, change this handle's password, remove the added one.
    c.call("cairn_key_add", repo, b"second password", ctypes.byref(out))
    second = c.take_string(out)
    c.call("cairn_key_passwd", repo, b"new py password", ctypes.byref(out))
    new_id = c.take_string(out)
    c.call("cairn_key_list", repo, ctypes.byref(out))
    keys = json.loads(c.take_string(out))
    assert sorted(k["id"] for k in keys) == sorted([second, new_id]), keys
    assert [k["id"] for k in keys if k["current"]] == [new_id], keys
    c.call("cairn_key_remove", repo, second.encode())

    # Misuse: errors, not crashes.
    c.call("cairn_snapshots", None, None, ctypes.byref(out), expect=INVALID_ARGUMENT)
    c.call("cairn_prune", repo, b'{"max_unused": "lots"}', None, expect=INVALID_ARGUMENT)
    assert "prune options" in c.error()
    c.call("cairn_repo_close", repo)
    # A closed handle is refused, not used after free.
    c.call("cairn_repo_close", repo, expect=INVALID_ARGUMENT)
    assert "not an open cairn_repo" in c.error()
    wrong = ctypes.c_void_p()
    c.call("cairn_repo_open", repo_dir.encode(), b"py password", None, ctypes.byref(wrong), expect=WRONG_PASSWORD)
    reopened = ctypes.c_void_p()
    c.call("cairn_repo_open", repo_dir.encode(), b"new py password", None, ctypes.byref(reopened))
    c.call("cairn_repo_close", reopened)
    print("cairn Python demo: all steps passed")


if __name__ == "__main__":
    main()
