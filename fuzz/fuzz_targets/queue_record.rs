//! Queue records (`crates/queue/src/record.rs`): a log script of records built from the
//! input, plus the raw input itself, through the decoder and the compact index (see
//! `queue::fuzzing::check_records`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| queue::fuzzing::check_records(data));
