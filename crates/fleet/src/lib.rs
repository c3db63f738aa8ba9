//! A fleet of mailroom nodes: what must hold for the whole fleet, shared through Redis.
//!
//! Each node keeps its own queue and delivers its own mail; Redis holds only what protects
//! a destination or expresses the operator's decision: connection leases per destination
//! (at most `smtp_destination_concurrency_limit` across the fleet; a lease expires unless
//! its node renews it, so a crashed node's slots come back), message slots per destination
//! (`smtp_destination_rate_limit`, GCRA in a Lua script), suspensions (`postqueue -S` on
//! one node holds the mail on all), dead marks, and heartbeats (`mailroom fleet status`,
//! `mailq --fleet`). Losing Redis loses no mail: nothing queued lives there.
//!
//! Inputs → outputs: the scheduler's questions through [`sched::fleet::FleetLink`]
//! ("may I open one more connection to D?", "D is dead", "the operator suspended D") →
//! Redis commands; the shared tables read back every [`TICK`] → the queue manager's
//! suspensions (`QueueManager::adopt_suspensions`) and this node's copy of dead marks.
//!
//! Failure rules: Redis down never stops delivery. The node then applies its share of each
//! limit (the limit divided by the node count last seen, at least one connection; the rate
//! likewise), logs that once, and tries Redis again each tick; the first answer is logged
//! once, held leases are put back, and changes made meanwhile (suspensions, dead marks)
//! are sent. A Redis that lost its data (restarted without persistence) is seeded again
//! from what the nodes know.
//!
//! Views: [`status`] reads the fleet's state for `mailroom fleet status` and the fleet
//! views; [`view`] adds this node's link state for `GET /api/v1/fleet`.
//!
//! Security stance: runs inside the daemon as `mail_owner`; trusts Redis as much as its
//! own configuration (anyone who can write to it can suspend destinations fleet-wide and
//! throttle deliveries), so Redis belongs on a private network with `requirepass`
//! (`redis://:password@host/0`). Nothing read from Redis is executed; bad JSON is ignored.

#![forbid(unsafe_code)]

mod admit;
mod link;
mod local;
mod scripts;
mod settings;
mod state;
pub mod status;
pub mod view;

pub use settings::FleetSettings;
pub use status::{NodeReport, Status};
pub use view::View;

use link::Link;
use local::Local;
use queue::Suspension;
use sched::fleet::{Admission, FleetLink};
use sched::remote::BoxFuture;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often shared state is read back (a suspension reaches every node within two).
pub const TICK: Duration = Duration::from_millis(250);

/// What the fleet needs from the daemon.
pub struct Hooks {
    /// Puts the fleet's suspensions in force (`QueueManager::adopt_suspensions`).
    pub adopt: Box<dyn Fn(Vec<Suspension>) + Send + Sync>,
    /// The suspensions in force on this node (sent to a Redis that lost its data).
    pub suspensions: Box<dyn Fn() -> Vec<Suspension> + Send + Sync>,
    /// This node's queue sizes, for its heartbeat.
    pub report: Box<dyn Fn() -> NodeReport + Send + Sync>,
}

/// A change this node made that Redis has not taken yet.
#[derive(Debug, Clone)]
enum Change {
    Suspend(Suspension),
    Resume(String),
    Dead {
        destination: String,
        reason: String,
        until_ms: u64,
    },
    ForgetDead,
}

/// One node's link to the fleet. Build with [`Fleet::new`], install with
/// `Shared::set_fleet`, and run [`Fleet::run`] until the daemon stops.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    settings: FleetSettings,
    link: Option<Link>,
    local: Local,
    hooks: Hooks,
    serial: AtomicU64,
    /// Permits held now: serial → (destination, lease in Redis).
    held: Mutex<HashMap<u64, (String, bool)>>,
    /// The fleet's dead marks as last read: destination → (until, Unix ms; reason).
    dead: Mutex<HashMap<String, (u64, String)>>,
    outbox: Mutex<VecDeque<Change>>,
    askers: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The last status read for a [`View`], and when (shown while Redis is away).
    last: Mutex<Option<(std::time::Instant, Status)>>,
}

