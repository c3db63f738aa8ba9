//! The daemon's side of doctor's history (`admin::history`): every
//! `doctor_history_interval` it counts the queue the way `doctor` does (the admin engine's
//! statistics over the live store, on a blocking thread) and writes one sample into the
//! ring `<queue_directory>/history`, with the submissions refused and the recipients
//! delivered and bounced since the last sample.
//!
//! Cost: one pass over the in-memory index per interval (the same pass as `doctor`), and
//! one 512-byte write with its fdatasync.

use super::control_server::Manager;
use super::LiveConfig;
use admin::engine::{Backend, Context};
use admin::history::{self, Sample};
use admin::protocol::{Event, Request};
use admin::row::State;
use sched::{QueueManager, Shared};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Submissions refused since the last sample (the chores add what they take from the
/// refusal counter file).
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

pub async fn run(
    shared: Arc<Shared>,
    qmgr: Arc<QueueManager>,
    live: LiveConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = qmgr.outcome_totals();
    loop {
        let interval = live
            .get()
            .doctor_history_interval
            .max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let (shared, qmgr2) = (shared.clone(), qmgr.clone());
        let totals = qmgr.outcome_totals();
        let since = (totals.0 - last.0, totals.1 - last.1);
        last = totals;
        let written = tokio::task::spawn_blocking(move || {
            let sample = sample(&shared, &qmgr2, since)?;
            let path = shared.settings().layout.history();
            history::record(&path, interval.as_secs(), &sample).map_err(|e| e.to_string())
        })
        .await;
        if let Ok(Err(e)) = written {
            warn!(target: "master", "cannot write the doctor history sample: {e}");
        }
    }
}

/// The queue now, as doctor's statistics count it. A count that failed is no sample: a
/// row of zeros would tell doctor the queue had emptied.
fn sample(
    shared: &Shared,
    qmgr: &QueueManager,
    (delivered, bounced): (u64, u64),
) -> Result<Sample, String> {
    let now = admin::duration::unix_now();
    let ctx = Context {
        backend: Backend::Store(&shared.store),
        scheduler: &Manager(qmgr),
        maildrop: shared.settings().layout.maildrop(),
        now,
    };
    let mut stats = None;
    ctx.run(&Request::Stats, None, &mut |e| {
        if let Event::Stats(s) = e {
            stats = Some(s);
        }
        Ok(())
    })
    .map_err(|e| format!("cannot count the queue: {e}"))?;
    let stats = stats.ok_or("cannot count the queue: no statistics were produced")?;
    Ok(Sample {
        t: now,
        incoming: stats.count(State::Incoming),
        active: stats.count(State::Active),
        deferred: stats.count(State::Deferred),
        hold: stats.count(State::Hold),
        maildrop: stats.count(State::Maildrop),
        top_destination: stats.deferred_destinations.first().cloned(),
        top_reason: stats.deferred_reasons.first().cloned(),
        refused: REFUSED.swap(0, Ordering::Relaxed),
        delivered,
        bounced,
    })
}
