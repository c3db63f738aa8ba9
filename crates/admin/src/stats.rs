//! Queue statistics for `doctor`: messages and bytes per queue, the oldest message, and the
//! top senders, destinations and reasons of deferred mail (seed 000's "which cron job is
//! it?"), how many destinations the deferred mail waits on and how much of it is new (seed
//! 004's dead relayhost). Computed where the messages are; only the summary travels.
//!
//! Memory is bounded: each top-list counter stops taking new keys at [`MAX_KEYS`] (the
//! counts of keys already present stay exact), so a queue of a million distinct senders
//! cannot blow it up.

use crate::row::State;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

pub const MAX_KEYS: usize = 100_000;
const TOP: usize = 5;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Messages per queue name.
    pub messages: BTreeMap<String, u64>,
    pub bytes: u64,
    /// The oldest message: `(queue ID, arrival time, queue)`.
    pub oldest: Option<(String, u64, State)>,
    pub deferred_destinations: Vec<(String, u64)>,
    pub deferred_senders: Vec<(String, u64)>,
    pub deferred_reasons: Vec<(String, u64)>,
    /// Distinct recipient domains of deferred mail (up to [`MAX_KEYS`]): 1 means all of it
    /// waits on one destination.
    #[serde(default)]
    pub deferred_domain_count: u64,
    /// Deferred messages that arrived in the last hour: mail that keeps joining the
    /// deferred queue instead of leaving it.
    #[serde(default)]
    pub deferred_last_hour: u64,
}

#[derive(Default)]
pub struct StatsCounter {
    stats: Stats,
    /// Arrivals at or after this time count in `deferred_last_hour`.
    hour_ago: u64,
    destinations: Bounded,
    senders: Bounded,
    reasons: Bounded,
}

#[derive(Default)]
struct Bounded(HashMap<String, u64>);

impl Bounded {
    fn add(&mut self, key: &str) {
        if let Some(n) = self.0.get_mut(key) {
            *n += 1;
        } else if self.0.len() < MAX_KEYS {
            self.0.insert(key.to_string(), 1);
        }
    }

    fn top(self) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.0.into_iter().collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(TOP);
        all
    }
}

impl StatsCounter {
    /// A counter for a snapshot taken at `now` (seconds since the epoch).
    pub fn at(now: u64) -> StatsCounter {
        StatsCounter {
            hour_ago: now.saturating_sub(3600),
            ..StatsCounter::default()
        }
    }

    pub fn add<'a>(
        &mut self,
        id: &str,
        state: State,
        arrival_time: u64,
        size: u64,
        sender: &str,
        open: impl Iterator<Item = (&'a str, &'a str)>,
    ) {
        *self
            .stats
            .messages
            .entry(state.as_str().to_string())
            .or_insert(0) += 1;
        self.stats.bytes += size;
        if self
            .stats
            .oldest
            .as_ref()
            .is_none_or(|(_, t, _)| arrival_time < *t)
        {
            self.stats.oldest = Some((id.to_string(), arrival_time, state));
        }
        if state != State::Deferred {
            return;
        }
        if arrival_time >= self.hour_ago {
            self.stats.deferred_last_hour += 1;
        }
        self.senders.add(crate::showq::display_sender(sender));
        let mut last_reason = "";
        for (address, reason) in open {
            self.destinations.add(&envelope::split_address(address).1);
            if reason != last_reason && !reason.is_empty() {
                self.reasons.add(reason);
                last_reason = reason;
            }
        }
    }

    pub fn finish(mut self) -> Stats {
        self.stats.deferred_domain_count = self.destinations.0.len() as u64;
        self.stats.deferred_destinations = self.destinations.top();
        self.stats.deferred_senders = self.senders.top();
        self.stats.deferred_reasons = self.reasons.top();
        self.stats
    }
}

impl Stats {
    pub fn count(&self, state: State) -> u64 {
        self.messages.get(state.as_str()).copied().unwrap_or(0)
    }
}
