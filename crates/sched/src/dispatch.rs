//! Per-destination queues, as a pure state machine: which deliveries may start now.
//!
//! A due message is split into items, one per destination (`split.rs`), each holding that
//! destination's recipients. [`Dispatch::push`] queues the items in their destinations' FIFOs;
//! [`Dispatch::starts`] hands out the items that may start, round-robin across destinations,
//! within each destination's concurrency window and the global `default_process_limit`, so
//! one slow or dead destination cannot starve the others (seed 003's qshape picture);
//! [`Dispatch::finished`] takes an item's result back; once all items of a message are back,
//! `starts` hands the message out to be applied, and [`Dispatch::recorded`] gives its slots
//! back once its outcomes are durable. No clock, no I/O: the caller passes `now`.
//!
//! A message's states here: `in flight` (items waiting or delivering) → `finishing`
//! (handed out to be applied; still counts as active, holds its last item's slot) → gone
//! (recorded). Holding that slot until the record is durable bounds the messages a crash can
//! deliver twice to `default_process_limit`. An item that is back while others of its message
//! are still out gives its slot back at once (else a message with more destinations than the
//! limit would wait for itself forever), but only after its outcomes were made durable on
//! their own ([`Dispatch::others_out`], `carry::record_early`, as each Postfix delivery agent
//! marks its recipients done in the queue file): what a crash can deliver twice is still only
//! what holds a slot, at most `default_process_limit` deliveries.
//!
//! Concurrency window (Postfix's slow start): a destination starts at 5 concurrent
//! deliveries (or its limit if lower) and grows by one per success up to its limit. A
//! destination that fails as a whole (nothing answers) is marked dead for
//! `Limits::dead_time`: its waiting items, and new ones, are deferred at once without a
//! connection — 1,000 queued messages to a dead host cost a handful of connection attempts,
//! not 1,000. Back from the dead (the mark ran out, or a flush) it starts again at the
//! initial window, or at the deliveries still running if there are any (Postfix's
//! `qmgr_queue_unthrottle`).
//!
//! Cost: `starts` visits only destinations that can act — those in the `runnable` ring (items
//! waiting and room in their window when put there) and those in `dying` (items waiting on a
//! dead mark) — not every destination known. A destination at its window leaves the ring and
//! comes back when one of its deliveries is back, so with 10,000 destinations and the global
//! limit reached, a finished delivery costs one turn, not a scan of all 10,000 (the scan was
//! the scheduler's cost per delivery, and it grew with the number of destinations).

use crate::route::{Destination, Route};
use crate::settings::Limits;
use crate::timed::{Agent, Timed};
use envelope::{Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, MessageMeta};
use std::collections::{HashMap, VecDeque};
use std::mem;
use std::time::Instant;

const INITIAL_WINDOW: usize = 5;

/// One destination's share of one message.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub id: QueueId,
    pub destination: Destination,
    pub route: Route,
    pub recipients: Vec<usize>,
    pub queued: Instant,
}

/// A message handed to dispatch, and handed back (with all its outcomes) to be applied.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub entry: Entry,
    /// Outcomes so far: those decided without a delivery, then each item's.
    pub outcomes: Vec<Timed>,
    pub started: Instant,
    /// Why a `hold:` route held (some of) its recipients.
    pub hold: Option<String>,
    /// Recipients a suspended destination held back this pass (`suspend.rs`).
    pub held_back: Vec<usize>,
    /// Some items' outcomes are durable already: their new states are in `entry`, their
    /// outcomes not in `outcomes` (they were logged and counted when recorded).
    pub recorded_early: bool,
}

/// What dispatch tells its caller to do.
// Handed straight to the caller and never stored in bulk: the message inline is cheaper
// than a box per decision.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Start {
    /// Deliver this item now (it holds a delivery slot).
    Deliver(Item),
    /// All items of this message are back: apply its outcomes, then call `recorded`.
    Apply(Message),
}

/// What the delivery of one item reports back.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    pub outcomes: Vec<Timed>,
    /// The destination itself failed: it is marked dead.
    pub failure: Option<String>,
    /// The new recipient states, when `outcomes` were made durable on their own already
    /// (other items of the message were still out): the message takes these states, not
    /// the outcomes.
    pub recorded: Option<Vec<(usize, RecipientState)>>,
}

#[derive(Debug)]
struct Dest {
    items: VecDeque<Item>,
    active: usize,
    limit: usize,
    window: usize,
    dead: Option<(Instant, String)>,
    /// In the `runnable` ring (at most once).
    queued: bool,
}

