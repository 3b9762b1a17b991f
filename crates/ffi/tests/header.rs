//! `include/cairn.h` is what cbindgen generates from this crate: CI fails when a change to
//! the ABI did not regenerate it. `CAIRN_UPDATE_HEADER=1` rewrites it.

#[test]
fn header_is_current() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{crate_dir}/cbindgen.toml"))
        .expect("cbindgen.toml parses");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let path = format!("{crate_dir}/include/cairn.h");
    if std::env::var_os("CAIRN_UPDATE_HEADER").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let current = std::fs::read(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{path} is out of date: run `CAIRN_UPDATE_HEADER=1 cargo test -p cairn-ffi --test header`"
    );
}
