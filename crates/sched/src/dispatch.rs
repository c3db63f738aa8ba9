//! Per-destination queues: how the queue manager turns due messages into deliveries.
//!
//! A due message is split into work items, one per destination (`local:alice`, `smtp:example.com`,
//! `filter:[127.0.0.1]:10024`), each holding that destination's recipients. Items wait in
//! their destination's FIFO; the pump starts them round-robin across destinations, within
//! each destination's concurrency window and the global `default_process_limit`, so one slow
//! or dead destination cannot starve the others (seed 003's qshape picture).
//!
//! Concurrency window (Postfix's slow start): a destination starts at 5 concurrent
//! deliveries (or its limit if lower), grows by one per success up to its limit, and drops to
//! one when it fails. A destination that fails as a whole (nothing answers) is marked dead for
//! `minimal_backoff_time` (at most a minute): its waiting items, and new ones, are deferred at
//! once without a connection — 1,000 queued messages to a dead host cost a handful of
//! connection attempts, not 1,000.
//!
//! When all items of a message are done, its outcomes are applied together (`apply.rs`).

use crate::deliver::Timed;
use crate::manager::{lock, QueueManager};
use crate::route::Route;
use envelope::{Outcome, QueueId};
use queue::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

const INITIAL_WINDOW: usize = 5;

/// One destination's share of one message.
pub(crate) struct Item {
    pub id: QueueId,
    pub key: String,
    pub route: Route,
    pub recipients: Vec<usize>,
    pub queued: Instant,
}

struct Dest {
    items: VecDeque<Item>,
    active: usize,
    limit: usize,
    window: usize,
    dead: Option<(Instant, String)>,
}

/// A message in delivery: its entry, the items still out, the outcomes so far.
pub(crate) struct InFlight {
    pub entry: Entry,
    pub waiting: usize,
    pub outcomes: Vec<Timed>,
    pub started: Instant,
    pub hold: Option<String>,
    /// Delivery slots its items took. They are given back only once the outcomes are
    /// durable (after `apply`), so at most `default_process_limit` messages are ever
    /// delivered-but-not-yet-recorded: the only ones a crash can deliver twice.
    pub slots: usize,
}

pub(crate) struct Dispatch {
    dests: HashMap<String, Dest>,
    order: VecDeque<String>,
    inflight: HashMap<QueueId, InFlight>,
    /// Messages whose outcomes are being applied (between the last item and the store).
    finishing: std::collections::HashSet<QueueId>,
    active: usize,
    limit: usize,
    stopping: bool,
}

impl Dispatch {
    pub fn new(limit: usize) -> Dispatch {
        Dispatch {
            dests: HashMap::new(),
            order: VecDeque::new(),
            inflight: HashMap::new(),
            finishing: std::collections::HashSet::new(),
            active: 0,
            limit,
            stopping: false,
        }
    }

    pub fn inflight_count(&self) -> usize {
        self.inflight.len() + self.finishing.len()
    }

    pub fn is_inflight(&self, id: QueueId) -> bool {
        self.inflight.contains_key(&id) || self.finishing.contains(&id)
    }

    /// True while any delivery runs or any message is between split and stored outcome.
    pub fn busy(&self) -> bool {
        self.active > 0 || !self.inflight.is_empty() || !self.finishing.is_empty()
    }

    /// True once a clean stop began.
    pub fn stopping(&self) -> bool {
        self.stopping
    }

    pub fn forget_dead(&mut self, select: impl Fn(&str) -> bool) {
        for (key, dest) in self.dests.iter_mut() {
            if select(key) {
                dest.dead = None;
            }
        }
    }
}

