//! Running totals of the queue — depth, bytes, ages and sizes per queue; deferred mail per
//! destination and per reason — kept by the index as each durable change is applied, so that
//! `/metrics` and doctor's history cost O(what changed) per read instead of a walk over a
//! million messages. Built once from the index after the start-up scan; a read-only
//! [`Snapshot`](crate::Snapshot) keeps none.
//!
//! Ages move with the clock, not with changes: each age bucket keeps an edge (`now - bound`
//! at the last read) and how many messages arrived at or after it. A read moves the edges
//! to the new `now` and takes out the arrivals they passed, found in a map of arrival second
//! → messages; each arrival second passes each edge once, so reads stay O(changes).
//!
//! `active` is not stored (it is the scheduler's set of messages in delivery): a read is
//! given the active IDs and moves their part from their stored queue to `active`, at
//! O(active) cost (the active set is bounded by the scheduler's limits, not by the queue).
//!
//! What counts is what `mailq`, `doctor` and the old whole-store walk counted: a deferred
//! message counts once per distinct (lower-cased) domain of its open recipients
//! ([`View::deferred_destinations`]), once per open recipient for doctor's top domain, and
//! once per run of equal non-empty reasons for doctor's top reason.

use crate::compact::{Interner, Slot};
use crate::QueueName;
use envelope::QueueId;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Upper bounds (seconds) of the age histogram's buckets.
pub const AGE_BOUNDS: [u64; 9] = [
    60,
    300,
    900,
    3600,
    4 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    5 * 86400,
];
/// Upper bounds (bytes) of the size histogram's buckets.
pub const SIZE_BOUNDS: [u64; 6] = [1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

/// One queue's totals at the moment of a read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub messages: u64,
    pub bytes: u64,
    /// Messages at most `AGE_BOUNDS[i]` seconds old (cumulative, like Prometheus's `le`).
    pub age_within: [u64; AGE_BOUNDS.len()],
    /// Sum of the ages in seconds (a message from the future is 0 s old).
    pub age_sum: u64,
    /// Messages of at most `SIZE_BOUNDS[i]` bytes (cumulative).
    pub size_within: [u64; SIZE_BOUNDS.len()],
    pub oldest_arrival: Option<u64>,
}

impl Totals {
    /// Adds (or takes out) one message.
    fn count(&mut self, arrival: u64, size: u64, now: u64, add: bool) {
        let age = now.saturating_sub(arrival);
        let step = |n: &mut u64| *n = if add { *n + 1 } else { n.saturating_sub(1) };
        step(&mut self.messages);
        let signed = |n: &mut u64, by: u64| *n = if add { *n + by } else { n.saturating_sub(by) };
        signed(&mut self.bytes, size);
        signed(&mut self.age_sum, age);
        for (i, bound) in AGE_BOUNDS.iter().enumerate() {
            if age <= *bound {
                step(&mut self.age_within[i]);
            }
        }
        for (i, bound) in SIZE_BOUNDS.iter().enumerate() {
            if size <= *bound {
                step(&mut self.size_within[i]);
            }
        }
    }
}

/// A read of the totals: each queue as `mailq` names it, and deferred mail's destinations
/// and reasons, largest first (ties by name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    pub incoming: Totals,
    pub active: Totals,
    pub deferred: Totals,
    pub hold: Totals,
    /// Deferred messages per recipient domain (a message once per domain), the largest.
    pub deferred_destinations: Vec<(String, u64)>,
    /// The sum of the destinations left out of `deferred_destinations`.
    pub deferred_destinations_rest: u64,
    /// Open recipients of deferred mail per domain, the largest.
    pub deferred_recipient_domains: Vec<(String, u64)>,
    /// Deferral reasons of deferred mail, the most common.
    pub deferred_reasons: Vec<(String, u64)>,
}

/// One stored queue's running totals.
#[derive(Debug, Default)]
struct Queue {
    messages: u64,
    bytes: u64,
    arrival_sum: u128,
    /// Messages per size bucket (not cumulative; the last is above every bound).
    sizes: [u64; SIZE_BOUNDS.len() + 1],
    /// Messages per arrival second.
    arrivals: BTreeMap<u64, u64>,
    /// `now - AGE_BOUNDS[i]` at the last read, and the messages that arrived at or after it.
    edges: [u64; AGE_BOUNDS.len()],
    within: [u64; AGE_BOUNDS.len()],
}

impl Queue {
    fn at(now: u64) -> Queue {
        let mut q = Queue::default();
        for (edge, bound) in q.edges.iter_mut().zip(AGE_BOUNDS) {
            *edge = now.saturating_sub(bound);
        }
        q
    }

