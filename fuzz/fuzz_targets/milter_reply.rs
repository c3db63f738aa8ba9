//! Milter replies (`crates/milter`): bytes read as reply packets decode without a panic,
//! and their end-of-message changes keep a message a message (see
//! `milter::fuzzing::check_replies`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| milter::fuzzing::check_replies(data));
