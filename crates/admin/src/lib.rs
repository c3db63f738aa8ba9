//! The operator's hands: `postqueue`/`mailq`, `postsuper`, `postcat`, `qshape`, `check`,
//! `doctor` and `mailbox archive` as functions over the queue, the configuration and the
//! mail spool. The `mailroom` binary is only their command-line glue.
//!
//! # Job, inputs → outputs
//! * [`engine`]: one implementation of every queue operation (list, qshape, statistics,
//!   postsuper, postcat) over a [`engine::Backend`] — the live [`queue::Store`] or a read-only
//!   snapshot — producing a stream of [`protocol::Event`]s. The daemon runs it on behalf of
//!   its control socket (it owns the store lock); the tools run it in-process when the daemon
//!   is down. Same code, same answers, either way.
//! * [`execute`]: where a request runs — through the daemon when it answers, else in
//!   process — so each tool is a request and a renderer of its events.
//! * [`protocol`]: how those requests and events travel over the control socket: one JSON
//!   request line in, one JSON event per line out, ending with `End` or `Error`; listing
//!   rows may travel as compact tab-separated lines instead ([`rowline`]).
//! * [`showq`], [`qshape`], [`postcat`], [`superop`]: Postfix's exact output layouts.
//! * [`check`]: owner/group/mode of the store against the profile, config, listeners;
//!   `--fix` repairs. [`doctor`]: the one-screen health report with exit 0/1/2.
//! * [`pidfile`]: the daemon's locked `pid/master.pid`, read by start/stop/status/reload.
//! * [`install`]: `mailroom install`/`uninstall` as one idempotent plan (users, the queue
//!   from `check`'s layout table, binaries, the MTA entry points guarded against another
//!   MTA's files, configuration, unit, pages), also the Debian package's postinst.
//! * [`archive`]: seed 002 done safely: old mbox messages to a gzip archive under the
//!   mailbox locks, the rest kept with its owner, group and mode.
//!
//! # Settings
//! `check` and `doctor` take one [`Settings`] (built by the binary with
//! [`Settings::from_config`]): `profile`, the queue [`queue::Layout`], `mail_spool_directory`,
//! `mailbox_size_limit`, `mail_owner`, `setgid_group`, `postdrop_path`, the listeners,
//! `maillog_file`, `mydestination`, `relayhost`, `transport_maps`, `maximal_queue_lifetime`,
//! `maildrop_count_limit`, `queue_minfree` and `queue_minfree_inodes`. The queue tools take
//! only the queue directory.
//!
//! # Invariants
//! * Bulk work scales (DESIGN invariant 8): listings stream row by row from the store's
//!   chunked iteration (memory stays flat and the first line is out at once); bulk changes
//!   are written in batches that share one fdatasync each ([`queue::Store::apply_many`]);
//!   qshape and statistics are computed where the index lives and only the matrix travels.
//! * Listings never change the store: with the daemon down they read a lock-free snapshot.
//! * Only the store's owner (the daemon, or a tool holding the store lock) changes queue
//!   state; a change to a message the daemon is delivering is reconciled by the scheduler.
//!
//! # Security stance
//! Runs as the queue owner or root; trusts the store and the configuration, not queue
//! contents (addresses and reasons are printed, never interpreted). `check --fix` and
//! `archive` never follow symbolic links when they change ownership or rewrite files.

#![forbid(unsafe_code)]

pub mod archive;
pub mod check;
pub mod doctor;
pub mod duration;
pub mod engine;
pub mod execute;
pub mod history;
pub mod import;
pub mod install;
pub mod pidfile;
pub mod postcat;
pub mod progress;
pub mod protocol;
pub mod qshape;
pub mod row;
pub mod rowline;
pub mod select;
mod settings;
pub mod showq;
pub mod stats;
pub mod superop;
pub mod suspend;

pub use engine::{Backend, NoScheduler, Scheduler};
pub use execute::execute;
pub use protocol::{Event, Request};
pub use row::{Row, RowRecipient};
pub use select::Selector;
pub use settings::Settings;
