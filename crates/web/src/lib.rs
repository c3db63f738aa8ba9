//! The daemon's HTTP server: Prometheus `/metrics` and the `/api/v1` JSON API over the
//! queue (listing with postsuper's selectors, message detail, hold / release / delete /
//! requeue / flush, suspend / resume a destination, health), with its OpenAPI document at `/api/v1/openapi.json`.
//!
//! # Job, inputs → outputs
//! HTTP/1.1 requests on the `http_listen` sockets → JSON (or the Prometheus text format).
//! Every answer is computed by the same code the command-line tools use: listings walk the
//! store with [`admin::select`]'s matcher and emit [`admin::Row`]s, changes run
//! [`admin::engine`]'s postsuper operations, flushes go to the queue manager. So the CLI and
//! the API can never disagree (DESIGN: "observability is a reader").
//!
//! * [`settings`]: `http_listen`, `http_allow_remote`, `http_admin_token_file` checked at
//!   start (a non-loopback address without `http_allow_remote = yes` refuses the start).
//! * [`access`]: who may do what, the constant-time token check, refusals logged once.
//! * [`routes`]: the URL table; [`listing`], [`message`], [`actions`], [`metrics`] the
//!   handlers, [`overview`] the queue page's summaries (history, qshape, deferral reasons;
//!   the fleet's view is the daemon's, [`Daemon::fleet`]);
//!   [`assets`] the embedded static files (the OpenAPI document and the queue page, so the
//!   daemon serves them with no build step at run time).
//!
//! # Invariants
//! * Store walks run on the blocking pool, never on the runtime's threads; a listing page
//!   starts at its cursor in the ordered index, so page N of 1,000,000 costs what page 1 does.
//! * Nothing here changes queue state itself: changes are admin-engine operations or
//!   queue-manager levers, the same ones postsuper and postqueue use.
//!
//! # Security stance
//! Runs inside the daemon as `mail_owner` (the listeners are bound as root before the
//! privilege drop, like smtpd's). Trusts nothing from the client: request bodies and query
//! strings are size capped and parsed strictly, no cookies are read or set (a browser's
//! ambient credentials cannot make a change: CSRF-safe), every change needs the bearer
//! token, compared in constant time. Read-only listings are open to loopback clients, as
//! `showq.sock` is open to local users; message contents (headers) need the token, as
//! postcat needs the queue owner.

#![forbid(unsafe_code)]

pub mod access;
pub mod actions;
pub mod assets;
pub mod destinations;
pub mod listing;
pub mod message;
pub mod metrics;
pub mod overview;
pub mod routes;
mod server;
pub mod settings;

pub use server::{bind, serve};
pub use settings::Settings;

use envelope::QueueId;
use std::path::PathBuf;

/// What the HTTP server needs from the running daemon (implemented by its glue over the
/// store and the queue manager).
pub trait Daemon: Send + Sync + 'static {
    /// The daemon's open queue store.
    fn store(&self) -> &queue::Store;
    /// True while the message is being delivered.
    fn is_active(&self, id: QueueId) -> bool;
    /// The messages being delivered now (the active queue).
    fn active_ids(&self) -> Vec<QueueId>;
    /// Makes a message due at `when` (Unix seconds, 0 = now).
    fn schedule(&self, id: QueueId, when: u64);
    /// `postqueue -f`: every deferred message due now; returns how many.
    fn flush(&self) -> usize;
    /// `postqueue -i ID`: true if the message was queued.
    fn flush_id(&self, id: QueueId) -> bool;
    /// Destinations marked dead, with the failure that marked them.
    fn dead_destinations(&self) -> Vec<(String, String)>;
    /// `queue_directory`.
    fn queue_directory(&self) -> PathBuf;
    /// `queue_minfree` (bytes).
    fn queue_minfree(&self) -> u64;
    /// `postqueue -S`: suspends deliveries to a destination (durable); the suspension made.
    fn suspend(
        &self,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<queue::Suspension, queue::SuspendError>;
    /// `postqueue -U`: true if it was suspended.
    fn resume(&self, destination: &str) -> Result<bool, queue::SuspendError>;
    /// The suspensions in force.
    fn suspensions(&self) -> Vec<queue::Suspension>;
    /// In a fleet, this node's name: every `/metrics` series then carries `node="NAME"`,
    /// so one Prometheus scraping all nodes tells them apart.
    fn node(&self) -> Option<String> {
        None
    }
    /// `GET /api/v1/fleet`: in a fleet, this node's view of it read from Redis now (the
    /// fleet crate's `View` as JSON); `None` for a node alone, which answers
    /// `{"fleet": false}`.
    fn fleet(&self) -> FleetView {
        Box::pin(async { None })
    }
}

/// What [`Daemon::fleet`] answers: it reads Redis, so it is awaited, not run on the
/// blocking pool.
pub type FleetView =
    std::pin::Pin<Box<dyn std::future::Future<Output = Option<serde_json::Value>> + Send>>;

/// The daemon as the admin engine's scheduler.
pub(crate) struct Scheduler<'a>(pub &'a dyn Daemon);

impl admin::Scheduler for Scheduler<'_> {
    fn is_active(&self, id: QueueId) -> bool {
        self.0.is_active(id)
    }
    fn schedule(&self, id: QueueId, when: u64) {
        self.0.schedule(id, when);
    }
}