impl Fleet {
    /// Fails only on a `fleet_redis_url` that does not parse.
    pub fn new(settings: FleetSettings, hooks: Hooks) -> Result<Fleet, String> {
        let link = settings.redis_url.as_deref().map(Link::new).transpose()?;
        let inner = Inner {
            settings,
            link,
            local: Local::default(),
            hooks,
            serial: AtomicU64::new(1),
            held: Mutex::default(),
            dead: Mutex::default(),
            outbox: Mutex::default(),
            askers: Mutex::default(),
            last: Mutex::default(),
        };
        Ok(Fleet {
            inner: Arc::new(inner),
        })
    }

    /// Shares state with Redis every [`TICK`] until `stop` turns true (nothing to do for a
    /// node without `fleet_redis_url`).
    pub async fn run(self, stop: tokio::sync::watch::Receiver<bool>) {
        state::run(self.inner, stop).await
    }
}

impl FleetLink for Fleet {
    fn admit<'a>(&'a self, destination: &'a str, concurrency: usize) -> BoxFuture<'a, Admission> {
        Box::pin(admit::admit(&self.inner, destination, concurrency))
    }

    fn mark_dead(&self, destination: &str, reason: &str, time: Duration) {
        if self.inner.link.is_none() {
            return;
        }
        let until_ms = status::unix_ms().saturating_add(time.as_millis() as u64);
        self.inner.send(Change::Dead {
            destination: destination.to_string(),
            reason: reason.to_string(),
            until_ms,
        });
    }

    fn forget_dead(&self) {
        lock(&self.inner.dead).clear();
        if self.inner.link.is_some() {
            self.inner.send(Change::ForgetDead);
        }
    }

    fn suspended(&self, suspension: &Suspension) {
        if self.inner.link.is_some() {
            self.inner.send(Change::Suspend(suspension.clone()));
        }
    }

    fn resumed(&self, destination: &str) {
        if self.inner.link.is_some() {
            self.inner.send(Change::Resume(destination.to_string()));
        }
    }
}

impl Inner {
    fn send(&self, change: Change) {
        lock(&self.outbox).push_back(change);
    }

    /// The per-destination lock one negotiating delivery holds (see `admit.rs`).
    fn asker(&self, destination: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut askers = lock(&self.askers);
        askers.retain(|_, a| Arc::strong_count(a) > 1);
        askers.entry(destination.to_string()).or_default().clone()
    }

    /// Why another node found `destination` dead, while its mark lasts.
    fn dead_reason(&self, destination: &str) -> Option<String> {
        let dead = lock(&self.dead);
        let (until, reason) = dead.get(destination)?;
        (*until > status::unix_ms()).then(|| reason.clone())
    }

    fn hold(&self, destination: &str, serial: u64, in_redis: bool) {
        lock(&self.held).insert(serial, (destination.to_string(), in_redis));
    }

    /// A permit is dropped: its lease leaves Redis (in the background) and the local count.
    fn release(&self, destination: &str, serial: u64) {
        let was = lock(&self.held).remove(&serial);
        self.local.release(destination);
        let Some((_, true)) = was else { return };
        let (Some(link), Ok(runtime)) = (&self.link, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let Some(mut conn) = link.conn() else { return };
        let member = format!("{}:{serial}", self.settings.node_name);
        let key = scripts::conn_key(destination);
        runtime.spawn(async move {
            // A lease that cannot be removed expires by itself (admit.rs's LEASE).
            let _: redis::RedisResult<i64> = redis::cmd("ZREM")
                .arg(key)
                .arg(member)
                .query_async(&mut conn)
                .await;
        });
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