impl QueueManager {
    /// Splits a due message into items and queues them at their destinations.
    pub(crate) fn start(self: &Arc<Self>, entry: Entry) {
        let id = entry.id;
        if entry.meta.attempts == 0 {
            let env = &entry.meta.envelope;
            tracing::info!(target: "qmgr", "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
                env.sender, entry.size, env.recipients.len());
        }
        let cfg = self.shared.config();
        let router = self.shared.router();
        let now = Instant::now();
        let mut items: HashMap<String, Item> = HashMap::new();
        let mut immediate = Vec::new();
        let mut hold = None;
        for (i, r) in entry.meta.envelope.recipients.iter().enumerate() {
            if !r.state.is_open() {
                continue;
            }
            let route = router.route(&r.address, &entry.meta.envelope.origin);
            match &route {
                Route::Discard(text) => immediate.push((
                    "discard",
                    Outcome::sent(i, "none", format!("discarded: {text}")),
                )),
                Route::Error { dsn, text } => {
                    immediate.push(("error", Outcome::bounced(i, dsn, "none", text.clone())))
                }
                Route::Retry { dsn, text } => {
                    immediate.push(("retry", Outcome::deferred(i, dsn, "none", text.clone())))
                }
                Route::Hold(text) => hold = Some(text.clone()),
                Route::Local | Route::Smtp { .. } => {
                    // Each local user is a destination of its own (as in Postfix), so one
                    // locked or slow mailbox holds up only its own mail.
                    let key = match route {
                        Route::Local => format!(
                            "local:{}",
                            envelope::split_address(&r.address).0.to_ascii_lowercase()
                        ),
                        _ => route.destination_key().unwrap_or_default(),
                    };
                    items
                        .entry(key.clone())
                        .or_insert_with(|| Item {
                            id,
                            key,
                            route: route.clone(),
                            recipients: Vec::new(),
                            queued: now,
                        })
                        .recipients
                        .push(i);
                }
            }
        }
        let limit_of = |key: &str| {
            if key.starts_with("filter:") {
                cfg.filter_destination_concurrency_limit
            } else if key.starts_with("smtp:") {
                cfg.smtp_destination_concurrency_limit
            } else if key.starts_with("local:") {
                cfg.local_destination_concurrency_limit
            } else {
                cfg.default_destination_concurrency_limit
            }
        };
        let outcomes = immediate
            .into_iter()
            .map(|(program, o)| Timed::now(o, now, program))
            .collect();
        let mut d = lock(&self.dispatch);
        if d.inflight.contains_key(&id) {
            return;
        }
        let waiting = items.len();
        d.inflight.insert(
            id,
            InFlight {
                entry,
                waiting,
                outcomes,
                started: now,
                hold,
                slots: 0,
            },
        );
        for (key, item) in items {
            if !d.dests.contains_key(&key) {
                let limit = limit_of(&key).max(1);
                let dest = Dest {
                    items: VecDeque::new(),
                    active: 0,
                    limit,
                    window: INITIAL_WINDOW.min(limit),
                    dead: None,
                };
                d.dests.insert(key.clone(), dest);
                d.order.push_back(key.clone());
            }
            d.dests
                .get_mut(&key)
                .expect("inserted above")
                .items
                .push_back(item);
        }
        if waiting == 0 {
            let done = d.inflight.remove(&id);
            drop(d);
            self.complete(done);
        }
    }

