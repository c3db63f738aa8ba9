//! The queue manager's front: shared state, the due-time index, the dispatch loop, and the
//! operator's levers (flush, per-site and per-message flush).

use crate::dispatch::Dispatch;
use crate::remote::{NoRemote, RemoteAgent};
use crate::route::Router;
use agents::LocalAgent;
use config::Config;
use envelope::{split_address, QueueId};
use queue::{QueueName, Store};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify};

/// What every delivery needs. Configuration, agents and router are swapped whole on SIGHUP.
pub struct Shared {
    pub store: Store,
    current: RwLock<Current>,
}

#[derive(Clone)]
struct Current {
    config: Arc<Config>,
    local: Arc<LocalAgent>,
    router: Arc<Router>,
    remote: Arc<dyn RemoteAgent>,
}

impl Shared {
    /// Fails if the routing configuration (transport maps, relayhost, content_filter) is bad.
    pub fn new(store: Store, config: Config, local: LocalAgent) -> Result<Shared, String> {
        let router = Router::new(&config)?;
        Ok(Shared {
            store,
            current: RwLock::new(Current {
                config: Arc::new(config),
                local: Arc::new(local),
                router: Arc::new(router),
                remote: Arc::new(NoRemote),
            }),
        })
    }

    fn current(&self) -> Current {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.current().config
    }

    pub fn local(&self) -> Arc<LocalAgent> {
        self.current().local
    }

    pub fn router(&self) -> Arc<Router> {
        self.current().router
    }

    pub fn remote(&self) -> Arc<dyn RemoteAgent> {
        self.current().remote
    }

    /// Installs the SMTP client (or any remote agent).
    pub fn set_remote(&self, remote: Arc<dyn RemoteAgent>) {
        self.current
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remote = remote;
    }

    /// Installs a reloaded configuration and local agent (SIGHUP); fails, changing nothing,
    /// if the new routing configuration is bad.
    pub fn replace(&self, config: Config, local: LocalAgent) -> Result<(), String> {
        let router = Router::new(&config)?;
        let mut cur = self.current.write().unwrap_or_else(|p| p.into_inner());
        cur.config = Arc::new(config);
        cur.local = Arc::new(local);
        cur.router = Arc::new(router);
        Ok(())
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The queue manager. Create with [`QueueManager::new`], then `run` it on a tokio runtime.
pub struct QueueManager {
    pub(crate) shared: Arc<Shared>,
    due: Mutex<BinaryHeap<Reverse<(u64, QueueId)>>>,
    /// Deferred messages an operator flushed: due now despite their retry time.
    forced: Mutex<HashSet<QueueId>>,
    pub(crate) dispatch: Mutex<Dispatch>,
    pub(crate) wake: Notify,
}

impl QueueManager {
    /// Builds the due-time index from the store: incoming mail is due now, deferred mail at
    /// its retry time, held mail not at all.
    pub fn new(shared: Arc<Shared>) -> Arc<QueueManager> {
        let limit = shared.config().default_process_limit.max(1);
        let mut heap = Vec::new();
        shared.store.for_each(|e| {
            if e.meta.queue != QueueName::Hold {
                heap.push(Reverse((e.meta.next_attempt, e.id)));
            }
        });
        Arc::new(QueueManager {
            shared,
            due: Mutex::new(BinaryHeap::from(heap)),
            forced: Mutex::new(HashSet::new()),
            dispatch: Mutex::new(Dispatch::new(limit)),
            wake: Notify::new(),
        })
    }

    /// Makes a message due at `when` (Unix seconds; 0 = now) and wakes the loop.
    pub fn schedule(&self, id: QueueId, when: u64) {
        lock(&self.due).push(Reverse((when, id)));
        self.wake.notify_one();
    }

    /// `postqueue -f` / `sendmail -q`: every deferred message is due now and every
    /// destination marked dead gets another chance. Returns how many messages.
    pub fn flush(&self) -> usize {
        lock(&self.dispatch).forget_dead(|_| true);
        self.force(|_| true)
    }

    /// `postqueue -s site`: deferred mail with a recipient in `domain` is due now.
    pub fn flush_site(&self, domain: &str) -> usize {
        let domain = domain.to_ascii_lowercase();
        // The mail may route through a relayhost or transport whose key does not name the
        // domain; an explicit flush means "try now", so every dead mark goes.
        lock(&self.dispatch).forget_dead(|_| true);
        self.force(|e| {
            e.meta
                .envelope
                .recipients
                .iter()
                .any(|r| r.state.is_open() && split_address(&r.address).1 == domain)
        })
    }

    /// `postqueue -i id`: one deferred message is due now. False if it is not queued.
    pub fn flush_id(&self, id: QueueId) -> bool {
        lock(&self.dispatch).forget_dead(|_| true);
        self.force(|e| e.id == id) > 0
    }

    fn force(&self, select: impl Fn(&queue::Entry) -> bool) -> usize {
        let mut ids = Vec::new();
        self.shared.store.for_each(|e| {
            if e.meta.queue == QueueName::Deferred && select(e) {
                ids.push(e.id);
            }
        });
        lock(&self.forced).extend(ids.iter().copied());
        for &id in &ids {
            self.schedule(id, 0);
        }
        ids.len()
    }

    /// Number of messages in delivery right now (Postfix's active queue).
    pub fn active_count(&self) -> usize {
        lock(&self.dispatch).inflight_count()
    }

    /// True if the message is being delivered right now (`*` in mailq).
    pub fn is_active(&self, id: QueueId) -> bool {
        lock(&self.dispatch).is_inflight(id)
    }

    /// Dispatches due messages until `shutdown` turns true, then waits (up to `grace`) for
    /// the deliveries in flight: nothing is left half-delivered by a clean stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            while let Some(entry) = self.pop_due() {
                self.start(entry);
            }
            self.pump();
            let sleep_for = self.time_to_next_due();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stop_dispatch();
        let deadline = tokio::time::Instant::now() + grace;
        while lock(&self.dispatch).busy() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn time_to_next_due(&self) -> Duration {
        match lock(&self.due).peek() {
            Some(Reverse((when, _))) => {
                let secs = when.saturating_sub(unix_now()).min(1);
                Duration::from_secs(secs).max(Duration::from_millis(50))
            }
            None => Duration::from_secs(1),
        }
    }

    /// The next due message that is still queued, not held and not already in delivery,
    /// with its index entry (read once here, used by `start`).
    fn pop_due(&self) -> Option<queue::Entry> {
        let now = unix_now();
        let mut due = lock(&self.due);
        while let Some(Reverse((when, id))) = due.peek().copied() {
            if when > now {
                return None;
            }
            due.pop();
            let Some(entry) = self.shared.store.get(id) else {
                continue;
            };
            let forced = lock(&self.forced).remove(&id);
            if entry.meta.queue == QueueName::Hold || (entry.meta.next_attempt > now && !forced) {
                continue; // stale heap entry: held, or rescheduled later
            }
            if self.is_active(id) {
                continue; // its outcome reschedules it
            }
            return Some(entry);
        }
        None
    }
}
