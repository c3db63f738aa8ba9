//! The daemon's event counters, in one process-wide place so that the rooms where the events
//! happen (smtpd, the queue manager, the store) count them with one line each, and the web
//! room's `/metrics` reads them. A global rather than a handle passed down: the counters are
//! write-only for the rooms, cost one atomic add, and a handle would have to travel through
//! every settings struct for that.
//!
//! Names follow postfix_exporter where the concept is the same, so existing dashboards keep
//! working (`postfix_smtpd_connects_total`, `postfix_smtp_messages_processed_total{status}`,
//! `postfix_smtp_delivery_delay_seconds{stage}`, ...); mailroom's own are `mailroom_*`.
//! The gauges that describe the queue (depth, ages, per destination) are not here: they are
//! computed from the store at scrape time by the web room.
//!
//! Invariant: a counter is incremented only once the event really happened (a message is
//! "processed" by smtpd once it is queued, a store commit once it is fdatasynced).
//!
//! Security stance: counts only; label values are bounded sets chosen here (reply codes,
//! statuses, stages, reasons), never text from a client.

#![forbid(unsafe_code)]

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{LazyLock, OnceLock};

/// One label, `name="value"`; the names are ours, the values from small fixed sets.
pub type Label = Vec<(&'static str, String)>;

/// Delay buckets (seconds), postfix_exporter's spread: a local delivery to a week in queue.
pub const DELAY_BUCKETS: &[f64] = &[
    0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 3600.0, 86400.0, 604800.0,
];
/// Records that shared one fdatasync.
pub const SYNC_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0];

type HistogramFamily = Family<Label, Histogram, fn() -> Histogram>;

/// Every event counter of the daemon.
pub struct Metrics {
    pub smtpd_connects: Counter,
    pub smtpd_disconnects: Counter,
    /// Messages queued by smtpd (Postfix: the `client=` line of a transaction).
    pub smtpd_messages_processed: Counter,
    /// `NOQUEUE: reject` and friends, by reply code.
    pub smtpd_messages_rejected: Family<Label, Counter>,
    /// SMTP client outcomes per recipient: `sent`, `deferred`, `bounced`.
    pub smtp_messages_processed: Family<Label, Counter>,
    /// The four `delays=a/b/c/d` stages of a delivery line.
    pub smtp_delivery_delay: HistogramFamily,
    pub qmgr_messages_removed: Counter,
    pub qmgr_messages_expired: Counter,
    pub store_commits: Counter,
    pub store_records_per_sync: Histogram,
    /// Submissions refused (`sendmail` by queue_minfree or maildrop limits, smtpd 452 4.3.1).
    pub submissions_refused: Family<Label, Counter>,
    /// Handles on `smtp_delivery_delay`'s three series, taken from the family at their first
    /// observation (a handle shares the family's counts): every delivery observes all three,
    /// and a family look-up builds and hashes its label each time.
    delay_stages: [OnceLock<Histogram>; 3],
    /// Handles on `smtp_messages_processed`'s series, in `STATUSES` order, taken the same way.
    processed: [OnceLock<Counter>; 3],
}

fn delay_histogram() -> Histogram {
    Histogram::new(DELAY_BUCKETS.iter().copied())
}

/// The `reason` values of `mailroom_submissions_refused_total`.
pub const REFUSAL_REASONS: [&str; 2] = ["sendmail", "smtpd_queue_minfree"];
/// The `status` values of `postfix_smtp_messages_processed_total`.
pub const STATUSES: [&str; 3] = ["sent", "deferred", "bounced"];

/// Series with a known, small label set exist from the start (at 0), so `rate()` and
/// `increase()` see the first event rather than a series appearing out of nothing.
static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = new_metrics();
    for reason in REFUSAL_REASONS {
        drop(
            metrics
                .submissions_refused
                .get_or_create(&label("reason", reason)),
        );
    }
    for status in STATUSES {
        drop(
            metrics
                .smtp_messages_processed
                .get_or_create(&label("status", status)),
        );
    }
    metrics
});

fn new_metrics() -> Metrics {
    Metrics {
        smtpd_connects: Counter::default(),
        smtpd_disconnects: Counter::default(),
        smtpd_messages_processed: Counter::default(),
        smtpd_messages_rejected: Family::default(),
        smtp_messages_processed: Family::default(),
        smtp_delivery_delay: Family::new_with_constructor(delay_histogram),
        qmgr_messages_removed: Counter::default(),
        qmgr_messages_expired: Counter::default(),
        store_commits: Counter::default(),
        store_records_per_sync: Histogram::new(SYNC_BUCKETS.iter().copied()),
        submissions_refused: Family::default(),
        delay_stages: Default::default(),
        processed: Default::default(),
    }
}

/// The process's counters.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// `[(name, value)]`.
pub fn label(name: &'static str, value: impl Into<String>) -> Label {
    vec![(name, value.into())]
}

