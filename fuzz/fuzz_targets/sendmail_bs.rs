//! `sendmail -bs` (`crates/submit/src/sendmail/smtp.rs` over the `proto` codec in its
//! `SENDMAIL_BS` dialect): a whole SMTP-on-stdio session per input, raw or SMTP-shaped, read
//! whole and in small pieces (see `submit::fuzzing::check_sendmail_bs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| submit::fuzzing::check_sendmail_bs(data));
