//! Command lines, SMTP-shaped or raw, through the parser: never a panic, and whatever parses
//! is well formed (see `smtpd::fuzzing::check_commands`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    smtpd::fuzzing::check_commands(data);
    smtpd::fuzzing::check_commands(&smtpd::fuzzing::smtp_alphabet(data));
});