    fn count(&mut self, arrival: u64, size: u64, add: bool) {
        let bucket = SIZE_BOUNDS
            .iter()
            .position(|b| size <= *b)
            .unwrap_or(SIZE_BOUNDS.len());
        if add {
            self.messages += 1;
            self.bytes += size;
            self.arrival_sum += u128::from(arrival);
            self.sizes[bucket] += 1;
            *self.arrivals.entry(arrival).or_insert(0) += 1;
        } else {
            self.messages = self.messages.saturating_sub(1);
            self.bytes = self.bytes.saturating_sub(size);
            self.arrival_sum = self.arrival_sum.saturating_sub(u128::from(arrival));
            self.sizes[bucket] = self.sizes[bucket].saturating_sub(1);
            if let Some(n) = self.arrivals.get_mut(&arrival) {
                *n -= 1;
                if *n == 0 {
                    self.arrivals.remove(&arrival);
                }
            }
        }
        for (edge, within) in self.edges.iter().zip(self.within.iter_mut()) {
            if arrival >= *edge {
                *within = if add {
                    *within + 1
                } else {
                    within.saturating_sub(1)
                };
            }
        }
    }

    /// Moves the age edges to `now` (either way: the clock may be stepped back).
    fn advance(&mut self, now: u64) {
        let arrivals = &self.arrivals;
        for ((edge, within), bound) in self.edges.iter_mut().zip(&mut self.within).zip(AGE_BOUNDS) {
            let new = now.saturating_sub(bound);
            if new > *edge {
                let passed: u64 = arrivals.range(*edge..new).map(|(_, n)| n).sum();
                *within = within.saturating_sub(passed);
            } else if new < *edge {
                *within += arrivals.range(new..*edge).map(|(_, n)| n).sum::<u64>();
            }
            *edge = new;
        }
    }

    /// The totals at `now` (after [`Queue::advance`] to `now`).
    fn totals(&self, now: u64) -> Totals {
        // Ages are `now - arrival`, and 0 for the (normally no) arrivals after `now`.
        let future: Vec<(u64, u64)> = self
            .arrivals
            .range(now.saturating_add(1)..)
            .map(|(&a, &n)| (a, n))
            .collect();
        let ahead: u128 = future
            .iter()
            .map(|&(a, n)| u128::from(a - now) * u128::from(n))
            .sum();
        let age_sum = u128::from(now) * u128::from(self.messages) + ahead;
        let age_sum = age_sum.saturating_sub(self.arrival_sum);
        let mut size_within = [0; SIZE_BOUNDS.len()];
        let mut running = 0;
        for (i, n) in self.sizes.iter().take(SIZE_BOUNDS.len()).enumerate() {
            running += n;
            size_within[i] = running;
        }
        Totals {
            messages: self.messages,
            bytes: self.bytes,
            age_within: self.within,
            age_sum: u64::try_from(age_sum).unwrap_or(u64::MAX),
            size_within,
            oldest_arrival: self.arrivals.keys().next().copied(),
        }
    }

    /// The oldest arrival once the `moved` arrivals (second → messages) are taken out.
    fn oldest_without(&self, moved: &HashMap<u64, u64>) -> Option<u64> {
        self.arrivals
            .iter()
            .find(|(a, n)| **n > moved.get(a).copied().unwrap_or(0))
            .map(|(a, _)| *a)
    }
}

/// Counts by key, kept in order of count (largest first, ties by key).
#[derive(Debug, Default)]
struct Ranked {
    counts: HashMap<Arc<str>, u64>,
    order: BTreeSet<(Reverse<u64>, Arc<str>)>,
    total: u64,
}

impl Ranked {
    fn count(&mut self, key: &str, add: bool) {
        let (key, old) = match self.counts.get_key_value(key) {
            Some((k, &n)) => (k.clone(), n),
            None if add => (Arc::from(key), 0),
            None => return,
        };
        let new = if add { old + 1 } else { old.saturating_sub(1) };
        self.total = if add {
            self.total + 1
        } else {
            self.total.saturating_sub(1)
        };
        if old > 0 {
            self.order.remove(&(Reverse(old), key.clone()));
        }
        if new == 0 {
            self.counts.remove(&key);
        } else {
            self.order.insert((Reverse(new), key.clone()));
            self.counts.insert(key, new);
        }
    }

    /// The `top` largest once `minus` (counts of the active messages) is taken out. Walks
    /// the order until `top` keys untouched by `minus` were seen: every later key counts
    /// at most as much as those, so at most `top + minus.len()` keys are visited.
    fn top(&self, minus: &HashMap<String, u64>, top: usize) -> Vec<(String, u64)> {
        let mut found: Vec<(String, u64)> = Vec::new();
        let mut untouched = 0;
        for (Reverse(n), key) in &self.order {
            if untouched >= top {
                break;
            }
            let less = minus.get(key.as_ref()).copied().unwrap_or(0);
            if less == 0 {
                untouched += 1;
            }
            if *n > less {
                found.push((key.to_string(), n - less));
            }
        }
        found.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        found.truncate(top);
        found
    }
}

