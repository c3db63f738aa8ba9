//! `GET /metrics`: the Prometheus text exposition (OpenMetrics 1.0) of the daemon's event
//! counters ([`telemetry`]) and of the queue as it is now: depth and ages per queue
//! (postfix_exporter's `postfix_showq_*`), free space against `queue_minfree`, `maildrop/`
//! files, deferred mail per destination and dead destinations.
//!
//! Cost: the queue's numbers come from the store's running totals ([`queue::Store::view`]),
//! kept as each change is applied, so a scrape costs O(changes since the last read +
//! messages in delivery), not a walk of the queue (it was 20 s at 1,000,000 messages in a
//! debug build); plus one listing of `maildrop/` and one statvfs. Nothing is cached: two
//! scrapes a moment apart see the queue as it is at each.
//! Per-destination series are capped at [`MAX_DESTINATIONS`] (the largest; the rest are
//! summed as `destination="other"`), so a queue to a million domains cannot explode
//! Prometheus's series count.

use crate::Daemon;
use admin::row::State;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use queue::tally::{AGE_BOUNDS, SIZE_BOUNDS};
use queue::Totals;
use std::borrow::Cow;
use telemetry::{label, Label};

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Destinations with their own `mailroom_deferred_messages` series, at most.
pub const MAX_DESTINATIONS: usize = 50;

type Gauges = Family<Label, Gauge>;

/// The exposition, rendered afresh per scrape (kept as a type so the server's state need
/// not change when a cache is wanted again).
pub struct Cache;

impl Cache {
    pub fn new() -> Cache {
        Cache
    }

    pub fn get(&self, daemon: &dyn Daemon) -> String {
        render(daemon, admin::duration::unix_now())
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

/// A histogram whose buckets were counted elsewhere (the store's running totals).
#[derive(Debug)]
struct Counted {
    sum: f64,
    count: u64,
    /// `(upper bound, messages in this bucket alone)`, the last at +Inf.
    buckets: Vec<(f64, u64)>,
}

impl Counted {
    /// From cumulative counts `within[i]` (at most `bounds[i]`) of `count` in all.
    fn of(sum: u64, count: u64, bounds: &[u64], within: &[u64]) -> Counted {
        let mut buckets = Vec::with_capacity(bounds.len() + 1);
        let mut below = 0;
        for (bound, n) in bounds.iter().zip(within) {
            buckets.push((*bound as f64, n.saturating_sub(below)));
            below = *n;
        }
        buckets.push((f64::INFINITY, count.saturating_sub(below)));
        Counted {
            sum: sum as f64,
            count,
            buckets,
        }
    }
}

impl EncodeMetric for Counted {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
            self.sum,
            self.count,
            &self.buckets,
            None,
        )
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Labelled histograms in a fixed order.
#[derive(Debug)]
struct Histograms<M>(Vec<(Label, M)>);

impl<M: EncodeMetric> EncodeMetric for Histograms<M> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, metric) in &self.0 {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// The totals of each queue in `State::ALL` order (maildrop's are empty: its files are
/// counted, not read).
fn per_state(view: &queue::View) -> Vec<(State, Totals)> {
    State::ALL
        .iter()
        .map(|&state| {
            let t = match state {
                State::Incoming => view.incoming.clone(),
                State::Active => view.active.clone(),
                State::Deferred => view.deferred.clone(),
                State::Hold => view.hold.clone(),
                State::Maildrop => Totals::default(),
            };
            (state, t)
        })
        .collect()
}

/// Depth, age and size per queue, the oldest message, deferred per destination.
fn queue_metrics(daemon: &dyn Daemon, now: u64, registry: &mut Registry) {
    let view = daemon
        .store()
        .view(now, &daemon.active_ids(), MAX_DESTINATIONS);
    let (depth, oldest) = (Gauges::default(), Gauges::default());
    let (mut ages, mut sizes) = (Vec::new(), Vec::new());
    let maildrop = maildrop_files(daemon);
    for (state, t) in per_state(&view) {
        let queue = label("queue", state.as_str());
        let count = match state {
            State::Maildrop => maildrop,
            _ => i64::try_from(t.messages).unwrap_or(i64::MAX),
        };
        depth.get_or_create(&queue).set(count);
        if let Some(arrival) = t.oldest_arrival {
            let age = now.saturating_sub(arrival);
            oldest
                .get_or_create(&queue)
                .set(i64::try_from(age).unwrap_or(i64::MAX));
        }
        let age = Counted::of(t.age_sum, t.messages, &AGE_BOUNDS, &t.age_within);
        let size = Counted::of(t.bytes, t.messages, &SIZE_BOUNDS, &t.size_within);
        ages.push((queue.clone(), age));
        sizes.push((queue, size));
    }
    registry.register("postfix_showq_queue_depth", "Messages in each queue", depth);
    registry.register(
        "postfix_showq_message_age_seconds",
        "Age of the messages in each queue",
        Histograms(ages),
    );
    registry.register(
        "postfix_showq_message_size_bytes",
        "Size of the messages in each queue",
        Histograms(sizes),
    );
    registry.register(
        "mailroom_oldest_message_age_seconds",
        "Age of the oldest message in each queue",
        oldest,
    );
    registry.register(
        "mailroom_deferred_messages",
        "Deferred messages per destination domain (the largest; the rest as other)",
        capped(&view.deferred_destinations, view.deferred_destinations_rest),
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

/// The largest destinations with their own series, the `rest` summed as `other`.
fn capped(top: &[(String, u64)], rest: u64) -> Gauges {
    let gauges = Gauges::default();
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    for (domain, count) in top.iter().take(MAX_DESTINATIONS) {
        gauges
            .get_or_create(&label("destination", domain.clone()))
            .set(n(*count));
    }
    if rest > 0 {
        gauges
            .get_or_create(&label("destination", "other"))
            .set(n(rest));
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
        let top: Vec<(String, u64)> = (0..MAX_DESTINATIONS + 10)
            .map(|i| (format!("d{i}.example"), 100 - i as u64))
            .collect();
        let mut registry = Registry::default();
        registry.register("x", "x", capped(&top, 55));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let series = text.lines().filter(|l| l.starts_with("x{")).count();
        assert_eq!(series, MAX_DESTINATIONS + 1, "{text}");
        assert!(text.contains("x{destination=\"other\"} 55"), "{text}");
        assert!(!text.contains("d59.example"), "{text}");
    }

    #[test]
    fn counted_buckets_encode_cumulatively_with_the_rest_at_inf() {
        let mut registry = Registry::default();
        let h = Counted::of(700, 5, &[60, 300], &[1, 3]);
        registry.register("h", "h", Histograms(vec![(label("queue", "deferred"), h)]));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for line in [
            "h_bucket{le=\"60.0\",queue=\"deferred\"} 1",
            "h_bucket{le=\"300.0\",queue=\"deferred\"} 3",
            "h_bucket{le=\"+Inf\",queue=\"deferred\"} 5",
            "h_count{queue=\"deferred\"} 5",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
