//! Command lines, SMTP-shaped or raw, through the parser of `proto` in both dialects (smtpd's
//! and `sendmail -bs`'s): never a panic, and whatever parses is well formed (see
//! `proto::fuzzing::check_commands`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    proto::fuzzing::check_commands(data);
    proto::fuzzing::check_commands(&proto::fuzzing::smtp_alphabet(data));
});
