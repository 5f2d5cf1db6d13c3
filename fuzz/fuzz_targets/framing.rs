#![no_main]
// The invariants live in the host crate (cln_autoreload::fuzzing), where a
// stable unit test replays the kept corpus through them too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| cln_autoreload::fuzzing::framing(data));
