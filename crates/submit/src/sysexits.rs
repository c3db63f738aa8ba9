//! The exit codes of `<sysexits.h>` that sendmail and mailroom-postdrop use. Callers (cron,
//! PHP's mail(), monitoring scripts) act on them, so each failure keeps a fixed code.

/// Success: the message is durable in `maildrop/`.
pub const EX_OK: i32 = 0;
/// Bad command line, or no recipients.
pub const EX_USAGE: i32 = 64;
/// Malformed input (an invalid envelope field, bad maildrop bytes given to postdrop).
pub const EX_DATAERR: i32 = 65;
/// Message over `message_size_limit` ("message file too big"): Postfix's sendmail exits 69
/// here and callers such as PHP mailers test for it, so we keep it.
pub const EX_UNAVAILABLE: i32 = 69;
/// Retry later: disk guard, maildrop caps, submit timeout, store missing, I/O error.
pub const EX_TEMPFAIL: i32 = 75;
/// Permission denied on the queue and no usable setgid helper.
pub const EX_NOPERM: i32 = 77;
/// The configuration cannot be read or is invalid.
pub const EX_CONFIG: i32 = 78;
