//! Local submission: everything between a local program and the queue store, except the
//! store itself.
//!
//! ```text
//!  cron, scripts ── sendmail ──(guard)──► maildrop/<QueueId> ──► daemon pickup ──► cleanup ──► queue
//!                      │ permission denied                                          │
//!                      └──► mailroom-postdrop (setgid) ──(guard)──┘                 └─► Rejected → bounce
//! ```
//!
//! # Job, inputs → outputs
//! * [`sendmail`]: command line + standard input → one durable file in `maildrop/`, or a
//!   sysexits code and one `sendmail: fatal: ...` line. Also `-bs` (SMTP on stdio), and hands
//!   `-bp` / `-q` back to the binary ([`sendmail::Handled`]).
//! * [`maildrop`]: the file format (text envelope, message, `END`) and atomic write / careful
//!   read / listing of `maildrop/`.
//! * [`guard`]: free space and inodes of the queue file system, and `maildrop/`'s own caps;
//!   a count of refusals for the daemon's once-per-interval log line.
//! * [`postdrop`]: the setgid helper behind the `mailroom-postdrop` binary.
//! * [`pickup`]: the daemon's task that moves `maildrop/` files through cleanup into the
//!   queue store, durably and never twice, and sweeps stale temporary files.
//! * [`cleanup`](mod@cleanup): what pickup calls on each file: [`maildrop::MaildropFile`] →
//!   queue [`envelope::Envelope`] + message with the headers Postfix's cleanup would add,
//!   or a [`cleanup::Rejected`] to bounce.
//!
//! # Settings
//! * pickup: [`pickup::PickupSettings`] (the queue [`queue::Layout`], `submit_timeout`, and
//!   cleanup's [`CleanupSettings`]: `message_size_limit`, `header_size_limit`,
//!   `hopcount_limit`, `myorigin`, `myhostname`), built by the daemon from its `Config`.
//! * sendmail and postdrop are programs of their own: they load the `Config` themselves
//!   (through a [`sendmail::ConfigLoader`]) and at once take their
//!   [`submission::SubmitSettings`] from it (`queue_directory`, `postdrop_path`, `profile`,
//!   `submit_timeout`, `message_size_limit`, the guard's [`guard::Limits`]: `queue_minfree*`
//!   and the maildrop caps, `myhostname`); only `-bp` and `-q` hand the `Config` back to the
//!   binary.
//!
//! # Invariants
//! 1. Exit 0 (or SMTP 250 for `-bs`) only after the file's data and its directory entry are
//!    fsynced (DESIGN invariant 1).
//! 2. Never a partial file under a queue ID name: data is written to `tmp.*`, fsynced, then
//!    linked to its final name; every failure path removes what it created. Readers also
//!    check length, crc32 and the `END` record.
//! 3. Never needs the daemon and never hangs: after the input is read, a watchdog bounds all
//!    work by `submit_timeout`, then exits 75 and removes the files of the write.
//! 4. The disk never fills because of submission: below `queue_minfree` / `queue_minfree_inodes`,
//!    or with `maildrop/` at `maildrop_count_limit` / `maildrop_size_limit`, sendmail exits 75
//!    with a line saying why (and that the daemon may be down) (DESIGN invariants 2, 3).
//!
//! # Security stance
//! `sendmail` runs with the caller's rights and trusts its caller only as far as the caller
//! could act anyway: it records the real uid and passwd name, never `$USER`. It creates the
//! store only where the user owns the parent (the embedded default) and, as root, only for the
//! embedded profile. `mailroom-postdrop` is the only program meant to be installed setgid
//! (group `setgid_group`, with `maildrop/` group `setgid_group` mode 0730, or 0770 to let it
//! also enforce the maildrop caps, see [`submission`]); it reads a fixed configuration path
//! and rewrites the identity lines (see [`postdrop`]). The daemon reads maildrop files as data
//! from untrusted users: no symlinks, no FIFOs, size-capped, strictly parsed ([`maildrop::read`]).

#![forbid(unsafe_code)]

pub mod addresses;
pub mod cleanup;
mod content;
pub mod fuzzing;
pub mod guard;
pub mod headers;
pub mod maildrop;
pub mod milters;
pub mod pickup;
pub mod postdrop;
pub mod sendmail;
pub mod submission;
pub mod users;
mod watchdog;

pub use cleanup::{cleanup, Cleaned, CleanupSettings, Rejected};
pub use guard::take_refusal_count;
pub use maildrop::{MaildropError, MaildropFile};
pub use sendmail::{run_sendmail, Handled, SendmailIo};

#[cfg(test)]
pub(crate) mod testing;
