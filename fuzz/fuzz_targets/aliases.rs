//! aliases(5) and `:include:` files (`crates/agents/src/local/aliases.rs`): parsed, checked,
//! written back and parsed again (see `agents::local::fuzzing::check_aliases`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| agents::local::fuzzing::check_aliases(data));
