//! The C ABI as its consumers use it: a C program built against the header and both library
//! kinds (and run under valgrind), a C program exercising the guards (close while in use,
//! calls from callbacks, owned error copies) under valgrind, a C++ program whose callback
//! throws, a Python ctypes script and a Go (cgo) program. Tools that are missing are skipped
//! with a note, unless `CAIRN_REQUIRE_FFI_TOOLS` is set (CI sets it).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where cargo put this build's libcairn_ffi.{so,a}: `cargo test` leaves them in the `deps`
/// directory beside this test binary (`cargo build` also copies them one level up).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap().to_path_buf();
    let up = deps.parent().unwrap().to_path_buf();
    let found = [deps.clone(), up]
        .into_iter()
        .find(|dir| dir.join("libcairn_ffi.so").exists() && dir.join("libcairn_ffi.a").exists());
    found.unwrap_or_else(|| panic!("no libcairn_ffi.so and .a near {}", deps.display()))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var_os("CAIRN_REQUIRE_FFI_TOOLS").is_none(),
            "CAIRN_REQUIRE_FFI_TOOLS is set but {tool} is not installed"
        );
        eprintln!("skipped: {tool} is not installed");
    }
    found
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A source tree and a stream file for the demos.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let source = dir.join("source");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    std::fs::write(source.join("a.txt"), b"alpha\n").unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(source.join("sub/b.bin"), big).unwrap();
    let stream = dir.join("stream.sql");
    std::fs::write(&stream, b"CREATE TABLE t (x int);\n".repeat(1000)).unwrap();
    (source, stream)
}

fn compile_c(dir: &Path, statically: bool) -> PathBuf {
    let exe = dir.join(if statically {
        "demo-static"
    } else {
        "demo-shared"
    });
    let mut cmd = Command::new("gcc");
    cmd.arg("-Wall")
        .arg("-Werror")
        .arg("-g")
        .arg("-I")
        .arg(root().join("crates/ffi/include"))
        .arg(root().join("examples/c/cairn_demo.c"))
        .arg("-o")
        .arg(&exe);
    if statically {
        cmd.arg(lib_dir().join("libcairn_ffi.a"))
            .args(["-lpthread", "-ldl", "-lm"]);
    } else {
        cmd.arg("-L").arg(lib_dir()).arg("-lcairn_ffi");
    }
    run(&mut cmd);
    exe
}

fn run_demo(exe: &Path, dir: &Path, tag: &str, wrapper: &[&str]) -> String {
    let (source, stream) = fixture(dir);
    let repo = dir.join(format!("repo-{tag}"));
    let target = dir.join(format!("restore-{tag}"));
    let mut cmd = Command::new(wrapper.first().copied().unwrap_or(exe.to_str().unwrap()));
    if !wrapper.is_empty() {
        cmd.args(&wrapper[1..]).arg(exe);
    }
    cmd.env("LD_LIBRARY_PATH", lib_dir())
        .arg(&repo)
        .arg(&source)
        .arg(&target)
        .arg(&stream);
    let out = run(&mut cmd);
    let restored = target.join(source.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/b.bin")).unwrap(),
        std::fs::read(source.join("sub/b.bin")).unwrap()
    );
    out
}

#[test]
fn c_program_with_shared_and_static_library() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for statically in [false, true] {
        let exe = compile_c(dir.path(), statically);
        let tag = if statically { "static" } else { "shared" };
        let out = run_demo(&exe, dir.path(), tag, &[]);
        assert!(out.contains("all steps passed"), "{out}");
    }
}

#[test]
fn c_program_is_clean_under_valgrind() {
    if !have("gcc") || !have("valgrind") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_c(dir.path(), false);
    let out = run_demo(
        &exe,
        dir.path(),
        "valgrind",
        &[
            "valgrind",
            "--quiet",
            "--error-exitcode=97",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ],
    );
    assert!(out.contains("all steps passed"), "{out}");
}

