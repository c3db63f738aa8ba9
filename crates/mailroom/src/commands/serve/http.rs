//! The HTTP server's view of the running daemon (`web::Daemon`): the store and the queue
//! manager's levers, nothing else. Settings are read and listeners bound at start, as root
//! before the privilege drop (like smtpd's); `http_listen` changes need a restart.

use envelope::QueueId;
use sched::{QueueManager, Shared};
use std::path::PathBuf;
use std::sync::Arc;

pub struct Daemon {
    pub shared: Arc<Shared>,
    pub qmgr: Arc<QueueManager>,
    pub queue_directory: PathBuf,
    pub queue_minfree: u64,
    /// `fleet_node_name` (or `myhostname`) when the node is in a fleet.
    pub node: Option<String>,
    /// The link to the fleet (also for a node alone with rate limits: its view is `None`).
    pub fleet: Option<fleet::Fleet>,
}

impl web::Daemon for Daemon {
    fn store(&self) -> &queue::Store {
        &self.shared.store
    }
    fn is_active(&self, id: QueueId) -> bool {
        self.qmgr.is_active(id)
    }
    fn active_ids(&self) -> Vec<QueueId> {
        self.qmgr.active_ids()
    }
    fn schedule(&self, id: QueueId, when: u64) {
        self.qmgr.schedule(id, when);
    }
    fn flush(&self) -> usize {
        self.qmgr.flush()
    }
    fn flush_id(&self, id: QueueId) -> bool {
        self.qmgr.flush_id(id)
    }
    fn dead_destinations(&self) -> Vec<(String, String)> {
        self.qmgr.dead_destinations()
    }
    fn queue_directory(&self) -> PathBuf {
        self.queue_directory.clone()
    }
    fn queue_minfree(&self) -> u64 {
        self.queue_minfree
    }
    fn suspend(
        &self,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<queue::Suspension, queue::SuspendError> {
        self.qmgr.suspend(destination, seconds, reason)
    }
    fn resume(&self, destination: &str) -> Result<bool, queue::SuspendError> {
        self.qmgr.resume(destination)
    }
    fn suspensions(&self) -> Vec<queue::Suspension> {
        self.qmgr.suspensions()
    }
    fn node(&self) -> Option<String> {
        self.node.clone()
    }
    fn fleet(&self) -> web::FleetView {
        let fleet = self.fleet.clone();
        Box::pin(async move {
            let view = fleet?.view().await?;
            serde_json::to_value(view).ok()
        })
    }
}

/// The settings and the bound listeners (none when `http_listen` is empty); exit 78 with
/// one line when a rule of `web::settings` fails or an address cannot be bound.
pub fn prepare(cfg: &config::Config) -> Result<(web::Settings, Vec<std::net::TcpListener>), u8> {
    let fail = |e: String| {
        tracing::error!(target: "master", "fatal: {e}");
        eprintln!("mailroom: fatal: {e}");
        envelope::sysexits::EX_CONFIG
    };
    let settings = web::Settings::from_config(cfg).map_err(fail)?;
    let listeners = web::bind(&settings).map_err(fail)?;
    Ok((settings, listeners))
}
