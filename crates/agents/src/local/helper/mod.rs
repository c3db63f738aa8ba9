//! Privilege separation of local delivery: the small root process that writes users'
//! mailboxes and runs `|command` and `/file` deliveries, and the daemon's door to it.
//!
//! # Why a helper process
//!
//! Postfix runs only master, local and pipe as root; smtpd, smtp, cleanup and qmgr run as
//! `mail_owner`. mailroom's daemon is one tokio process that does the work of all of
//! those, so it cannot drop root per task: uids are per process (glibc applies `setuid` to
//! every thread). Three ways were weighed:
//!
//! * **setfsuid per delivery inside the daemon** (what mailroom did before): the
//!   internet-facing parser keeps root. Rejected: this is what separation is for.
//! * **setfsuid per delivery in a separate process** (this design): the root process
//!   starts one helper, then gives up root itself; the helper keeps the per-thread
//!   `setfsuid`/`setfsgid` switch for mailboxes and the per-child `setuid` for commands
//!   (`users.rs`, `command.rs`), unchanged. One long-lived helper, not a process per
//!   delivery: its threads deliver concurrently, at the cost of one socketpair round trip.
//! * **a process per delivery** (Postfix's local processes): needs a root parent that
//!   outlives the drop to fork them — a third process (Postfix's master) — for no gain in
//!   what runs as root.
//!
//! The helper is the binary re-executed (`/proc/self/exe local-helper`), not a `fork`
//! of the daemon: by then the daemon may have threads (the log writer), after which a
//! forked child may only call async-signal-safe functions; a fresh image also keeps none of
//! the daemon's memory. It reads the configuration file and the alias files itself.
//!
//! # The boundary
//!
//! The daemon sends `(request id, queue id, envelope, recipient indexes, message)` frames
//! (`frame.rs`, `wire.rs`) and gets a [`Delivery`](crate::Delivery) back per id; several
//! run at once. The helper trusts the daemon no more than Postfix's local trusts qmgr: it
//! resolves every recipient itself with its own configuration and aliases (which user, which
//! alias, whose rights), delivers only to domains that are local by its own `mydestination`,
//! refuses indexes that name no recipient or one twice, reads no request larger than its own
//! `message_size_limit` plus [`server::ENVELOPE_ALLOWANCE`] (5.3.4 for that request; the
//! others go on), runs at most its own `local_destination_concurrency_limit` deliveries, and
//! never writes a file or runs a command as root unless the aliases say so (`deliver.rs`:
//! `default_privs` for root-owned alias files). A request it cannot parse closes the
//! connection. What a subverted daemon can still do is what any SMTP client can: deliver
//! mail to local recipients.
//!
//! # Lifetime
//!
//! The helper exits when the daemon's end of the socket closes (a stop, or the daemon
//! killed), after its deliveries in flight have finished — never by a signal in the middle
//! of an mbox append; it ignores SIGTERM, SIGINT and SIGHUP (which reach it with its process
//! group). Reload is a request, not a signal: the unprivileged daemon cannot signal a root
//! process. A dead helper turns every waiting and later local delivery into a deferral
//! (4.3.0) — see `client.rs` — and the daemon, which can no longer start a root process,
//! stops and exits 75 for its supervisor to start both again.

pub mod client;
pub mod frame;
pub mod server;
pub mod wire;

#[cfg(test)]
mod tests;

pub use client::HelperClient;
pub use server::{serve, Limits, Reloader};
