//! The due-time index: which message is due when, the operator's forced flushes, and the
//! wake-up of the dispatch loop. Anything that makes a message due (a new message, a retry
//! time, a flush) goes through [`Due::schedule`].

use crate::sync::lock;
use envelope::QueueId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

pub(crate) struct Due {
    heap: Mutex<BinaryHeap<Reverse<(u64, QueueId)>>>,
    /// Deferred messages an operator flushed: due now despite their retry time.
    forced: Mutex<HashSet<QueueId>>,
    wake: Notify,
}

impl Due {
    /// `entries`: `(due time, id)` pairs to start with.
    pub fn new(entries: Vec<(u64, QueueId)>) -> Due {
        Due {
            heap: Mutex::new(entries.into_iter().map(Reverse).collect()),
            forced: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        }
    }

    /// Makes a message due at `when` (Unix seconds; 0 = now) and wakes the loop.
    pub fn schedule(&self, id: QueueId, when: u64) {
        lock(&self.heap).push(Reverse((when, id)));
        self.wake.notify_one();
    }

    /// Due now, whatever its retry time says.
    pub fn force(&self, ids: &[QueueId]) {
        lock(&self.forced).extend(ids.iter().copied());
        for &id in ids {
            self.schedule(id, 0);
        }
    }

    /// The next index entry due at `now`, with whether it was forced. An entry may be stale
    /// (the message is gone, held or rescheduled): the caller checks.
    pub fn pop(&self, now: u64) -> Option<(QueueId, bool)> {
        let mut heap = lock(&self.heap);
        let Reverse((when, id)) = heap.peek().copied()?;
        if when > now {
            return None;
        }
        heap.pop();
        drop(heap);
        Some((id, lock(&self.forced).remove(&id)))
    }

    /// How long the loop may sleep: until the next due time, between 50 ms and 1 s.
    pub fn time_to_next(&self, now: u64) -> Duration {
        match lock(&self.heap).peek() {
            Some(Reverse((when, _))) => {
                let secs = when.saturating_sub(now).min(1);
                Duration::from_secs(secs).max(Duration::from_millis(50))
            }
            None => Duration::from_secs(1),
        }
    }

    /// Wakes the loop (a slot or a destination became free).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub async fn woken(&self) {
        self.wake.notified().await;
    }
}