impl Dest {
    fn idle(&self) -> bool {
        self.items.is_empty() && self.active == 0 && self.dead.is_none() && !self.queued
    }

    fn has_room(&self) -> bool {
        self.active < self.window.min(self.limit)
    }

    /// Lifts a dead mark (it ran out, or a flush): as in Postfix's `qmgr_queue_unthrottle`,
    /// the window starts again at the deliveries still running, else at the initial window.
    /// Not at one: a destination back from the dead would otherwise take one delivery at a
    /// time until its first success, a whole timeout when it answers slowly.
    fn revive(&mut self) {
        if self.dead.take().is_some() {
            let running = self.active;
            self.window = if running > 0 { running } else { INITIAL_WINDOW }.min(self.limit);
        }
    }
}

#[derive(Debug)]
struct InFlight {
    message: Message,
    /// Items not back yet.
    waiting: usize,
    /// Delivery slots its items took.
    slots: usize,
}

#[derive(Debug)]
pub(crate) struct Dispatch {
    dests: HashMap<Destination, Dest>,
    /// Round-robin order of the destinations that may start a delivery: items waiting, and
    /// room in the window when they were put here (see "Cost" above).
    runnable: VecDeque<Destination>,
    /// Destinations with items waiting on a dead mark: deferred by the next `starts`, even
    /// when no delivery slot is free.
    dying: Vec<Destination>,
    /// Dead marks in the order they were set, to forget idle destinations once they expire.
    expiring: VecDeque<(Instant, Destination)>,
    /// Destinations looked at by `starts` (tests: its cost).
    #[cfg(test)]
    pub(crate) turns: usize,
    inflight: HashMap<QueueId, InFlight>,
    /// Messages handed out to be applied, with the slots they hold until `recorded`.
    finishing: HashMap<QueueId, usize>,
    /// Messages finished but not handed out yet (by the next `starts`).
    ready: Vec<Message>,
    active: usize,
    limit: usize,
    stopping: bool,
}

impl Dispatch {
    /// `limit`: how many deliveries may run at once (`default_process_limit`).
    pub fn new(limit: usize) -> Dispatch {
        Dispatch {
            dests: HashMap::new(),
            runnable: VecDeque::new(),
            dying: Vec::new(),
            expiring: VecDeque::new(),
            #[cfg(test)]
            turns: 0,
            inflight: HashMap::new(),
            finishing: HashMap::new(),
            ready: Vec::new(),
            active: 0,
            limit,
            stopping: false,
        }
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.len() + self.finishing.len()
    }

    /// The messages in delivery (what [`Dispatch::is_inflight`] is true of).
    pub fn inflight_ids(&self) -> Vec<QueueId> {
        self.inflight
            .keys()
            .chain(self.finishing.keys())
            .copied()
            .collect()
    }

    pub fn is_inflight(&self, id: QueueId) -> bool {
        self.inflight.contains_key(&id) || self.finishing.contains_key(&id)
    }

    /// True while any delivery runs or any message is between split and stored outcome.
    pub fn busy(&self) -> bool {
        self.active > 0 || !self.inflight.is_empty() || !self.finishing.is_empty()
    }

    /// True once a clean stop began.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    /// If other items of message `id` are still out (waiting or delivering) besides the one
    /// just back, the message as it stands (its entry, with the states recorded early so
    /// far) and when it started: that item's outcomes are to be made durable before its
    /// slot is given back. `None` for the last item back, so a message with one destination
    /// is recorded once, as a whole.
    pub fn others_out(&self, id: QueueId) -> Option<(&MessageMeta, Instant)> {
        let f = self.inflight.get(&id).filter(|f| f.waiting > 1)?;
        Some((&f.message.entry.meta, f.message.started))
    }

    /// Clears the dead marks of the selected destinations (an explicit flush).
    pub fn forget_dead(&mut self, select: impl Fn(&Destination) -> bool) {
        for (key, dest) in self.dests.iter_mut() {
            if select(key) {
                dest.revive();
            }
        }
    }

    /// Destinations whose dead mark is still in force at `now`, with the failure that set it.
    pub fn dead_destinations(&self, now: Instant) -> Vec<(String, String)> {
        let dead = self
            .dests
            .iter()
            .filter_map(|(key, dest)| match &dest.dead {
                Some((until, why)) if *until > now => Some((key.name.clone(), why.clone())),
                _ => None,
            });
        dead.collect()
    }

