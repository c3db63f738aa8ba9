//! The queue manager (Postfix's qmgr): decides what is delivered when and where, hands work to
//! delivery agents, and is the only room that turns their outcomes into queue state.
//!
//! Inputs → outputs: queue IDs of newly queued messages (from pickup, smtpd) and the store's
//! contents at start → work items per destination (routing: content filter, transport maps,
//! local domains, relayhost, MX) → agent outcomes → per-recipient state written back to the
//! store (sent, deferred with a retry time, bounced), notifications queued, finished messages
//! removed, one Postfix-style log line per recipient outcome.
//!
//! States of a message, as the scheduler sees them:
//! ```text
//!  incoming ──► active ──► (all recipients final) ──► removed (+ bounce queued atomically)
//!      ▲           │
//!      │           └──► deferred ──(next_attempt due, or flush)──► active
//!    hold ◄──── operator (postsuper -h) or transport_maps `hold:`
//! ```
//! `active` exists only in memory: after a crash, active messages are simply incoming or
//! deferred again, so they are retried, never lost. At most `qmgr_message_active_limit`
//! messages are active at once; due messages beyond it wait in the store (the due index
//! keeps only their IDs) and come in as room frees, new mail and deferred mail in turn, so a
//! flushed backlog neither fills memory nor keeps new mail waiting (`due.rs`).
//!
//! Settings: one [`Settings`] (built by the binary with [`Settings::from_config`], again on
//! SIGHUP): `default_process_limit`, `qmgr_message_active_limit`, the `*_destination_concurrency_limit`s, `soft_bounce`,
//! the backoff and lifetime times, `delay_warning_time`, `2bounce_notice_recipient`,
//! `myhostname`, `bounce_size_limit`, the queue [`queue::Layout`] and the router's
//! [`Routing`] (`transport_maps`, `relayhost`, `content_filter`, `mydestination`,
//! `mailbox_transport`, `virtual_mailbox_domains`, `virtual_transport`). The SMTP client comes
//! in built ([`SmtpRemote::new`] from `agents::SmtpSettings` and the DKIM and MTA-STS
//! settings), and so does the LMTP client ([`Shared::set_lmtp`],
//! `agents::SmtpSettings::lmtp_from_config`). No part of the
//! scheduler sees the whole `Config`.
//!
//! Who decides, who acts. Deciding is pure (no tokio, store, clock or I/O; table-tested):
//! `split` routes a message into per-destination items, `dispatch` is the state machine of
//! destinations (`push` → `starts(now)` → `finished` → `recorded`: windows, dead marks,
//! fairness, slots), `plan` turns a message's outcomes into a `Plan` (new states, retry time,
//! notices, the record to write), with `retry` and `notify` as its rules. Acting: `deliver`
//! runs an agent for one item, `carry` makes a plan durable step by step, and `manager` is
//! the loop that feeds due messages (`due`) to dispatch and carries out what it says. Each
//! module uses only those on later lines: manager; carry, deliver; context; split, plan;
//! dispatch, due, shared, notify; remote, settings, timed; route, retry, clock, sync. `suspend`
//! sits beside `manager`: its pure part (`hold_back`) runs before dispatch, its levers act on
//! the context for the manager's suspend/resume.
//!
//! Suspended destinations (`queue::suspend`, the operator's `postqueue -S`): recipients a
//! suspension names are taken out of the work before dispatch — no connection, no attempt
//! counted, no expiry — and their messages are due again the moment it ends (`suspend.rs`).
//!
//! Invariants: at most `default_process_limit` deliveries run at once and at most each
//! destination's concurrency limit per destination; a message is in at most one delivery
//! at a time; outcomes are durable before anything that depends on them, and one that cannot
//! be recorded is retried (never logged as done) while its message keeps its delivery slot and
//! is not dispatched again (`carry.rs`); an item of a message with several destinations
//! that is back while others are still out has its outcomes made durable before it gives
//! its slot back (`carry::record_early`); a null-sender message is never bounced to its
//! sender (DESIGN invariant 5); a panic inside an agent defers that delivery instead of
//! stopping the daemon (invariant 4).
//!
//! Security stance: runs as the queue owner; agents it calls may need root to deliver into
//! users' mailboxes (see the agents crate). Started as root, the daemon runs this as
//! `mail_owner` and local deliveries go to the root helper (`Shared::set_local_helper`,
//! `agents::local::helper`); a helper that does not answer is a deferral.

#![forbid(unsafe_code)]

mod carry;
mod clock;
mod context;
mod deliver;
mod dispatch;
mod due;
pub mod fleet;
mod manager;
mod notify;
mod plan;
pub mod remote;
pub mod retry;
pub mod route;
mod settings;
mod shared;
mod split;
mod suspend;
mod sync;
mod timed;

pub use manager::QueueManager;
pub use remote::{RemoteAgent, SmtpRemote};
pub use route::Routing;
pub use settings::{Limits, Settings};
pub use shared::Shared;

#[cfg(test)]
mod tests;
