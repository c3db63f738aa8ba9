//! The queue manager: the loop that feeds due messages to `dispatch`, carries out what it
//! says (deliveries via `deliver`, outcomes via `carry`), and the operator's levers (flush,
//! per-site and per-message flush, suspend and resume a destination).

use crate::carry;
use crate::clock::unix_now;
use crate::context::Context;
use crate::deliver;
use crate::dispatch::{Dispatch, Item, Message, Start};
use crate::due::{room, Due, Lane};
use crate::plan;
use crate::shared::Shared;
use crate::split::split;
use crate::suspend::{hold_back, levers};
use crate::sync::lock;
use envelope::{split_address, QueueId};
use queue::{Entry, QueueName, SuspendError, Suspension};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The queue manager. Create with [`QueueManager::new`], then `run` it on a tokio runtime.
pub struct QueueManager {
    cx: Context,
}

impl QueueManager {
    /// Builds the due-time index from the store: incoming mail is due now, deferred mail at
    /// its retry time, held mail not at all.
    pub fn new(shared: Arc<Shared>) -> Arc<QueueManager> {
        let limit = shared.settings().process_limit.max(1);
        let mut due = Vec::new();
        shared.store.for_each(|e| match e.meta.queue {
            QueueName::Incoming => due.push((e.meta.next_attempt, e.id, Lane::Incoming)),
            QueueName::Deferred => due.push((e.meta.next_attempt, e.id, Lane::Deferred)),
            QueueName::Hold => {}
        });
        let manager = Arc::new(QueueManager {
            cx: Context {
                shared,
                due: Due::new(due),
                dispatch: Mutex::new(Dispatch::new(limit)),
                suspended: Mutex::default(),
                suspend_writes: Mutex::default(),
                delivered: AtomicU64::new(0),
                bounced: AtomicU64::new(0),
            },
        });
        levers::reload(&manager.cx);
        manager
    }