    /// Takes a message with its items (none: it is ready to be applied at once). False, and
    /// nothing changes, if the message is already in delivery.
    pub fn push(&mut self, message: Message, items: Vec<Item>, limits: &Limits) -> bool {
        let id = message.entry.id;
        if self.is_inflight(id) {
            return false;
        }
        let waiting = items.len();
        let slots = 0;
        self.inflight.insert(
            id,
            InFlight {
                message,
                waiting,
                slots,
            },
        );
        for item in items {
            self.enqueue(item, limits);
        }
        if waiting == 0 {
            self.complete(id);
        }
        true
    }

    /// What may start now, round-robin over destinations (items of dead destinations are
    /// deferred instead), and the messages whose items are all back. While stopping, only
    /// the latter.
    pub fn starts(&mut self, now: Instant) -> Vec<Start> {
        let mut out = Vec::new();
        if !self.stopping {
            self.forget_expired(now);
            for key in mem::take(&mut self.dying) {
                if !self.defer_if_dead(&key, now) {
                    self.make_runnable(&key);
                }
            }
            while self.active < self.limit {
                let Some(key) = self.runnable.pop_front() else {
                    break;
                };
                if let Some(item) = self.turn(&key, now) {
                    out.push(Start::Deliver(item));
                }
            }
        }
        out.extend(self.ready.drain(..).map(Start::Apply));
        out
    }

    /// An item's delivery is back: its destination's window grows (a success), or the
    /// destination is marked dead (a failure of the destination as a whole; its window is
    /// set again when the mark is lifted, `Dest::revive`).
    pub fn finished(&mut self, item: &Item, delivery: Delivery, limits: &Limits, now: Instant) {
        let key = &item.destination;
        if let Some(dest) = self.dests.get_mut(key) {
            dest.active = dest.active.saturating_sub(1);
            let sent = delivery
                .outcomes
                .iter()
                .any(|t| t.outcome.kind == OutcomeKind::Sent);
            match &delivery.failure {
                Some(reason) => {
                    let until = now + limits.dead_time;
                    dest.dead = Some((until, reason.clone()));
                    self.expiring.push_back((until, key.clone()));
                    if !dest.items.is_empty() {
                        self.dying.push(key.clone());
                    }
                }
                None if sent => dest.window = (dest.window + 1).min(dest.limit),
                None => {}
            }
            if dest.idle() {
                self.dests.remove(key);
            } else {
                self.make_runnable(key);
            }
        }
        self.release_if_others_wait(item.id);
        match delivery.recorded {
            Some(states) => self.recorded_early(item.id, states),
            None => self.record(item.id, delivery.outcomes),
        }
    }

    /// An item is back while other items of its message are still out: its slot is free now.
    /// Holding it until the whole message is recorded deadlocked once a message had more
    /// items than `default_process_limit` (its finished items held every slot its waiting
    /// items needed). The last item's slot is held until `recorded`, so the messages handed
    /// out to be applied still number at most the limit.
    fn release_if_others_wait(&mut self, id: QueueId) {
        if let Some(f) = self.inflight.get_mut(&id) {
            if f.waiting > 1 && f.slots > 0 {
                f.slots -= 1;
                self.active = self.active.saturating_sub(1);
            }
        }
    }

    /// The message's outcomes are durable (or given up at a stop): its slots are free.
    pub fn recorded(&mut self, id: QueueId) {
        if let Some(slots) = self.finishing.remove(&id) {
            self.active = self.active.saturating_sub(slots);
        }
    }

    /// Clean stop: nothing new starts; items not started are dropped (their recipients stay
    /// open in the store); returns the messages to apply now (those with all items back).
    pub fn stop(&mut self) -> Vec<Message> {
        self.stopping = true;
        let dropped: Vec<QueueId> = self
            .dests
            .values_mut()
            .flat_map(|x| x.items.drain(..))
            .map(|i| i.id)
            .collect();
        for id in dropped {
            self.record(id, Vec::new());
        }
        self.ready.drain(..).collect()
    }

