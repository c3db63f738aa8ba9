//! The exit codes of `<sysexits.h>`, defined once for every mailroom program. Callers (cron,
//! PHP's mail(), monitoring scripts, Postfix-style wrappers) act on them, so each failure
//! keeps a fixed code; the same numbers are how a `command` delivery tells mailroom to
//! retry (75). `u8` because that is what an exit status is (`std::process::ExitCode::from`);
//! widen with `i32::from` where an API wants `i32`.

/// Success.
pub const EX_OK: u8 = 0;
/// Bad command line, or no recipients.
pub const EX_USAGE: u8 = 64;
/// Malformed input (an invalid envelope field, bad maildrop bytes given to postdrop).
pub const EX_DATAERR: u8 = 65;
/// Addressee unknown (`mailroom passwd del` of a user that does not exist).
pub const EX_NOUSER: u8 = 67;
/// A service is unavailable: the daemon is down for a flush; also a message over
/// `message_size_limit` ("message file too big"), where Postfix's sendmail exits 69 and
/// callers such as PHP mailers test for it.
pub const EX_UNAVAILABLE: u8 = 69;
/// An internal error (a runtime that cannot start, output that cannot be written).
pub const EX_SOFTWARE: u8 = 70;
/// The operating system refused (a process cannot be started, privileges cannot be dropped).
pub const EX_OSERR: u8 = 71;
/// An output file cannot be created or written.
pub const EX_CANTCREAT: u8 = 73;
/// An input/output error.
pub const EX_IOERR: u8 = 74;
/// Retry later: disk guard, maildrop caps, submit timeout, store missing or locked, I/O error.
pub const EX_TEMPFAIL: u8 = 75;
/// Permission denied (the queue, the control socket) and no usable way around it.
pub const EX_NOPERM: u8 = 77;
/// The configuration cannot be read or is invalid.
pub const EX_CONFIG: u8 = 78;
