//! The due-time index: which message is due when, the operator's forced flushes, the wake-up
//! of the dispatch loop, and the admission rule of the active queue. Anything that makes a
//! message due (a new message, a retry time, a flush) goes through [`Due::schedule`].
//!
//! The index holds only `(due time, queue ID)` pairs, 32 bytes a message: the messages
//! themselves stay in the store until they are taken into the active queue (`dispatch`),
//! and at most `qmgr_message_active_limit` are in it at once ([`room`]); the manager takes
//! more as room frees. Nothing is lost by waiting here: the store is the truth, and a
//! restart builds the index again from it.
//!
//! Two lanes, as Postfix's qmgr scans `incoming` and `deferred` in turn: new mail (never
//! tried: pickup, smtpd, notices, requeued mail) and deferred mail (retry times, flushes).
//! When both have a message due they take turns ([`choose`]), and once the active queue is
//! full the next turn is new mail's ([`Due::full`]), so a flushed backlog of 200,000
//! deferred messages delays new mail by one admission, not by 200,000.

use crate::sync::lock;
use envelope::QueueId;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::Notify;

/// Which scan a due message comes from (Postfix's incoming and deferred queue scans).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// Mail not tried yet.
    Incoming,
    /// Mail tried before: its retry time came, or an operator flushed it.
    Deferred,
}

impl Lane {
    fn other(self) -> Lane {
        match self {
            Lane::Incoming => Lane::Deferred,
            Lane::Deferred => Lane::Incoming,
        }
    }
}

/// How many more messages may enter the active queue: `qmgr_message_active_limit` less the
/// messages in it (in delivery, or finished and being recorded).
pub(crate) fn room(active: usize, limit: usize) -> usize {
    limit.max(1).saturating_sub(active)
}

/// The lane the next due message is taken from: the one whose `turn` it is if it has a
/// message due, else the other if that has one.
pub(crate) fn choose(turn: Lane, incoming_due: bool, deferred_due: bool) -> Option<Lane> {
    let due = |lane| match lane {
        Lane::Incoming => incoming_due,
        Lane::Deferred => deferred_due,
    };
    [turn, turn.other()].into_iter().find(|&lane| due(lane))
}

type Heap = BinaryHeap<Reverse<(u64, QueueId)>>;

#[derive(Default)]
struct Lanes {
    incoming: Heap,
    deferred: Heap,
    /// Whose turn it is when both lanes have a message due.
    turn: Option<Lane>,
}

impl Lanes {
    fn heap(&mut self, lane: Lane) -> &mut Heap {
        match lane {
            Lane::Incoming => &mut self.incoming,
            Lane::Deferred => &mut self.deferred,
        }
    }

    fn is_due(heap: &Heap, now: u64) -> bool {
        heap.peek().is_some_and(|Reverse((when, _))| *when <= now)
    }
}

pub(crate) struct Due {
    lanes: Mutex<Lanes>,
    /// Deferred messages an operator flushed: due now despite their retry time.
    forced: Mutex<HashSet<QueueId>>,
    wake: Notify,
}

impl Due {
    /// `entries`: `(due time, id, lane)` of the messages to start with.
    pub fn new(entries: Vec<(u64, QueueId, Lane)>) -> Due {
        let mut lanes = Lanes::default();
        for (when, id, lane) in entries {
            lanes.heap(lane).push(Reverse((when, id)));
        }
        Due {
            lanes: Mutex::new(lanes),
            forced: Mutex::new(HashSet::new()),
            wake: Notify::new(),
        }
    }

    /// Makes a message due at `when` (Unix seconds; 0 = now) and wakes the loop.
    pub fn schedule(&self, id: QueueId, when: u64, lane: Lane) {
        lock(&self.lanes).heap(lane).push(Reverse((when, id)));
        self.wake.notify_one();
    }

    /// Due now, whatever its retry time says (a flush: the deferred lane).
    pub fn force(&self, ids: &[QueueId]) {
        lock(&self.forced).extend(ids.iter().copied());
        let mut lanes = lock(&self.lanes);
        lanes
            .deferred
            .extend(ids.iter().map(|&id| Reverse((0, id))));
        drop(lanes);
        self.wake.notify_one();
    }

    /// The next index entry due at `now`, lanes in turn, with whether it was forced. An
    /// entry may be stale (the message is gone, held, rescheduled or in delivery): the
    /// caller checks.
    pub fn pop(&self, now: u64) -> Option<(QueueId, bool)> {
        let mut lanes = lock(&self.lanes);
        let turn = lanes.turn.unwrap_or(Lane::Incoming);
        let incoming_due = Lanes::is_due(&lanes.incoming, now);
        let deferred_due = Lanes::is_due(&lanes.deferred, now);
        let lane = choose(turn, incoming_due, deferred_due)?;
        let Reverse((_, id)) = lanes.heap(lane).pop()?;
        lanes.turn = Some(lane.other());
        drop(lanes);
        Some((id, lock(&self.forced).remove(&id)))
    }

    /// The active queue is full: when room frees, new mail goes first (Postfix's qmgr
    /// prefers the incoming scan then, so a backlog cannot keep new mail out).
    pub fn full(&self) {
        lock(&self.lanes).turn = Some(Lane::Incoming);
    }

    /// Index entries waiting, stale ones included (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let lanes = lock(&self.lanes);
        lanes.incoming.len() + lanes.deferred.len()
    }

    /// How long the loop may sleep: until the next due time, between 50 ms and 1 s.
    pub fn time_to_next(&self, now: u64) -> Duration {
        let lanes = lock(&self.lanes);
        let next = [&lanes.incoming, &lanes.deferred]
            .into_iter()
            .filter_map(|heap| heap.peek().map(|Reverse((when, _))| *when))
            .min();
        match next {
            Some(when) => {
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

#[cfg(test)]
mod tests;