    /// Defers every waiting item of a destination that is marked dead; true if it was.
    fn defer_if_dead(&mut self, key: &Destination, now: Instant) -> bool {
        let Some(dest) = self.dests.get_mut(key) else {
            return false;
        };
        let reason = match &dest.dead {
            Some((until, reason)) if *until > now => reason.clone(),
            Some(_) => {
                dest.revive();
                return false;
            }
            None => return false,
        };
        let items: Vec<Item> = dest.items.drain(..).collect();
        let text = format!("delivery temporarily suspended: {reason}");
        for item in items {
            let deferred = |&i: &usize| Outcome::deferred(i, "4.4.1", "none", text.clone());
            let timed = item.recipients.iter().map(deferred);
            let timed = timed.map(|o| Timed::at(o, item.queued, now, Agent::Qmgr));
            self.record(item.id, timed.collect());
        }
        true
    }

    /// Queues an item in its destination's FIFO (a new destination starts with the initial
    /// window) and puts the destination where `starts` will see it.
    fn enqueue(&mut self, item: Item, limits: &Limits) {
        let key = item.destination.clone();
        let dest = self.dests.entry(key.clone()).or_insert_with(|| {
            let limit = limits.of(key.transport);
            Dest {
                items: VecDeque::new(),
                active: 0,
                limit,
                window: INITIAL_WINDOW.min(limit),
                dead: None,
                queued: false,
            }
        });
        dest.items.push_back(item);
        if dest.dead.is_some() {
            if dest.items.len() == 1 {
                self.dying.push(key);
            }
        } else {
            self.make_runnable(&key);
        }
    }

    /// Puts a destination in the ring if it has items, room in its window and is not there.
    fn make_runnable(&mut self, key: &Destination) {
        let Some(dest) = self.dests.get_mut(key) else {
            return;
        };
        if !dest.queued && !dest.items.is_empty() && dest.has_room() {
            dest.queued = true;
            self.runnable.push_back(key.clone());
        }
    }

    /// A destination's turn in the ring (the global limit has room): its next item, if its
    /// window allows one; it stays in the ring while it has items and room.
    fn turn(&mut self, key: &Destination, now: Instant) -> Option<Item> {
        #[cfg(test)]
        {
            self.turns += 1;
        }
        let dest = self.dests.get_mut(key)?;
        dest.queued = false;
        if dest.dead.is_some() && self.defer_if_dead(key, now) {
            return None;
        }
        let dest = self.dests.get_mut(key)?;
        if !dest.has_room() {
            return None;
        }
        let Some(item) = dest.items.pop_front() else {
            if dest.idle() {
                self.dests.remove(key);
            }
            return None;
        };
        dest.active += 1;
        self.active += 1;
        if let Some(f) = self.inflight.get_mut(&item.id) {
            f.slots += 1;
        }
        self.make_runnable(key);
        Some(item)
    }

    /// Clears dead marks that ran out and forgets their destinations if idle (a dead mark is
    /// kept until it expires, so new mail to the destination is deferred without a try).
    fn forget_expired(&mut self, now: Instant) {
        while let Some((until, _)) = self.expiring.front() {
            if *until > now {
                break;
            }
            let Some((_, key)) = self.expiring.pop_front() else {
                break;
            };
            let Some(dest) = self.dests.get_mut(&key) else {
                continue;
            };
            match &dest.dead {
                Some((until, _)) if *until > now => continue, // marked again since
                _ => dest.revive(),
            }
            if dest.idle() {
                self.dests.remove(&key);
            } else {
                self.make_runnable(&key);
            }
        }
    }

    /// Adds one item's outcomes; the message is ready once it was the last item out.
    fn record(&mut self, id: QueueId, outcomes: Vec<Timed>) {
        let Some(f) = self.inflight.get_mut(&id) else {
            return;
        };
        f.message.outcomes.extend(outcomes);
        f.waiting = f.waiting.saturating_sub(1);
        if f.waiting == 0 {
            self.complete(id);
        }
    }

    /// One item's outcomes are durable already: the message takes their states (its final
    /// plan sees those recipients final or deferred) and the item is back.
    fn recorded_early(&mut self, id: QueueId, states: Vec<(usize, RecipientState)>) {
        let Some(f) = self.inflight.get_mut(&id) else {
            return;
        };
        let recipients = &mut f.message.entry.meta.envelope.recipients;
        for (i, state) in states {
            if let Some(r) = recipients.get_mut(i) {
                r.state = state;
            }
        }
        f.message.recorded_early = true;
        self.record(id, Vec::new());
    }

    fn complete(&mut self, id: QueueId) {
        if let Some(f) = self.inflight.remove(&id) {
            self.finishing.insert(id, f.slots);
            self.ready.push(f.message);
        }
    }
}

#[cfg(test)]
mod tests;