    /// Starts what may start, round-robin over destinations; defers items of dead ones.
    pub(crate) fn pump(self: &Arc<Self>) {
        let mut to_run = Vec::new();
        let mut finished = Vec::new();
        {
            let mut d = lock(&self.dispatch);
            if d.stopping {
                return;
            }
            let now = Instant::now();
            let mut progressed = true;
            while progressed {
                progressed = false;
                for _ in 0..d.order.len() {
                    let Some(key) = d.order.pop_front() else {
                        break;
                    };
                    d.order.push_back(key.clone());
                    let global_free = d.active < d.limit;
                    let dest = d.dests.get_mut(&key).expect("order and dests agree");
                    if let Some((until, reason)) = dest.dead.clone() {
                        if until > now {
                            let drained: Vec<Item> = dest.items.drain(..).collect();
                            for item in drained {
                                let text = format!("delivery temporarily suspended: {reason}");
                                let outs = item
                                    .recipients
                                    .iter()
                                    .map(|&i| Outcome::deferred(i, "4.4.1", "none", text.clone()));
                                let timed =
                                    outs.map(|o| Timed::now(o, item.queued, "qmgr")).collect();
                                if let Some(done) = record(&mut d, item.id, timed) {
                                    finished.push(done);
                                }
                            }
                            continue;
                        }
                        dest.dead = None;
                    }
                    if global_free && dest.active < dest.window.min(dest.limit) {
                        if let Some(item) = dest.items.pop_front() {
                            dest.active += 1;
                            d.active += 1;
                            to_run.push(item);
                            progressed = true;
                        }
                    }
                }
            }
            for item in &to_run {
                if let Some(f) = d.inflight.get_mut(&item.id) {
                    f.slots += 1;
                }
            }
            // Forget idle destinations (a dead mark is kept until it expires).
            let Dispatch { order, dests, .. } = &mut *d;
            dests.retain(|_, x| {
                !x.items.is_empty()
                    || x.active > 0
                    || x.dead.as_ref().is_some_and(|(t, _)| *t > now)
            });
            order.retain(|k| dests.contains_key(k));
        }
        for done in finished {
            self.complete(Some(done));
        }
        for item in to_run {
            let me = self.clone();
            tokio::spawn(async move { me.run_item(item).await });
        }
    }

    /// Called by a finished delivery: frees its slot, adjusts the destination, records the
    /// outcomes, and applies the message once all its items are back.
    pub(crate) fn item_done(
        self: &Arc<Self>,
        item: &Item,
        outcomes: Vec<Timed>,
        failure: Option<String>,
    ) {
        let done = {
            let mut d = lock(&self.dispatch);
            let dead_for = self.dead_time();
            if let Some(dest) = d.dests.get_mut(&item.key) {
                dest.active = dest.active.saturating_sub(1);
                match &failure {
                    Some(reason) => {
                        dest.window = 1;
                        dest.dead = Some((Instant::now() + dead_for, reason.clone()));
                    }
                    None if outcomes
                        .iter()
                        .any(|t| t.outcome.kind == envelope::OutcomeKind::Sent) =>
                    {
                        dest.window = (dest.window + 1).min(dest.limit);
                    }
                    None => {}
                }
            }
            record(&mut d, item.id, outcomes)
        };
        self.complete(done);
        self.wake.notify_one();
    }

    fn dead_time(&self) -> Duration {
        self.shared
            .config()
            .minimal_backoff_time
            .clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    /// Clean stop: nothing new starts; items not started are dropped (their recipients stay
    /// open in the store) and messages with some outcomes get those applied.
    pub(crate) fn stop_dispatch(self: &Arc<Self>) {
        let finished: Vec<InFlight> = {
            let mut d = lock(&self.dispatch);
            d.stopping = true;
            let dropped: Vec<QueueId> = d
                .dests
                .values_mut()
                .flat_map(|x| x.items.drain(..))
                .map(|i| i.id)
                .collect();
            dropped
                .into_iter()
                .filter_map(|id| record(&mut d, id, Vec::new()))
                .collect()
        };
        for done in finished {
            self.complete(Some(done));
        }
    }

    fn complete(self: &Arc<Self>, done: Option<InFlight>) {
        if let Some(done) = done {
            let (id, slots) = (done.entry.id, done.slots);
            lock(&self.dispatch).finishing.insert(id);
            let me = self.clone();
            tokio::spawn(async move {
                me.apply(done).await;
                let mut d = lock(&me.dispatch);
                d.finishing.remove(&id);
                d.active = d.active.saturating_sub(slots);
                drop(d);
                me.wake.notify_one();
            });
        }
    }
}

/// Adds one item's outcomes; returns the message when it was the last item out.
fn record(d: &mut Dispatch, id: QueueId, outcomes: Vec<Timed>) -> Option<InFlight> {
    let f = d.inflight.get_mut(&id)?;
    f.outcomes.extend(outcomes);
    f.waiting = f.waiting.saturating_sub(1);
    if f.waiting == 0 {
        d.inflight.remove(&id)
    } else {
        None
    }
}
