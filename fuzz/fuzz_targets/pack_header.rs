#![no_main]
//! Fuzz target; the body lives in `cairn_pack::fuzzing::pack_header_plaintext` so the corpus also runs as a test.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    cairn_pack::fuzzing::pack_header_plaintext(data);
});
