//! Reload without dropping anyone: the listeners follow the configuration of the moment,
//! and STARTTLS takes the certificates found on disk now.
//!
//! Each listener is an accept-loop task keyed by its configured address and role; every
//! session is a task of its own, so closing a listener never touches a session it accepted.
//! On reload, in this order:
//! 1. listeners the configuration no longer names are closed (the task ends, its socket is
//!    dropped and the port refuses connections) — first, so an address that moves to
//!    another role or family can be bound again;
//! 2. new ones are bound; one that cannot be is logged and left out, as at start;
//! 3. unchanged ones are left alone: their socket is never closed, so no client of theirs
//!    sees a refused connection during the reload;
//! 4. the TLS acceptor is rebuilt from the certificate files (a renewed certificate at the
//!    same path included). If that fails the old one stays: a broken new certificate must
//!    not turn STARTTLS off. Sessions already inside TLS keep theirs.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::intake::Intake;
use crate::listener::{accept_loop, bind, ListenKey, Shared};
use crate::tls;
use crate::{SettingsSource, SmtpdSettings};

/// Runs the accept loops until `stop`, then waits (bounded) for the sessions. A message on
/// `reload` makes the listeners follow the configuration of that moment.
pub fn start(
    listeners: Vec<(ListenKey, TcpListener)>,
    settings: SettingsSource,
    intake: Intake,
    process_limit: usize,
    stop: watch::Receiver<bool>,
    mut reload: mpsc::UnboundedReceiver<()>,
) -> JoinHandle<()> {
    let shared = Arc::new(Shared::new(settings, intake, process_limit));
    tokio::spawn(async move {
        let mut set = ListenerSet::new(shared.clone(), stop.clone());
        for (key, listener) in listeners {
            set.open(key, listener);
        }
        let mut stopping = stop.clone();
        loop {
            let reload_now = tokio::select! {
                Some(()) = reload.recv() => true,
                _ = stopping.wait_for(|stopping| *stopping) => false,
            };
            match reload_now {
                true => set.reload().await,
                false => break,
            }
        }
        set.join().await;
        shared.drain().await;
    })
}

/// The open listeners, one accept loop each.
pub(crate) struct ListenerSet {
    loops: HashMap<ListenKey, JoinHandle<()>>,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
}

impl ListenerSet {
    pub(crate) fn new(shared: Arc<Shared>, stop: watch::Receiver<bool>) -> ListenerSet {
        ListenerSet {
            loops: HashMap::new(),
            shared,
            stop,
        }
    }

    /// Starts accepting on `listener`, bound for `key`.
    pub(crate) fn open(&mut self, key: ListenKey, listener: tokio::net::TcpListener) {
        let (_, role) = key;
        if let Ok(address) = listener.local_addr() {
            info!(target: "smtpd", "listening on {address} ({})", role.name());
        }
        let task = accept_loop(listener, role, self.shared.clone(), self.stop.clone());
        self.loops.insert(key, tokio::spawn(task));
    }

    /// Follows the current configuration (the daemon has swapped it before asking).
    pub(crate) async fn reload(&mut self) {
        let settings = (self.shared.settings)();
        let wanted = settings.listen.clone();
        let removed: Vec<ListenKey> = self
            .loops
            .keys()
            .filter(|key| !wanted.contains(key))
            .copied()
            .collect();
        for key in removed {
            self.close(key).await;
        }
        for key in wanted {
            if self.loops.contains_key(&key) {
                continue;
            }
            match bind(key.0, key.1) {
                Ok(listener) => self.open(key, listener),
                Err(e) => error!(target: "smtpd", "reload: {e}; this listener is disabled"),
            }
        }
        reload_tls(&self.shared, &settings);
    }

    /// Ends one accept loop and waits until its socket is closed.
    async fn close(&mut self, key: ListenKey) {
        if let Some(task) = self.loops.remove(&key) {
            task.abort();
            let _ = task.await;
            info!(target: "smtpd", "no longer listening on {} ({})", key.0, key.1.name());
        }
    }

    /// Waits for every accept loop (they end at the stop).
    pub(crate) async fn join(self) {
        for (_, task) in self.loops {
            let _ = task.await;
        }
    }
}

fn reload_tls(shared: &Shared, settings: &SmtpdSettings) {
    match tls::reloaded_acceptor(settings) {
        Ok(acceptor) => {
            let offered = acceptor.is_some();
            shared.intake.set_tls(acceptor);
            match offered {
                true => info!(target: "smtpd", "reload -- TLS certificates re-read"),
                false => info!(target: "smtpd", "reload -- STARTTLS is off"),
            }
        }
        Err(e) => {
            warn!(target: "smtpd", "reload: cannot load the TLS certificates, keeping the old ones: {e}")
        }
    }
}
