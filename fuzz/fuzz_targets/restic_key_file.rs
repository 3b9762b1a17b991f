#![no_main]
//! Fuzz target; the body lives in `cairn_repo::fuzzing::restic_key_file` so the corpus also runs as a test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn_repo::fuzzing::restic_key_file(data);
});
