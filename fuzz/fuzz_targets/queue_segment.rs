//! Segment files with torn, flipped and garbage records through start-up recovery
//! (`crates/queue/src/recovery.rs`, see `queue::fuzzing::check_segment`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| queue::fuzzing::check_segment(data));
