//! `GET /metrics`: the Prometheus text exposition (OpenMetrics 1.0) of the daemon's event
//! counters ([`telemetry`]) and of the queue as it is now, computed from the store at scrape
//! time: depth and ages per queue (postfix_exporter's `postfix_showq_*`), free space against
//! `queue_minfree`, `maildrop/` files, deferred mail per destination and dead destinations.
//!
//! Cost: one walk of the store's index per scrape (on the blocking pool; about 0.1 s per
//! 1,000,000 messages), shared by scrapes that come within [`CACHE_FOR`] of each other.
//! Per-destination series are capped at [`MAX_DESTINATIONS`] (the largest; the rest are
//! summed as `destination="other"`), so a queue to a million domains cannot explode
//! Prometheus's series count.

use crate::Daemon;
use admin::row::State;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use telemetry::{label, Label};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Destinations with their own `mailroom_deferred_messages` series, at most.
pub const MAX_DESTINATIONS: usize = 50;
/// Scrapes closer together than this share one walk of the store.
pub const CACHE_FOR: Duration = Duration::from_secs(2);

const AGE_BUCKETS: &[f64] = &[
    60.0,
    300.0,
    900.0,
    3600.0,
    4.0 * 3600.0,
    12.0 * 3600.0,
    86400.0,
    2.0 * 86400.0,
    5.0 * 86400.0,
];
const SIZE_BUCKETS: &[f64] = &[1e3, 1e4, 1e5, 1e6, 1e7, 1e8];
const QUEUES: [State; 5] = State::ALL;

type Gauges = Family<Label, Gauge>;

/// The last exposition, for [`CACHE_FOR`].
pub struct Cache(Mutex<Option<(Instant, String)>>);

impl Cache {
    pub fn new() -> Cache {
        Cache(Mutex::new(None))
    }

    pub fn get(&self, daemon: &dyn Daemon) -> String {
        let mut cached = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((at, text)) = cached.as_ref() {
            if at.elapsed() < CACHE_FOR {
                return text.clone();
            }
        }
        let text = render(daemon, admin::duration::unix_now());
        *cached = Some((Instant::now(), text.clone()));
        text
    }
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new()
    }
}

/// One exposition.
pub fn render(daemon: &dyn Daemon, now: u64) -> String {
    let mut registry = match daemon.node() {
        Some(node) => {
            Registry::with_labels([(Cow::Borrowed("node"), Cow::Owned(node))].into_iter())
        }
        None => Registry::default(),
    };
    telemetry::register(&mut registry);
    queue_metrics(daemon, now, &mut registry);
    disk_metrics(daemon, &mut registry);
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_err() {
        text.clear(); // only a fmt::Write error, which a String does not have
    }
    text
}

/// Depth, age and size per queue, the oldest message, deferred per destination. The walk
/// does per message only array and atomic updates (no label built, no allocation but a
/// destination seen for the first time), so a scrape costs about what `qshape` does.
fn queue_metrics(daemon: &dyn Daemon, now: u64, registry: &mut Registry) {
    let depth = Gauges::default();
    let oldest = Gauges::default();
    let ages: Family<Label, Histogram> =
        Family::new_with_constructor(|| Histogram::new(AGE_BUCKETS.iter().copied()));
    let sizes: Family<Label, Histogram> =
        Family::new_with_constructor(|| Histogram::new(SIZE_BUCKETS.iter().copied()));
    // One handle per queue, in State::ALL order (a handle shares its family member's counts).
    let handles = |family: &Family<Label, Histogram>| -> Vec<Histogram> {
        QUEUES
            .iter()
            .map(|s| family.get_or_create(&label("queue", s.as_str())).clone())
            .collect()
    };
    let (age_of, size_of) = (handles(&ages), handles(&sizes));
    let mut count = [0i64; QUEUES.len()];
    let mut max_age = [None::<u64>; QUEUES.len()];
    let mut deferred: HashMap<String, i64> = HashMap::new();
    daemon.store().for_each(|e| {
        let state = State::of(e.meta.queue, daemon.is_active(e.id));
        let q = index(state);
        let age = now.saturating_sub(e.meta.envelope.arrival_time);
        count[q] += 1;
        age_of[q].observe(age as f64);
        size_of[q].observe(e.size as f64);
        max_age[q] = Some(max_age[q].map_or(age, |m| m.max(age)));
        if state == State::Deferred {
            count_destinations(e, &mut deferred);
        }
    });
    count[index(State::Maildrop)] = maildrop_files(daemon);
    for (q, state) in QUEUES.iter().enumerate() {
        depth
            .get_or_create(&label("queue", state.as_str()))
            .set(count[q]);
        if let Some(age) = max_age[q] {
            oldest
                .get_or_create(&label("queue", state.as_str()))
                .set(age as i64);
        }
    }
    let maildrop = count[index(State::Maildrop)];
    registry.register("postfix_showq_queue_depth", "Messages in each queue", depth);
    registry.register(
        "postfix_showq_message_age_seconds",
        "Age of the messages in each queue",
        ages,
    );
    registry.register(
        "postfix_showq_message_size_bytes",
        "Size of the messages in each queue",
        sizes,
    );
    registry.register(
        "mailroom_oldest_message_age_seconds",
        "Age of the oldest message in each queue",
        oldest,
    );
    registry.register(
        "mailroom_deferred_messages",
        "Deferred messages per destination domain (the largest; the rest as other)",
        capped(deferred),
    );
    registry.register(
        "mailroom_maildrop_files",
        "Files in maildrop/ waiting for pickup",
        Gauge::<i64>::default().tap(maildrop),
    );
    registry.register(
        "mailroom_destination_state",
        "Destinations that are not plainly active (1 = in that state)",
        destination_states(daemon),
    );
}

