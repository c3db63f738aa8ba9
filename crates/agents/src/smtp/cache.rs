//! Idle SMTP connections kept for the next message (Postfix's connection cache,
//! `smtp_connection_cache_time_limit`), found by destination or by server address.
//!
//! Why two ways in: many domains are served by the same machines (a hosting provider's MX,
//! a smarthost behind many names). Looking up only by nexthop domain, a burst to a thousand
//! such domains opens a connection per delivery while connections to the very same server
//! sit idle under other domains' names. As Postfix's scache, each idle connection is filed
//! under its destination label (the nexthop it was last used for) and its endpoint label
//! (the server address plus everything that makes a session different: see
//! [`SessionKind`]); the client looks up the destination first (no DNS needed), then each
//! resolved address before connecting to it.
//!
//! Inputs → outputs: a connection between transactions and its [`Labels`] → stored; later a
//! destination or endpoint label → the most recently stored live connection for it, if any.
//! Invariants: a connection is handed out at most once (taking it by one label removes it
//! under the other); one idle longer than the cache time is never handed out and is closed
//! (QUIT) by the cache's one closer task, soon after (it wakes at the earliest deadline plus
//! a quarter of the time that was left until it, 10 ms to 1 s, and closes every connection
//! expired by then: one wake-up for many expiries, not a timer task per stored connection);
//! per destination at most as many as may be in use there at once
//! (the destination concurrency limit: with a smaller cap, each wave of deliveries coming
//! back closed the surplus and the next wave opened as many anew), and [`MAX_IDLE`] in all
//! (a burst to many destinations cannot pin file descriptors). Two sessions share an
//! endpoint label only if either could carry the other's mail with the same protection and
//! the same identity. The caller must still probe a connection (RSET) before use: the
//! server may have closed it meanwhile.
//! Security stance: holds only connections this process opened; no input from outside.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::conn::{Connection, Endpoint, Peer};
use super::policy::TlsPolicy;
use super::settings::Dialect;

pub(crate) const MAX_IDLE: usize = 256;

/// The two names an idle connection is filed under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Labels {
    pub destination: String,
    pub endpoint: String,
}

/// What, besides the server address, makes one session unfit for another delivery
/// (Postfix's `SMTP_KEY_MASK_SCACHE_ENDP_LABEL`). The cache belongs to one client, so the
/// client-wide settings (HELO name, timeouts) are the same for all its sessions; the HELO
/// name and the dialect are in the label anyway, so a shared cache could not mix them up.
pub(crate) struct SessionKind<'a> {
    pub dialect: Dialect,
    pub helo_name: &'a str,
    /// The destination's TLS policy: level, protocols, SNI and certificate names.
    pub policy: &'a TlsPolicy,
    /// The destination label (the nexthop with its port, or the LMTP socket).
    pub destination: &'a str,
    /// SASL is on: the credentials were chosen by nexthop and host name, so a session
    /// authenticated for one destination is not another's.
    pub sasl: bool,
}

impl SessionKind<'_> {
    /// The destination label: the nexthop, and the TLS level asked for there.
    pub fn destination_label(&self) -> String {
        let level = self.policy.level.as_str();
        let mut label = String::with_capacity(self.destination.len() + 5 + level.len());
        label.push_str(self.destination);
        label.push_str(" tls=");
        label.push_str(level);
        label
    }

    /// The endpoint label of a session with `peer`. The whole TLS policy is in it (two
    /// domains at `may` with the same protocols share; `may` and `encrypt` do not). The
    /// nexthop and the host name are in it too when the certificate was checked against
    /// them (verify, secure, DANE), when SNI names one of them, or when SASL credentials were
    /// looked up by them — so a session verified or authenticated for one destination is
    /// never handed to another.
    pub fn endpoint_label(&self, peer: &Peer) -> String {
        let mut label = String::with_capacity(128);
        label.push_str(match self.dialect {
            Dialect::Smtp => "smtp",
            Dialect::Lmtp => "lmtp",
        });
        label.push_str(" helo=");
        label.push_str(self.helo_name);
        label.push(' ');
        // Writing to a String cannot fail.
        let _ = match &peer.addr {
            Endpoint::Tcp(addr) => write!(label, "{addr}"),
            Endpoint::Unix(path) => write!(label, "{}", path.display()),
        };
        label.push(' ');
        self.policy.write_key(&mut label);
        let named_sni = matches!(self.policy.servername.as_str(), "hostname" | "nexthop");
        if self.sasl || named_sni || self.policy.level.requires_verification() {
            let _ = write!(label, " for={} host={}", self.destination, peer.host);
        }
        label
    }

    pub fn labels(&self, peer: &Peer) -> Labels {
        Labels {
            destination: self.destination_label(),
            endpoint: self.endpoint_label(peer),
        }
    }
}

struct Idle {
    conn: Connection,
    /// When it was stored plus the cache time it was stored with: from then on it is not
    /// handed out, and the closer's QUIT is due.
    expires: Instant,
    /// The QUIT's time limit.
    quit: Duration,
    labels: Labels,
}

/// The idle connections by id, and the ids under each label (newest last).
#[derive(Default)]
struct Index {
    entries: HashMap<u64, Idle>,
    by_destination: HashMap<String, Vec<u64>>,
    by_endpoint: HashMap<String, Vec<u64>>,
}

/// Which of the two labels a lookup uses.
#[derive(Clone, Copy)]
pub(crate) enum By {
    Destination,
    Endpoint,
}

