//! Delivery status notifications (`crates/bounce`) from odd envelopes and reports, checked
//! for the RFC 3464 structure (see `bounce::fuzzing::check_dsn`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| bounce::fuzzing::check_dsn(data));