/// smtpd refused a command with `code` (`554`, `450`, ...).
pub fn smtpd_rejected(code: u16) {
    get()
        .smtpd_messages_rejected
        .get_or_create(&label("code", code.to_string()))
        .inc();
}

/// One SMTP client outcome line (`status=sent|deferred|bounced`).
pub fn smtp_processed(status: &'static str) {
    let m = get();
    match STATUSES.iter().position(|s| *s == status) {
        Some(i) => kept(
            &m.processed[i],
            &m.smtp_messages_processed,
            "status",
            status,
        )
        .inc(),
        None => m
            .smtp_messages_processed
            .get_or_create(&label("status", status))
            .inc(),
    };
}

/// The stages of Postfix's `delays=a/b/c/d`, in seconds.
pub fn delivery_delays(before_queue_manager: f64, queue_manager: f64, transmission: f64) {
    let m = get();
    for ((stage, seconds), handle) in [
        ("before_queue_manager", before_queue_manager),
        ("queue_manager", queue_manager),
        ("transmission", transmission),
    ]
    .into_iter()
    .zip(&m.delay_stages)
    {
        kept(handle, &m.smtp_delivery_delay, "stage", stage).observe(seconds);
    }
}

/// `family`'s series `name="value"`, through `slot`: looked up (and made) in the family once,
/// kept from then on (a metric handle shares the family's counts).
fn kept<'a, M: Clone, C: MetricConstructor<M>>(
    slot: &'a OnceLock<M>,
    family: &Family<Label, M, C>,
    name: &'static str,
    value: &'static str,
) -> &'a M {
    slot.get_or_init(|| family.get_or_create(&label(name, value)).clone())
}

/// A batch of `records` was written and fdatasynced.
pub fn store_synced(records: usize) {
    let m = get();
    m.store_commits.inc();
    m.store_records_per_sync.observe(records as f64);
}

/// `count` submissions were refused for `reason`.
pub fn submissions_refused(reason: &'static str, count: u64) {
    get()
        .submissions_refused
        .get_or_create(&label("reason", reason))
        .inc_by(count);
}

/// Registers every event counter into `registry` (a scrape's registry: the metrics are
/// shared handles, so registering clones the handle, not the counts).
pub fn register(registry: &mut Registry) {
    let m = get();
    let counters: [(&str, &str, &Counter); 6] = [
        (
            "postfix_smtpd_connects",
            "SMTP connections accepted",
            &m.smtpd_connects,
        ),
        (
            "postfix_smtpd_disconnects",
            "SMTP sessions ended",
            &m.smtpd_disconnects,
        ),
        (
            "postfix_smtpd_messages_processed",
            "Messages queued by the SMTP server",
            &m.smtpd_messages_processed,
        ),
        (
            "postfix_qmgr_messages_removed",
            "Messages removed from the queue after delivery or bounce",
            &m.qmgr_messages_removed,
        ),
        (
            "postfix_qmgr_messages_expired",
            "Recipients returned to the sender after maximal_queue_lifetime",
            &m.qmgr_messages_expired,
        ),
        (
            "mailroom_store_commits",
            "Queue store batches written and fdatasynced",
            &m.store_commits,
        ),
    ];
    for (name, help, counter) in counters {
        registry.register(name, help, counter.clone());
    }
    registry.register(
        "postfix_smtpd_messages_rejected",
        "SMTP commands refused, by reply code",
        m.smtpd_messages_rejected.clone(),
    );
    registry.register(
        "postfix_smtp_messages_processed",
        "SMTP client outcomes per recipient, by status",
        m.smtp_messages_processed.clone(),
    );
    registry.register(
        "postfix_smtp_delivery_delay_seconds",
        "Delivery delays by stage (delays=a/b/c/d of the delivery line)",
        m.smtp_delivery_delay.clone(),
    );
    registry.register(
        "mailroom_store_records_per_sync",
        "Records that shared one fdatasync of the queue store",
        m.store_records_per_sync.clone(),
    );
    registry.register(
        "mailroom_submissions_refused",
        "Submissions refused (queue_minfree, maildrop limits), by where and why",
        m.submissions_refused.clone(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_events_appear_under_postfix_exporter_names() {
        get().smtpd_connects.inc();
        smtpd_rejected(554);
        delivery_delays(0.5, 0.1, 2.0);
        store_synced(3);
        let mut registry = Registry::default();
        register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("postfix_smtpd_connects_total "), "{text}");
        assert!(
            text.contains("postfix_smtpd_messages_rejected_total{code=\"554\"} "),
            "{text}"
        );
        assert!(
            text.contains(
                "postfix_smtp_delivery_delay_seconds_bucket{le=\"5.0\",stage=\"transmission\"} 1"
            ) || text.contains(
                "postfix_smtp_delivery_delay_seconds_bucket{stage=\"transmission\",le=\"5.0\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("mailroom_store_records_per_sync_sum "),
            "{text}"
        );
    }
}
