//! Postfix queue files as `mailroom import-postfix` reads them
//! (`crates/admin/src/import/queue_file.rs`): raw bytes or record streams built from them,
//! parsed, written back canonically and truncated (see
//! `admin::import::fuzzing::check_postfix_queue_file`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| admin::import::fuzzing::check_postfix_queue_file(data));
