//! The daemon's side of doctor's history (`admin::history`): every
//! `doctor_history_interval` it reads the queue's counts and writes one sample into the
//! ring `<queue_directory>/history`, with the submissions refused and the recipients
//! delivered and bounced since the last sample written.
//!
//! Cost: the counts come from the store's running totals (`queue::Store::view`: the
//! changes since the last read and the messages in delivery, not a walk of the queue) plus
//! one listing of `maildrop/`; and one 512-byte write with its fdatasync.
//!
//! A sample that could not be made or written is skipped, and what happened in its
//! interval (deliveries, bounces, refusals) is carried into the next one: the ring never
//! loses events, only the moment they were counted at.

use admin::history::{self, Sample};
use sched::{QueueManager, Shared};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// Submissions refused since the last sample (the chores add what they take from the
/// refusal counter file).
pub static REFUSED: AtomicU64 = AtomicU64::new(0);

/// Events not yet in a written sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Unrecorded {
    pub delivered: u64,
    pub bounced: u64,
    pub refused: u64,
}

/// The queue's counts at one moment (everything of a sample but its events).
pub type Counts = Result<Sample, String>;

/// What one interval's sample is: the counts with the events since the last sample
/// written. `unrecorded` keeps the events until `write` succeeds.
pub fn take_sample(
    unrecorded: &mut Unrecorded,
    counts: Counts,
    write: impl FnOnce(&Sample) -> Result<(), String>,
) -> Result<(), String> {
    let mut sample = counts?;
    sample.delivered = unrecorded.delivered;
    sample.bounced = unrecorded.bounced;
    sample.refused = unrecorded.refused;
    write(&sample)?;
    *unrecorded = Unrecorded::default();
    Ok(())
}

pub async fn run(
    shared: Arc<Shared>,
    qmgr: Arc<QueueManager>,
    live: super::LiveConfig,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = qmgr.outcome_totals();
    let mut unrecorded = Unrecorded::default();
    loop {
        let interval = live
            .get()
            .doctor_history_interval
            .max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        let totals = qmgr.outcome_totals();
        unrecorded.delivered += totals.0 - last.0;
        unrecorded.bounced += totals.1 - last.1;
        unrecorded.refused += REFUSED.swap(0, Ordering::Relaxed);
        last = totals;
        let (shared, qmgr) = (shared.clone(), qmgr.clone());
        let mut carry = unrecorded;
        let done = tokio::task::spawn_blocking(move || {
            let path = shared.settings().layout.history();
            let result = take_sample(&mut carry, counts(&shared, &qmgr), |sample| {
                history::record(&path, interval.as_secs(), sample).map_err(|e| e.to_string())
            });
            (carry, result)
        })
        .await;
        match done {
            Ok((carry, result)) => {
                unrecorded = carry;
                if let Err(e) = result {
                    warn!(target: "master", "cannot write the doctor history sample: {e}");
                }
            }
            Err(e) => warn!(target: "master", "the doctor history sample failed: {e}"),
        }
    }
}

/// The queue now, counted as mailq counts it. A count that failed is no sample: a row of
/// zeros would tell doctor the queue had emptied.
fn counts(shared: &Shared, qmgr: &QueueManager) -> Counts {
    let now = admin::duration::unix_now();
    let maildrop = submit::maildrop::ready_files(&shared.settings().layout.maildrop())
        .map_err(|e| format!("cannot count the queue: maildrop: {e}"))?;
    let view = shared.store.view(now, &qmgr.active_ids(), 1);
    Ok(Sample {
        t: now,
        incoming: view.incoming.messages,
        active: view.active.messages,
        deferred: view.deferred.messages,
        hold: view.hold.messages,
        maildrop: maildrop.len() as u64,
        top_destination: view.deferred_recipient_domains.first().cloned(),
        top_reason: view.deferred_reasons.first().cloned(),
        ..Sample::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(t: u64) -> Counts {
        Ok(Sample {
            t,
            deferred: 7,
            ..Sample::default()
        })
    }

    #[test]
    fn a_skipped_sample_carries_its_deliveries_into_the_next() {
        let mut unrecorded = Unrecorded {
            delivered: 5,
            bounced: 1,
            refused: 2,
        };
        let failed = Err("cannot count the queue: maildrop: Not a directory".to_string());
        assert!(take_sample(&mut unrecorded, failed, |_| Ok(())).is_err());
        // The next interval adds its own; a failed write keeps them too.
        unrecorded.delivered += 3;
        let refused = take_sample(&mut unrecorded, counted(60), |_| Err("EIO".into()));
        assert!(refused.is_err());
        let mut written = Vec::new();
        take_sample(&mut unrecorded, counted(120), |s| {
            written.push(s.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            (written[0].delivered, written[0].bounced, written[0].refused),
            (8, 1, 2)
        );
        assert_eq!(unrecorded, Unrecorded::default());
    }
}