#[derive(Default)]
pub(crate) struct ConnectionCache {
    idle: Mutex<Index>,
    next_id: AtomicU64,
    /// The closer task was started (at the first store).
    closer: AtomicBool,
    /// Tells the closer, waiting with nothing stored, that something is.
    stored: Arc<Notify>,
}

impl ConnectionCache {
    /// The newest connection filed under `label` whose cache time has not run out.
    pub fn take(&self, by: By, label: &str) -> Option<Connection> {
        let mut index = self.lock();
        loop {
            let list = match by {
                By::Destination => index.by_destination.get(label),
                By::Endpoint => index.by_endpoint.get(label),
            };
            let id = *list?.last()?;
            let entry = index.remove(id)?;
            if Instant::now() < entry.expires {
                return Some(entry.conn);
            }
            // Expired: dropping closes the socket; the closer will find nothing.
        }
    }

    /// Stores `conn` for `max_idle` unless `per_destination` connections are idle under
    /// its destination label already; a timer closes it politely if nobody takes it.
    pub fn put(
        self: &Arc<Self>,
        labels: Labels,
        conn: Connection,
        max_idle: Duration,
        quit: Duration,
        per_destination: usize,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let stored = Stored {
            max_idle,
            quit,
            per_destination,
        };
        let first = match self.insert(labels, id, conn, stored) {
            Filed::Refused(conn) => {
                tokio::spawn(conn.quit(quit));
                return;
            }
            Filed::First => true,
            Filed::Beside => false,
        };
        if !self.closer.swap(true, Ordering::Relaxed) {
            tokio::spawn(close_expired(Arc::downgrade(self), self.stored.clone()));
        }
        if first {
            self.stored.notify_one();
        }
    }

    /// Takes out every connection whose cache time ran out by `now`; also returns the
    /// earliest deadline of those left.
    fn expire(&self, now: Instant) -> (Vec<Idle>, Option<Instant>) {
        let mut index = self.lock();
        let due: Vec<u64> = index
            .entries
            .iter()
            .filter(|(_, idle)| idle.expires <= now)
            .map(|(&id, _)| id)
            .collect();
        let expired = due.into_iter().filter_map(|id| index.remove(id)).collect();
        let next = index.entries.values().map(|idle| idle.expires).min();
        (expired, next)
    }

    /// Number of idle connections (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Adds the connection unless a limit is reached.
    fn insert(&self, labels: Labels, id: u64, conn: Connection, stored: Stored) -> Filed {
        let mut index = self.lock();
        let here = index
            .by_destination
            .get(&labels.destination)
            .map_or(0, Vec::len);
        if index.entries.len() >= MAX_IDLE || here >= stored.per_destination.max(1) {
            return Filed::Refused(Box::new(conn));
        }
        file(&mut index.by_destination, &labels.destination, id);
        file(&mut index.by_endpoint, &labels.endpoint, id);
        index.entries.insert(
            id,
            Idle {
                conn,
                expires: Instant::now() + stored.max_idle,
                quit: stored.quit,
                labels,
            },
        );
        match index.entries.len() {
            1 => Filed::First,
            _ => Filed::Beside,
        }
    }

    /// The index, even if a panicking thread poisoned the lock (the data stays consistent:
    /// every critical section is a plain insert or [`Index::remove`]).
    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Index {
    /// Takes entry `id` out of the table and from under both its labels.
    fn remove(&mut self, id: u64) -> Option<Idle> {
        let entry = self.entries.remove(&id)?;
        unfile(&mut self.by_destination, &entry.labels.destination, id);
        unfile(&mut self.by_endpoint, &entry.labels.endpoint, id);
        Some(entry)
    }
}

impl Drop for ConnectionCache {
    /// Wakes a closer waiting for a first connection, so that it sees the cache gone and ends.
    fn drop(&mut self) {
        self.stored.notify_one();
    }
}

/// What [`ConnectionCache::insert`] did with a connection.
enum Filed {
    /// Stored, the only one.
    First,
    /// Stored beside others.
    Beside,
    /// A limit was reached: not stored, handed back.
    Refused(Box<Connection>),
}

/// How [`ConnectionCache::put`] was asked to keep a connection.
struct Stored {
    max_idle: Duration,
    quit: Duration,
    per_destination: usize,
}

/// The closer: while connections are stored, sleeps until the earliest deadline plus some
/// slack and sends QUIT to each one expired by then; with none stored, waits for one. Ends
/// when the cache is gone.
async fn close_expired(cache: Weak<ConnectionCache>, stored: Arc<Notify>) {
    loop {
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let (expired, next) = strong.expire(Instant::now());
        drop(strong);
        for idle in expired {
            tokio::spawn(idle.conn.quit(idle.quit));
        }
        match next {
            Some(deadline) => {
                let slack = expiry_slack(deadline);
                tokio::time::sleep_until((deadline + slack).into()).await;
            }
            None => stored.notified().await,
        }
    }
}

/// How late the closer may come for a connection due at `deadline`: a quarter of the time
/// left until then, between 10 ms and a second, so that one wake-up serves the expiries of
/// many deliveries (a connection past its time is never handed out meanwhile).
fn expiry_slack(deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    (left / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

/// Files `id` under `label`, allocating the label only for its first connection.
fn file(lists: &mut HashMap<String, Vec<u64>>, label: &str, id: u64) {
    match lists.get_mut(label) {
        Some(list) => list.push(id),
        None => {
            lists.insert(label.to_string(), vec![id]);
        }
    }
}

fn unfile(lists: &mut HashMap<String, Vec<u64>>, label: &str, id: u64) {
    if let Some(list) = lists.get_mut(label) {
        list.retain(|&other| other != id);
        if list.is_empty() {
            lists.remove(label);
        }
    }
}
