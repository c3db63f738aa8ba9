//! Maildrop files (`crates/submit/src/maildrop/format.rs`): decoded from any bytes, or
//! built from them and written, then read back and cleaned up (see
//! `submit::fuzzing::check_maildrop`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| submit::fuzzing::check_maildrop(data));