/// What a deferred message counts for in the rankings.
enum Part<'a> {
    Destination(&'a str),
    RecipientDomain(&'a str),
    Reason(&'a str),
}

/// Calls `f` with each part a deferred message counts for (see the module's last paragraph).
fn parts(slot: &Slot, strings: &Interner, mut f: impl FnMut(Part<'_>)) {
    let mut seen: Vec<String> = Vec::new();
    let mut last_reason = String::new();
    slot.for_each_open(strings, |address, reason| {
        let domain = match address.rfind('@') {
            Some(at) => &address[at + 1..],
            None => "",
        };
        let domain: Cow<str> = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(domain.to_ascii_lowercase())
        } else {
            Cow::Borrowed(domain)
        };
        f(Part::RecipientDomain(&domain));
        if !seen.iter().any(|d| *d == *domain) {
            f(Part::Destination(&domain));
            seen.push(domain.into_owned());
        }
        if reason != last_reason && !reason.is_empty() {
            f(Part::Reason(reason));
            last_reason = reason.to_string();
        }
    });
}

/// The running totals of one index.
#[derive(Debug)]
pub struct Tally {
    /// Incoming, deferred, hold.
    queues: [Queue; 3],
    destinations: Ranked,
    recipient_domains: Ranked,
    reasons: Ranked,
}

fn queue_index(queue: QueueName) -> usize {
    match queue {
        QueueName::Incoming => 0,
        QueueName::Deferred => 1,
        QueueName::Hold => 2,
    }
}

impl Tally {
    /// Empty totals whose age edges start at `now`.
    pub fn at(now: u64) -> Tally {
        Tally {
            queues: [Queue::at(now), Queue::at(now), Queue::at(now)],
            destinations: Ranked::default(),
            recipient_domains: Ranked::default(),
            reasons: Ranked::default(),
        }
    }

    /// Adds a message (`add`) or takes it out, as its slot is now.
    pub fn count(&mut self, slot: &Slot, strings: &Interner, add: bool) {
        self.queues[queue_index(slot.queue)].count(slot.arrival_time(), slot.size, add);
        if slot.queue != QueueName::Deferred {
            return;
        }
        parts(slot, strings, |part| match part {
            Part::Destination(d) => self.destinations.count(d, add),
            Part::RecipientDomain(d) => self.recipient_domains.count(d, add),
            Part::Reason(r) => self.reasons.count(r, add),
        });
    }

    /// The totals at `now`, with the messages of `active` (looked up by `slot`) counted as
    /// active; each ranking keeps its `top` largest.
    pub fn view<'a>(
        &mut self,
        now: u64,
        active: &[QueueId],
        slot: impl Fn(QueueId) -> Option<&'a Slot>,
        strings: &Interner,
        top: usize,
    ) -> View {
        for q in &mut self.queues {
            q.advance(now);
        }
        let mut stored: [Totals; 3] = std::array::from_fn(|q| self.queues[q].totals(now));
        let mut moved: [HashMap<u64, u64>; 3] = Default::default();
        let mut view = View::default();
        let mut minus: [HashMap<String, u64>; 3] = Default::default();
        for s in active.iter().filter_map(|&id| slot(id)) {
            if s.queue == QueueName::Hold {
                continue; // a held message is shown held, even while its delivery ends
            }
            let (q, arrival) = (queue_index(s.queue), s.arrival_time());
            stored[q].count(arrival, s.size, now, false);
            view.active.count(arrival, s.size, now, true);
            let oldest = view
                .active
                .oldest_arrival
                .map_or(arrival, |o| o.min(arrival));
            view.active.oldest_arrival = Some(oldest);
            *moved[q].entry(arrival).or_insert(0) += 1;
            if s.queue == QueueName::Deferred {
                parts(s, strings, |part| {
                    let (i, key) = match part {
                        Part::Destination(d) => (0, d),
                        Part::RecipientDomain(d) => (1, d),
                        Part::Reason(r) => (2, r),
                    };
                    *minus[i].entry(key.to_string()).or_insert(0) += 1;
                });
            }
        }
        for (q, totals) in stored.iter_mut().enumerate() {
            if !moved[q].is_empty() {
                totals.oldest_arrival = self.queues[q].oldest_without(&moved[q]);
            }
        }
        let [incoming, deferred, hold] = stored;
        (view.incoming, view.deferred, view.hold) = (incoming, deferred, hold);
        view.deferred_destinations = self.destinations.top(&minus[0], top);
        let shown: u64 = view.deferred_destinations.iter().map(|(_, n)| n).sum();
        let all = (self.destinations.total).saturating_sub(minus[0].values().sum());
        view.deferred_destinations_rest = all.saturating_sub(shown);
        view.deferred_recipient_domains = self.recipient_domains.top(&minus[1], top);
        view.deferred_reasons = self.reasons.top(&minus[2], top);
        view
    }
}

#[cfg(test)]
mod tests;
