//! The daemon's link to a fleet (`fleet_redis_url`) or, for a node alone, to its own rate
//! limits (`smtp_destination_rate_limit`): the fleet crate, given the queue manager's
//! suspension levers and the queue sizes for its heartbeats, installed in the scheduler.
//! Neither set: nothing is installed and the scheduler asks no one.

use envelope::sysexits::EX_CONFIG;
use fleet::{Fleet, FleetSettings, Hooks, NodeReport};
use queue::QueueName;
use sched::{QueueManager, Shared};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::watch;

/// Starts the fleet's task; `None` when there is nothing to share or limit. The fleet is
/// returned too, for the HTTP API's view of it (`GET /api/v1/fleet`).
pub fn start(
    cfg: &config::Config,
    shared: &Arc<Shared>,
    qmgr: &Arc<QueueManager>,
    stop: &watch::Receiver<bool>,
) -> Result<Option<(tokio::task::JoinHandle<()>, Fleet)>, u8> {
    let Some(settings) = FleetSettings::from_config(cfg) else {
        return Ok(None);
    };
    let (adopting, listing, counting) = (qmgr.clone(), qmgr.clone(), qmgr.clone());
    let store = shared.store.clone();
    let hooks = Hooks {
        adopt: Box::new(move |list| adopting.adopt_suspensions(list)),
        suspensions: Box::new(move || listing.suspensions()),
        report: Box::new(move || report(&store, &counting)),
    };
    let fleet = Fleet::new(settings, hooks).map_err(|e| {
        tracing::error!(target: "master", "fatal: {e}");
        eprintln!("mailroom: fatal: {e}");
        EX_CONFIG
    })?;
    shared.set_fleet(Arc::new(fleet.clone()));
    Ok(Some((tokio::spawn(fleet.clone().run(stop.clone())), fleet)))
}

/// The queue sizes of a heartbeat (`fleet status`).
fn report(store: &queue::Store, qmgr: &QueueManager) -> NodeReport {
    let mut queues: BTreeMap<String, u64> = BTreeMap::new();
    for name in [QueueName::Incoming, QueueName::Deferred, QueueName::Hold] {
        queues.insert(name.as_str().to_string(), 0);
    }
    store.for_each(|e| *queues.entry(e.meta.queue.as_str().to_string()).or_default() += 1);
    queues.insert("active".to_string(), qmgr.active_count() as u64);
    NodeReport {
        queues,
        ..NodeReport::default()
    }
}