fn index(state: State) -> usize {
    QUEUES.iter().position(|s| *s == state).unwrap_or(0)
}

/// Each distinct domain of a deferred message's open recipients counts the message once.
fn count_destinations(e: &queue::Entry, counts: &mut HashMap<String, i64>) {
    let mut seen: Vec<&str> = Vec::new();
    for (address, _) in crate::listing::open(e) {
        let domain = address.rfind('@').map_or("", |at| &address[at + 1..]);
        if seen.iter().any(|d| d.eq_ignore_ascii_case(domain)) {
            continue;
        }
        seen.push(domain);
        let lower: Cow<str> = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(domain.to_ascii_lowercase())
        } else {
            Cow::Borrowed(domain)
        };
        match counts.get_mut(lower.as_ref()) {
            Some(n) => *n += 1,
            None => {
                counts.insert(lower.into_owned(), 1);
            }
        }
    }
}

fn capped(counts: HashMap<String, i64>) -> Gauges {
    let mut sorted: Vec<(String, i64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let gauges = Gauges::default();
    let rest: i64 = sorted.iter().skip(MAX_DESTINATIONS).map(|(_, n)| n).sum();
    for (domain, n) in sorted.into_iter().take(MAX_DESTINATIONS) {
        gauges.get_or_create(&label("destination", domain)).set(n);
    }
    if rest > 0 {
        gauges
            .get_or_create(&label("destination", "other"))
            .set(rest);
    }
    gauges
}

fn destination_states(daemon: &dyn Daemon) -> Gauges {
    let gauges = Gauges::default();
    for (destination, _) in daemon
        .dead_destinations()
        .into_iter()
        .take(MAX_DESTINATIONS)
    {
        let labels = vec![("destination", destination), ("state", "dead".to_string())];
        gauges.get_or_create(&labels).set(1);
    }
    for s in daemon.suspensions().into_iter().take(MAX_DESTINATIONS) {
        let labels = vec![
            ("destination", s.destination),
            ("state", "suspended".to_string()),
        ];
        gauges.get_or_create(&labels).set(1);
    }
    gauges
}

fn maildrop_files(daemon: &dyn Daemon) -> i64 {
    let dir = queue::Layout::new(daemon.queue_directory()).maildrop();
    submit::maildrop::ready_files(&dir).map_or(0, |f| f.len() as i64)
}

/// Free space of the queue file system and the `queue_minfree` it is held against.
fn disk_metrics(daemon: &dyn Daemon, registry: &mut Registry) {
    if let Ok(free) = sys::free_space(&daemon.queue_directory()) {
        let bytes = i64::try_from(free.bytes).unwrap_or(i64::MAX);
        registry.register(
            "mailroom_disk_free_bytes",
            "Free bytes of the queue file system (for mail_owner)",
            Gauge::<i64>::default().tap(bytes),
        );
        if let Some(inodes) = free.inodes {
            let inodes = i64::try_from(inodes).unwrap_or(i64::MAX);
            registry.register(
                "mailroom_disk_free_inodes",
                "Free inodes of the queue file system",
                Gauge::<i64>::default().tap(inodes),
            );
        }
    }
    let minfree = i64::try_from(daemon.queue_minfree()).unwrap_or(i64::MAX);
    registry.register(
        "mailroom_queue_minfree_bytes",
        "queue_minfree: below this free space intake is refused",
        Gauge::<i64>::default().tap(minfree),
    );
}

/// A gauge set in one expression.
trait Tap {
    fn tap(self, value: i64) -> Self;
}

impl Tap for Gauge<i64> {
    fn tap(self, value: i64) -> Self {
        self.set(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_destination_series_are_capped_with_the_rest_as_other() {
        let counts: HashMap<String, i64> = (0..MAX_DESTINATIONS + 10)
            .map(|i| (format!("d{i}.example"), i as i64 + 1))
            .collect();
        let mut registry = Registry::default();
        registry.register("x", "x", capped(counts));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let series = text.lines().filter(|l| l.starts_with("x{")).count();
        assert_eq!(series, MAX_DESTINATIONS + 1, "{text}");
        // The ten smallest (1..=10) are summed.
        assert!(text.contains("x{destination=\"other\"} 55"), "{text}");
        assert!(!text.contains("d0.example"), "{text}");
    }
}
