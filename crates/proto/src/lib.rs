//! The SMTP codec (RFC 5321): bytes in, typed commands and message data out, replies
//! rendered to bytes. Both SMTP servers of mailroom speak through it: `smtpd` (the
//! internet, over TCP) and `sendmail -bs` (a local program, over stdin/stdout).
//!
//! # Why it does no I/O
//! The codec never touches a socket, a file or a clock, and needs no runtime: the caller
//! owns the buffers and the waiting (smtpd reads with tokio under timeouts, `sendmail -bs`
//! reads a blocking `BufRead`). So the same parser serves both, every rule can be
//! table-tested input → expected, and the fuzz targets (`fuzz/` at the repository root,
//! through [`fuzzing`]) reach every state without a network in the way, as in Stalwart's
//! smtp-proto.
//!
//! # Job, inputs → outputs
//! ```text
//!  line.rs     buffer → where the next command line ends (bounded)
//!  command.rs  one line → Command or the error Reply   (address.rs, params.rs, lenient.rs)
//!  data.rs     DATA/BDAT bytes → the stored message (LF line ends) or the DataError
//!  reply.rs    Reply → `250-…\r\n250 …\r\n`, and the fixed replies with Postfix's texts
//!  dialect.rs  what differs between smtpd and sendmail -bs
//! ```
//! The session rules (which command may come when, relay control, AUTH) are not here: they
//! belong to each server.
//!
//! # Invariants
//! * No input panics; every refusal is a reply code (fuzzed).
//! * Memory is bounded by the caller's limits: a command line by its dialect's `max_line`,
//!   a message by its size limit, whatever the line lengths.
//! * In smtpd's dialect only `<CRLF>.<CRLF>` ends DATA (no SMTP smuggling, see `data.rs`).
//! * Reply text never holds CR or LF, so no input can inject reply lines.
//!
//! # Security stance
//! Trusts nothing it is given and needs no privilege; it has no access to anything but the
//! bytes passed in.
#![forbid(unsafe_code)]

pub mod address;
pub mod command;
pub mod data;
pub mod dialect;
#[doc(hidden)]
pub mod fuzzing;
mod lenient;
pub mod line;
pub mod params;
pub mod reply;

pub use command::{parse, parse_with, Command, ParseError};
pub use dialect::Dialect;
pub use reply::{fixed, Reply};