    /// Suspends deliveries to `destination` (a domain or a next hop, see
    /// `queue::suspend::normalize`) for `seconds`, or until resumed: written to the file
    /// first, then in force at once.
    pub fn suspend(
        &self,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<Suspension, SuspendError> {
        let destination = queue::suspend::normalize(destination).map_err(SuspendError::Invalid)?;
        let s = levers::suspend(&self.cx, &destination, seconds, reason)
            .map_err(SuspendError::Failed)?;
        self.cx.due.wake();
        Ok(s)
    }

    /// Ends a suspension; the mail it held back is due at once. False if none was in force.
    pub fn resume(&self, destination: &str) -> Result<bool, SuspendError> {
        let destination = queue::suspend::normalize(destination).map_err(SuspendError::Invalid)?;
        levers::resume(&self.cx, &destination).map_err(SuspendError::Failed)
    }

    /// The suspensions in force.
    pub fn suspensions(&self) -> Vec<Suspension> {
        levers::list(&self.cx)
    }

    /// Puts the fleet's table of suspensions in force (written to the file first, so a
    /// restart without the fleet keeps the last one); mail no longer suspended is due.
    pub fn adopt_suspensions(&self, list: Vec<Suspension>) {
        levers::adopt(&self.cx, list);
        self.cx.due.wake();
    }

    /// Re-reads the suspension file (SIGHUP; a CLI changed it while no daemon answered).
    pub fn reload_suspensions(&self) {
        levers::reload(&self.cx);
    }

    /// Why recipient `i` of `entry` waits, when a suspension holds it back.
    pub fn suspension_reason(&self, entry: &Entry, i: usize) -> Option<String> {
        levers::reason(&self.cx, entry, i)
    }

    /// Makes a message due at `when` (Unix seconds; 0 = now) and wakes the loop. Mail never
    /// tried takes the incoming lane, mail tried before the deferred one (`due.rs`).
    pub fn schedule(&self, id: QueueId, when: u64) {
        let lane = match self.cx.shared.store.attempts(id) {
            Some(n) if n > 0 => Lane::Deferred,
            _ => Lane::Incoming,
        };
        self.cx.due.schedule(id, when, lane);
    }

    /// `postqueue -f` / `sendmail -q`: every deferred message is due now and every
    /// destination marked dead gets another chance. Returns how many messages.
    pub fn flush(&self) -> usize {
        self.forget_dead();
        self.force(|_| true)
    }

    /// `postqueue -s site`: deferred mail with a recipient in `domain` is due now.
    pub fn flush_site(&self, domain: &str) -> usize {
        let domain = domain.to_ascii_lowercase();
        // The mail may route through a relayhost or transport whose key does not name the
        // domain; an explicit flush means "try now", so every dead mark goes.
        self.forget_dead();
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
        self.forget_dead();
        self.force(|e| e.id == id) > 0
    }

    /// Every dead mark goes: this node's, and the fleet's.
    fn forget_dead(&self) {
        lock(&self.cx.dispatch).forget_dead(|_| true);
        if let Some(fleet) = self.cx.shared.fleet() {
            fleet.forget_dead();
        }
    }

    fn force(&self, select: impl Fn(&Entry) -> bool) -> usize {
        let mut ids = Vec::new();
        self.cx.shared.store.for_each(|e| {
            if e.meta.queue == QueueName::Deferred && select(e) {
                ids.push(e.id);
            }
        });
        self.cx.due.force(&ids);
        ids.len()
    }

    /// Recipients delivered and bounced (expired ones included) since the daemon started.
    pub fn outcome_totals(&self) -> (u64, u64) {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        (load(&self.cx.delivered), load(&self.cx.bounced))
    }

    /// Number of messages in delivery right now (Postfix's active queue).
    pub fn active_count(&self) -> usize {
        lock(&self.cx.dispatch).inflight_count()
    }

    /// Destinations marked dead (nothing answered; their mail is deferred without a
    /// connection until the mark expires), with the reason; for `/metrics` and the API.
    pub fn dead_destinations(&self) -> Vec<(String, String)> {
        lock(&self.cx.dispatch).dead_destinations(Instant::now())
    }

    /// The messages being delivered right now (mailq's active queue), for the running
    /// totals' `active` (`queue::Store::view`).
    pub fn active_ids(&self) -> Vec<QueueId> {
        lock(&self.cx.dispatch).inflight_ids()
    }

    /// True if the message is being delivered right now (`*` in mailq).
    pub fn is_active(&self, id: QueueId) -> bool {
        lock(&self.cx.dispatch).is_inflight(id)
    }

    /// Dispatches due messages until `shutdown` turns true, then waits (up to `grace`) for
    /// the deliveries in flight: nothing is left half-delivered by a clean stop.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>, grace: Duration) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            levers::end_expired(&self.cx, unix_now());
            let full = self.admit();
            self.pump();
            // Full: the next wake-up is a message leaving the active queue (`apply`).
            let sleep_for = if full {
                Duration::from_secs(1)
            } else {
                self.cx.due.time_to_next(unix_now())
            };
            tokio::select! {
                _ = self.cx.due.woken() => {}
                _ = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.stop();
        let deadline = tokio::time::Instant::now() + grace;
        while lock(&self.cx.dispatch).busy() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes due messages into the active queue while it has room
    /// (`qmgr_message_active_limit`); the rest wait in the index, their messages in the
    /// store. True if the active queue is full.
    fn admit(&self) -> bool {
        let limit = self.cx.shared.settings().active_limit;
        loop {
            if room(self.active_count(), limit) == 0 {
                self.cx.due.full();
                return true;
            }
            let Some(entry) = self.pop_due() else {
                return false;
            };
            self.start(entry);
        }
    }

    /// The next due message that is still queued, not held and not already in delivery,
    /// with its index entry (read once here, used by `start`).
    fn pop_due(&self) -> Option<Entry> {
        let now = unix_now();
        while let Some((id, forced)) = self.cx.due.pop(now) {
            let Some(entry) = self.cx.shared.store.get(id) else {
                continue;
            };
            if entry.meta.queue == QueueName::Hold || (entry.meta.next_attempt > now && !forced) {
                continue; // stale index entry: held, or rescheduled later
            }
            if self.is_active(id) {
                continue; // its outcome reschedules it
            }
            return Some(entry);
        }
        None
    }

    /// Splits a due message by route, takes out what a suspension holds back, and hands
    /// the rest to dispatch; a message left with nothing to do is parked (`suspend.rs`).
    fn start(&self, entry: Entry) {
        let now = Instant::now();
        let local = self.cx.shared.local();
        let is_alias = |address: &str| local.is_alias(address);
        let mut work = split(&entry, &self.cx.shared.router(), &is_alias, now);
        let held = {
            let mut suspended = lock(&self.cx.suspended);
            let held = hold_back(&mut work.items, &entry, &suspended.table, unix_now());
            if !held.recipients.is_empty() {
                suspended.parked.insert(entry.id);
            }
            held
        };
        if let Some(reason) = &held.reason {
            let n = held.recipients.len();
            tracing::info!(target: "qmgr", "{}: held in the queue: {reason} ({n} recipients)", entry.id);
        }
        let idle = work.items.is_empty() && work.outcomes.is_empty() && work.hold.is_none();
        if !held.recipients.is_empty() && idle {
            return;
        }
        if entry.meta.attempts == 0 {
            let env = &entry.meta.envelope;
            tracing::info!(target: "qmgr", "{}: from=<{}>, size={}, nrcpt={} (queue active)",
                entry.id, env.sender, entry.size, env.recipients.len());
        }
        let message = Message {
            entry,
            outcomes: work.outcomes,
            started: now,
            hold: work.hold,
            held_back: held.recipients,
            recorded_early: false,
        };
        let limits = &self.cx.shared.settings().limits;
        lock(&self.cx.dispatch).push(message, work.items, limits);
    }

    /// Carries out what dispatch says may start now.
    fn pump(self: &Arc<Self>) {
        let starts = lock(&self.cx.dispatch).starts(Instant::now());
        for start in starts {
            let me = self.clone();
            match start {
                Start::Deliver(item) => tokio::spawn(async move { me.deliver(item).await }),
                Start::Apply(message) => tokio::spawn(async move { me.apply(message).await }),
            };
        }
    }

    async fn deliver(self: Arc<Self>, item: Item) {
        let mut delivery = deliver::run(&self.cx, &item).await;
        if let (Some(fleet), Some(reason)) = (self.cx.shared.fleet(), &delivery.failure) {
            let time = self.cx.shared.settings().limits.dead_time;
            fleet.mark_dead(&item.destination.name, reason, time);
        }
        // Other items of the message still out: these outcomes become durable now, while
        // the item holds its slot, so a crash before the last item is back does not deliver
        // them again (the last item's are recorded with the message, by `apply`).
        let settings = self.cx.shared.settings();
        let early = {
            let dispatch = lock(&self.cx.dispatch);
            let early = |(meta, started)| {
                let outcomes = delivery.outcomes.clone();
                (plan::early(meta, outcomes, &settings), started)
            };
            dispatch.others_out(item.id).map(early)
        };
        if let Some((early, started)) = early {
            delivery.recorded = carry::record_early(&self.cx, item.id, early, started).await;
        }
        lock(&self.cx.dispatch).finished(&item, delivery, &settings.limits, Instant::now());
        self.pump();
        self.cx.due.wake();
    }

    /// Applies a message's outcomes; its slots are given back once they are durable.
    async fn apply(self: Arc<Self>, message: Message) {
        let id = message.entry.id;
        carry::apply(&self.cx, message).await;
        lock(&self.cx.dispatch).recorded(id);
        self.cx.due.wake();
    }

    /// Clean stop: nothing new starts; messages with some outcomes get those applied.
    fn stop(self: &Arc<Self>) {
        let finished = lock(&self.cx.dispatch).stop();
        for message in finished {
            let me = self.clone();
            tokio::spawn(async move { me.apply(message).await });
        }
    }
}