/// Builds one of the test programs in tests/c or tests/cpp against the shared library.
fn compile_test_program(dir: &Path, compiler: &str, source: &str) -> PathBuf {
    let exe = dir.join(Path::new(source).file_stem().unwrap());
    run(Command::new(compiler)
        .args(["-Wall", "-Werror", "-g", "-pthread", "-I"])
        .arg(root().join("crates/ffi/include"))
        .arg(root().join("crates/ffi/tests").join(source))
        .arg("-o")
        .arg(&exe)
        .arg("-L")
        .arg(lib_dir())
        .arg("-lcairn_ffi"));
    exe
}

/// `cairn_repo_close` while another thread's backup runs is `CAIRN_STATUS_BUSY`, a closed
/// handle is an error, a call from a callback is `CAIRN_STATUS_REENTRANT`, and error copies
/// outlive later calls; valgrind would report a use after free.
#[test]
fn c_guards_under_valgrind() {
    if !have("gcc") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_test_program(dir.path(), "gcc", "c/guards.c");
    let out = run(Command::new(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .arg(dir.path().join("repo-plain")));
    assert!(out.contains("all steps passed"), "{out}");
    if !have("valgrind") {
        return;
    }
    let out = run(Command::new("valgrind")
        .args([
            "--quiet",
            "--error-exitcode=97",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--show-leak-kinds=definite,indirect",
        ])
        .arg(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .arg(dir.path().join("repo-valgrind")));
    assert!(out.contains("all steps passed"), "{out}");
}

/// A C++ exception thrown by a read callback (on a library thread) and by a write callback
/// (on the caller's thread, with the caller's `catch` on the stack) aborts the process with
/// cairn's message: it neither reaches the caller nor unwinds through the engine unseen.
#[test]
fn cpp_exception_from_a_callback_aborts_with_a_message() {
    use std::os::unix::process::ExitStatusExt;
    if !have("g++") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile_test_program(dir.path(), "g++", "cpp/unwind.cpp");
    for kind in ["read", "write"] {
        let out = Command::new(&exe)
            .env("LD_LIBRARY_PATH", lib_dir())
            .arg(dir.path().join(format!("repo-{kind}")))
            .arg(kind)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            Some(nix::libc::SIGABRT),
            "{kind}: {}\n{stdout}\n{stderr}",
            out.status
        );
        assert!(
            stderr.contains(&format!("the {kind} callback did not return normally")),
            "{kind}: {stderr}"
        );
        assert!(!stdout.contains("reached the caller"), "{kind}: {stdout}");
    }
}

#[test]
fn python_ctypes_script() {
    if !have("python3") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, stream) = fixture(dir.path());
    let out = run(Command::new("python3")
        .arg(root().join("examples/python/cairn_demo.py"))
        .arg(lib_dir().join("libcairn_ffi.so"))
        .arg(dir.path().join("repo"))
        .arg(&source)
        .arg(dir.path().join("restore"))
        .arg(&stream));
    assert!(out.contains("all steps passed"), "{out}");
}

#[test]
fn go_node_agent_via_cgo() {
    if !have("go") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = fixture(dir.path());
    let exe = dir.path().join("cairn-go");
    run(Command::new("go")
        .current_dir(root().join("examples/go"))
        .env("CGO_ENABLED", "1")
        .env(
            "CGO_CFLAGS",
            format!("-I{}", root().join("crates/ffi/include").display()),
        )
        .env(
            "CGO_LDFLAGS",
            format!("-L{} -lcairn_ffi", lib_dir().display()),
        )
        .env("GOCACHE", dir.path().join("gocache"))
        .env("GOPATH", dir.path().join("gopath"))
        .env("GOFLAGS", "-mod=mod")
        .args(["build", "-o"])
        .arg(&exe)
        .arg("."));
    let target = dir.path().join("restore");
    let out = run(Command::new(&exe)
        .env("LD_LIBRARY_PATH", lib_dir())
        .arg(dir.path().join("repo"))
        .arg(&source)
        .arg(&target));
    assert!(out.contains("all steps passed"), "{out}");
    let restored = target.join(source.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("sub/b.bin")).unwrap(),
        std::fs::read(source.join("sub/b.bin")).unwrap()
    );
}
