//! Configuration files (`crates/config`): loaded, and what loads written back and loaded
//! again (see `config::fuzzing::check_config`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| config::fuzzing::check_config(data));
