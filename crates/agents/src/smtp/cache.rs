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
//! (QUIT) by a timer task; per destination at most as many as may be in use there at once
//! (the destination concurrency limit: with a smaller cap, each wave of deliveries coming
//! back closed the surplus and the next wave opened as many anew), and [`MAX_IDLE`] in all
//! (a burst to many destinations cannot pin file descriptors). Two sessions share an
//! endpoint label only if either could carry the other's mail with the same protection and
//! the same identity. The caller must still probe a connection (RSET) before use: the
//! server may have closed it meanwhile.
//! Security stance: holds only connections this process opened; no input from outside.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

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
    since: Instant,
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
}

impl ConnectionCache {
    /// The newest connection filed under `label` idle for less than `max_idle`.
    pub fn take(&self, by: By, label: &str, max_idle: Duration) -> Option<Connection> {
        let mut index = self.lock();
        loop {
            let list = match by {
                By::Destination => index.by_destination.get(label),
                By::Endpoint => index.by_endpoint.get(label),
            };
            let id = *list?.last()?;
            let entry = index.remove(id)?;
            if entry.since.elapsed() < max_idle {
                return Some(entry.conn);
            }
            // Expired: dropping closes the socket; its timer will find nothing.
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
        let rejected = self.insert(labels, id, conn, per_destination);
        if let Some(conn) = rejected {
            tokio::spawn(conn.quit(quit));
            return;
        }
        let cache: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            tokio::time::sleep(max_idle).await;
            let expired = cache.upgrade().and_then(|c| c.lock().remove(id));
            if let Some(entry) = expired {
                entry.conn.quit(quit).await;
            }
        });
    }

    /// Number of idle connections (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Adds the connection unless a limit is reached; returns it when refused.
    fn insert(
        &self,
        labels: Labels,
        id: u64,
        conn: Connection,
        per_destination: usize,
    ) -> Option<Connection> {
        let mut index = self.lock();
        let here = index
            .by_destination
            .get(&labels.destination)
            .map_or(0, Vec::len);
        if index.entries.len() >= MAX_IDLE || here >= per_destination.max(1) {
            return Some(conn);
        }
        let destination = index.by_destination.entry(labels.destination.clone());
        destination.or_default().push(id);
        let endpoint = index.by_endpoint.entry(labels.endpoint.clone());
        endpoint.or_default().push(id);
        let since = Instant::now();
        index.entries.insert(
            id,
            Idle {
                conn,
                since,
                labels,
            },
        );
        None
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

fn unfile(lists: &mut HashMap<String, Vec<u64>>, label: &str, id: u64) {
    if let Some(list) = lists.get_mut(label) {
        list.retain(|&other| other != id);
        if list.is_empty() {
            lists.remove(label);
        }
    }
}
