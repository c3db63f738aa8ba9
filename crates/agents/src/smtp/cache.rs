//! Idle SMTP connections kept for the next message to the same nexthop (Postfix's
//! connection cache, `smtp_connection_cache_time_limit`).
//!
//! Inputs → outputs: a connection between transactions and its destination key (the
//! nexthop with its port, or the LMTP socket) → stored; later, a key → the most recently stored live connection for it, if any.
//! Invariants: a connection is handed out at most once; one idle longer than the cache time
//! is never handed out and is closed (QUIT) by a timer task; per nexthop at most as many as
//! the caller says may be in use there at once (the destination concurrency limit: with a
//! smaller cap, each wave of deliveries coming back closed the surplus and the next wave
//! opened as many anew — connection churn on every big queue to one destination), and
//! [`MAX_IDLE`] in all (a burst to many destinations cannot pin file descriptors). The
//! caller must still probe a connection (RSET) before use: the server may have closed it
//! meanwhile.
//! Security stance: holds only connections this process opened; no input from outside.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::conn::Connection;

pub(crate) const MAX_IDLE: usize = 256;

struct Idle {
    id: u64,
    conn: Connection,
    since: Instant,
}

#[derive(Default)]
pub(crate) struct ConnectionCache {
    idle: Mutex<HashMap<String, Vec<Idle>>>,
    next_id: AtomicU64,
}

impl ConnectionCache {
    /// The newest connection for `nexthop` idle for less than `max_idle`.
    pub fn take(&self, nexthop: &str, max_idle: Duration) -> Option<Connection> {
        let mut idle = self.lock();
        let list = idle.get_mut(nexthop)?;
        let mut found = None;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < max_idle {
                found = Some(entry.conn);
                break;
            }
            // Expired: dropping closes the socket; its timer will find nothing.
        }
        if list.is_empty() {
            idle.remove(nexthop);
        }
        found
    }

    /// Stores `conn` for `max_idle` unless `per_nexthop` connections to `nexthop` are idle
    /// already; a timer closes it politely if nobody takes it.
    pub fn put(
        self: &Arc<Self>,
        nexthop: String,
        conn: Connection,
        max_idle: Duration,
        quit: Duration,
        per_nexthop: usize,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let rejected = self.insert(nexthop.clone(), id, conn, per_nexthop);
        if let Some(conn) = rejected {
            tokio::spawn(conn.quit(quit));
            return;
        }
        let cache: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(max_idle).await;
            let expired = cache.upgrade().and_then(|c| c.remove(&nexthop, id));
            if let Some(conn) = expired {
                conn.quit(quit).await;
            }
        });
    }

    /// Number of idle connections (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().values().map(Vec::len).sum()
    }

    /// Adds the connection unless a limit is reached; returns it when refused.
    fn insert(
        &self,
        nexthop: String,
        id: u64,
        conn: Connection,
        per_nexthop: usize,
    ) -> Option<Connection> {
        let mut idle = self.lock();
        let total: usize = idle.values().map(Vec::len).sum();
        let here = idle.get(&nexthop).map_or(0, Vec::len);
        if total >= MAX_IDLE || here >= per_nexthop.max(1) {
            return Some(conn);
        }
        idle.entry(nexthop).or_default().push(Idle {
            id,
            conn,
            since: Instant::now(),
        });
        None
    }

    fn remove(&self, nexthop: &str, id: u64) -> Option<Connection> {
        let mut idle = self.lock();
        let list = idle.get_mut(nexthop)?;
        let position = list.iter().position(|entry| entry.id == id)?;
        let entry = list.remove(position);
        if list.is_empty() {
            idle.remove(nexthop);
        }
        Some(entry.conn)
    }

    /// The map, even if a panicking thread poisoned the lock (the data stays consistent:
    /// every critical section is a plain push, pop or remove).
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}
