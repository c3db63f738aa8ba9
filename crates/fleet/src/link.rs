//! The connection to Redis, and whether it answers.
//!
//! One multiplexed connection serves every task of the node. A command that fails marks
//! the link down (logged once, with the fallback in force); while it is down, admissions do
//! not wait for Redis at all (the local share of the limits applies) and the fleet's loop
//! tries to connect again each tick; the first success is logged once too. Every command
//! has a short timeout, so a Redis that hangs costs one timeout, not a stalled queue.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tracing::{info, warn};

/// How long one Redis command or connection attempt may take.
pub const TIMEOUT: Duration = Duration::from_millis(1000);

pub struct Link {
    client: Client,
    /// The URL as logged (without its password).
    url: String,
    conn: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// A failure was logged since the start (a Redis down from the start is logged once).
    warned: AtomicBool,
    /// Why the last command or connection failed, while the link is down (the fleet views).
    error: Mutex<Option<String>>,
    /// Live nodes at the last heartbeat (at least 1): the fallback divides limits by it.
    pub nodes: AtomicUsize,
}

impl Link {
    /// Fails only if the URL does not parse (the connection is made later, and again).
    pub fn new(url: &str) -> Result<Link, String> {
        let shown = crate::settings::redacted(url);
        let client = Client::open(url).map_err(|e| format!("fleet_redis_url {shown:?}: {e}"))?;
        Ok(Link {
            client,
            url: shown,
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            error: Mutex::new(None),
            nodes: AtomicUsize::new(1),
        })
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    pub fn node_count(&self) -> usize {
        self.nodes.load(Ordering::Relaxed).max(1)
    }

    /// Why Redis did not answer last, while the link is down.
    pub fn error(&self) -> Option<String> {
        if self.is_up() {
            return None;
        }
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The connection, if the link is up.
    pub fn conn(&self) -> Option<MultiplexedConnection> {
        if !self.is_up() {
            return None;
        }
        self.conn.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Connects (again); true if Redis answers. The first success after a failure is logged.
    pub async fn connect(&self) -> bool {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let attempt = self
            .client
            .get_multiplexed_async_connection_with_config(&config);
        let mut conn = match attempt.await {
            Ok(conn) => conn,
            Err(e) => {
                self.lost(&e);
                return false;
            }
        };
        let pong: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
        if let Err(e) = pong {
            self.lost(&e);
            return false;
        }
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn);
        if !self.up.swap(true, Ordering::AcqRel) {
            info!(target: "fleet", "fleet: Redis at {} answers; destination limits and suspensions are shared with the fleet", self.url);
        }
        true
    }

    /// A command failed: the link is down until the next successful connect. Logged once.
    pub fn lost(&self, e: &redis::RedisError) {
        *self.conn.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        let was_up = self.up.swap(false, Ordering::AcqRel);
        let logged = self.warned.swap(true, Ordering::AcqRel);
        if was_up || !logged {
            let n = self.node_count();
            warn!(target: "fleet", "fleet: cannot reach Redis at {}: {e}; applying this node's share of the destination limits (1/{n}, the last known node count) until it answers", self.url);
        }
    }
}
