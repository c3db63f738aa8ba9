//! The due-time index, the active set and the dispatch loop.

use agents::local::LocalAgent;
use config::Config;
use envelope::QueueId;
use queue::{QueueName, Store};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{watch, Notify, Semaphore};

/// What every delivery needs: the store, the current configuration and the local agent.
/// Configuration and agent are swapped whole on SIGHUP.
pub struct Shared {
    pub store: Store,
    config: RwLock<Arc<Config>>,
    local: RwLock<Arc<LocalAgent>>,
}

impl Shared {
    pub fn new(store: Store, config: Config, local: LocalAgent) -> Shared {
        Shared {
            store,
            config: RwLock::new(Arc::new(config)),
            local: RwLock::new(Arc::new(local)),
        }
    }

    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn local(&self) -> Arc<LocalAgent> {
        self.local.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs a reloaded configuration and agent (SIGHUP).
    pub fn replace(&self, config: Config, local: LocalAgent) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        *self.local.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(local);
    }
}

/// The queue manager. Create with [`QueueManager::new`], then `run` it on a tokio runtime.
pub struct QueueManager {
    pub(crate) shared: Arc<Shared>,
    due: Mutex<BinaryHeap<Reverse<(u64, QueueId)>>>,
    active: Mutex<HashSet<QueueId>>,
    /// Deferred messages an operator flushed: due now despite their retry time.
    forced: Mutex<HashSet<QueueId>>,
    wake: Notify,
    slots: Arc<Semaphore>,
    limit: usize,
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl QueueManager {
    /// Builds the due-time index from the store: incoming mail is due now, deferred mail at
    /// its retry time, held mail not at all.
    pub fn new(shared: Arc<Shared>) -> Arc<QueueManager> {
        let limit = shared.config().default_process_limit.max(1);
        let manager = Arc::new(QueueManager {
            shared,
            due: Mutex::new(BinaryHeap::new()),
            active: Mutex::new(HashSet::new()),
            forced: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            slots: Arc::new(Semaphore::new(limit)),
            limit,
        });
        let mut heap = Vec::new();
        manager.shared.store.for_each(|e| {
            if e.meta.queue != QueueName::Hold {
                heap.push(Reverse((e.meta.next_attempt, e.id)));
            }
        });
        *manager.due.lock().unwrap_or_else(|p| p.into_inner()) = BinaryHeap::from(heap);
        manager
    }

    /// Makes a message due at `when` (Unix seconds; 0 = now) and wakes the loop.
    pub fn schedule(&self, id: QueueId, when: u64) {
        self.due
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Reverse((when, id)));
        self.wake.notify_one();
    }

    /// `postqueue -f` / `sendmail -q`: every deferred message is due now. Returns how many.
    /// Nothing is written: the override lives in memory until the attempt, whose outcome
    /// then sets the next retry time as usual.
    pub fn flush(&self) -> usize {
        let mut ids = Vec::new();
        self.shared.store.for_each(|e| {
            if e.meta.queue == QueueName::Deferred {
                ids.push(e.id);
            }
        });
        {
            let mut forced = self.forced.lock().unwrap_or_else(|p| p.into_inner());
            forced.extend(ids.iter().copied());
        }
        for &id in &ids {
            self.schedule(id, 0);
        }
        ids.len()
    }

    /// Number of deliveries in flight.
    pub fn active_count(&self) -> usize {
        self.active.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Dispatches due messages until `shutdown` turns true, then waits (up to `grace`) for
    /// the deliveries in flight: nothing is left half-delivered by a clean stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.dispatch_due(&mut shutdown).await;
            let sleep_for = self.time_to_next_due();
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
        let all = self.limit as u32;
        let _ = tokio::time::timeout(grace, self.slots.acquire_many(all)).await;
    }

    fn time_to_next_due(&self) -> Duration {
        let due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        match due.peek() {
            Some(Reverse((when, _))) => {
                let now = unix_now();
                Duration::from_secs(when.saturating_sub(now).clamp(0, 1))
                    .max(Duration::from_millis(50))
            }
            None => Duration::from_secs(1),
        }
    }

    async fn dispatch_due(self: &Arc<Self>, shutdown: &mut watch::Receiver<bool>) {
        loop {
            let Some(id) = self.pop_due() else { return };
            let permit = tokio::select! {
                p = self.slots.clone().acquire_owned() => p,
                _ = shutdown.changed() => return,
            };
            let Ok(permit) = permit else { return };
            if !self
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id)
            {
                continue; // already being delivered; its outcome reschedules it
            }
            let me = self.clone();
            tokio::spawn(async move {
                me.deliver(id).await;
                me.active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
                drop(permit);
            });
        }
    }

    /// The next due message that is still queued, not held and not already active.
    fn pop_due(&self) -> Option<QueueId> {
        let now = unix_now();
        let mut due = self.due.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(Reverse((when, id))) = due.peek().copied() {
            if when > now {
                return None;
            }
            due.pop();
            let Some(entry) = self.shared.store.get(id) else {
                continue;
            };
            let forced = self
                .forced
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&id);
            if entry.meta.queue == QueueName::Hold || (entry.meta.next_attempt > now && !forced) {
                continue; // stale heap entry: held, or rescheduled later
            }
            if self
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&id)
            {
                continue;
            }
            return Some(id);
        }
        None
    }
}
