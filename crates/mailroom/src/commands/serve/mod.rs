//! `mailroom serve`: the daemon in the foreground. Opens the store (its lock makes it the
//! only owner), then runs pickup, the queue manager, the control socket and the periodic
//! chores on one tokio runtime until SIGTERM/SIGINT; SIGHUP reloads configuration and aliases.
//!
//! A clean stop first stops taking new work (pickup, dispatch), then waits for deliveries in
//! flight; whatever was not finished is still queued on disk and is retried at the next start.
//!
//! Started as root, it separates privileges first (`privsep.rs`): listeners bound and the
//! local delivery helper started as root, then everything else as `mail_owner`.

mod control_server;
pub mod local_helper;
mod privsep;

use control_server::Access;

use crate::edge::load_config;
use agents::local::helper::HelperClient;
use agents::LocalAgent;
use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL};
use queue::{RecoveryReport, Store, StoreError, StoreOptions};
use sched::{QueueManager, Shared};
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// How long a stop waits for deliveries in flight.
const STOP_GRACE: Duration = Duration::from_secs(30);

/// Run the daemon in the foreground: pickup, queue manager, local delivery.
#[derive(clap::Args)]
pub struct Args {}

pub fn run(config_path: Option<&Path>, _: Args) -> u8 {
    let cfg = match load_config(config_path, "mailroom") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let source = config_path
        .map(Path::to_path_buf)
        .or_else(|| cfg.source.clone());
    let started = open_log(&cfg).and_then(|log| {
        let separated = match privsep::decide(&cfg)? {
            privsep::Mode::Single => None,
            privsep::Mode::Separated(owner) => {
                Some(privsep::separate(&cfg, source.as_deref(), &owner)?)
            }
        };
        Ok((log, separated, open_store(&cfg)?))
    });
    let (log, separated, store) = match started {
        Ok(started) => started,
        Err(code) => return code,
    };
    let local = match LocalAgent::new(&cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("mailroom: fatal: {e}");
            return EX_CONFIG;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mailroom: fatal: cannot start the runtime: {e}");
            return EX_SOFTWARE;
        }
    };
    info!(target: "master", "daemon started -- version {}, configuration {}, queue {}",
        env!("CARGO_PKG_VERSION"),
        source.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "(embedded default)".into()),
        cfg.queue_directory.display());
    let shared = match shared_state(store, cfg, local) {
        Ok(shared) => shared,
        Err(code) => return code,
    };
    let code = runtime.block_on(daemon(shared, source, log, separated));
    info!(target: "master", "terminating");
    code
}

/// The mail log, as `maillog_file` and `log_format` say (exit 78 if it cannot be opened).
pub(crate) fn open_log(cfg: &Config) -> Result<maillog::LogHandle, u8> {
    let format = match cfg.log_format {
        config::LogFormat::Json => maillog::Format::Json,
        config::LogFormat::Text => maillog::Format::Text,
    };
    maillog::init(&cfg.maillog_file, format, cfg.log_repeat_window).map_err(|e| {
        eprintln!(
            "mailroom: fatal: cannot open maillog_file {}: {e}",
            cfg.maillog_file
        );
        EX_CONFIG
    })
}

/// The queue layout and the store, opened under its lock and recovered (exit 75 if not).
fn open_store(cfg: &Config) -> Result<Store, u8> {
    if let Err(e) = make_layout(cfg) {
        error!(target: "master", "fatal: {e}");
        eprintln!("mailroom: fatal: {e}");
        return Err(EX_TEMPFAIL);
    }
    let options = StoreOptions {
        // Below this the queue file system is short of space: the store then gives back
        // the dead part of its segments early (see queue's store.rs).
        min_free: cfg.queue_minfree,
        ..StoreOptions::default()
    };
    let (store, report) = match Store::open(&cfg.queue_directory, options) {
        Ok(s) => s,
        Err(e @ StoreError::Locked(_)) => {
            eprintln!("mailroom: fatal: {e}");
            return Err(EX_TEMPFAIL);
        }
        Err(e) => {
            error!(target: "master", "fatal: cannot open the queue store: {e}");
            eprintln!("mailroom: fatal: cannot open the queue store: {e}");
            return Err(EX_TEMPFAIL);
        }
    };
    log_recovery(&report, &store);
    Ok(store)
}

/// What every task of the daemon shares: store, configuration, local and SMTP agents.
fn shared_state(store: Store, cfg: Config, local: LocalAgent) -> Result<Arc<Shared>, u8> {
    let remote = sched::SmtpRemote::new(&cfg);
    match (Shared::new(store, cfg, local), remote) {
        (Ok(s), Ok(remote)) => {
            s.set_remote(Arc::new(remote));
            Ok(Arc::new(s))
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("mailroom: fatal: {e}");
            Err(EX_CONFIG)
        }
    }
}

/// Runs until a stop; the exit code is 0, or 75 when the local delivery helper died.
async fn daemon(
    shared: Arc<Shared>,
    source: Option<PathBuf>,
    log: maillog::LogHandle,
    separated: Option<privsep::Separated>,
) -> u8 {
    let (stop_tx, stop_rx) = watch::channel(false);
    let qmgr = QueueManager::new(shared.clone());
    let (reload_tx, mut reload_rx) = tokio::sync::mpsc::channel::<()>(4);
    let (prepared, helper) = match separated.map(start_helper_client).transpose() {
        Ok(Some((prepared, client, child))) => {
            shared.set_local_helper(client.clone());
            (Some(prepared), Some((client, child)))
        }
        Ok(None) => (None, None),
        Err(code) => return code,
    };
    let mut helper_dead = helper.as_ref().map(|(client, _)| client.dead());
    let mut tasks = spawn_tasks(&shared, &qmgr, &stop_rx, reload_tx, prepared);
    tasks.push(tokio::spawn(chores(shared.clone(), log, stop_rx.clone())));

    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        error!(target: "master", "cannot install signal handlers");
        return EX_SOFTWARE;
    };
    let mut code = 0;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&shared, source.as_deref()),
            Some(()) = reload_rx.recv() => reload(&shared, source.as_deref()),
            why = helper_died(helper_dead.as_mut()) => {
                // Without root the daemon cannot start another: stop, and let the
                // supervisor start both again. Local mail meanwhile is deferred, not lost.
                let text = format!("the local delivery helper is gone ({why}); local mail is deferred; stopping so that mailroom is restarted");
                error!(target: "master", "{text}");
                eprintln!("mailroom: fatal: {text}");
                code = EX_TEMPFAIL;
                break;
            }
        }
    }
    info!(target: "master", "stopping: no new work; waiting for deliveries in flight");
    let _ = stop_tx.send(true);
    for t in tasks {
        if let Err(e) = t.await {
            error!(target: "master", "a daemon task ended abnormally while stopping: {e}");
        }
    }
    remove_sockets(&shared.config());
    if let Some((client, child)) = helper {
        client.close();
        let _ = tokio::task::spawn_blocking(move || privsep::reap(child, STOP_GRACE)).await;
    }
    code
}

/// The daemon's side of the helper connection (inside the runtime).
fn start_helper_client(
    separated: privsep::Separated,
) -> Result<(smtpd::Prepared, Arc<HelperClient>, std::process::Child), u8> {
    match HelperClient::start(separated.helper) {
        Ok(client) => Ok((separated.smtpd, client, separated.child)),
        Err(e) => {
            error!(target: "master", "fatal: cannot talk to the local delivery helper: {e}");
            Err(EX_SOFTWARE)
        }
    }
}

/// Resolves with the reason once the helper is gone; never without one.
async fn helper_died(dead: Option<&mut watch::Receiver<Option<String>>>) -> String {
    let Some(dead) = dead else {
        return std::future::pending().await;
    };
    match dead.wait_for(Option::is_some).await {
        Ok(why) => why.clone().unwrap_or_default(),
        Err(_) => "its connection is closed".to_string(),
    }
}

/// SMTP listeners, the queue manager, pickup and the two control sockets.
fn spawn_tasks(
    shared: &Arc<Shared>,
    qmgr: &Arc<QueueManager>,
    stop_rx: &watch::Receiver<bool>,
    reload_tx: tokio::sync::mpsc::Sender<()>,
    prepared: Option<smtpd::Prepared>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let cfg = shared.config();
    let mut tasks = Vec::new();
    // SMTP listeners (crate smtpd); the task ends after the stop once its sessions are done.
    // Separated, they were bound as root before the drop.
    let hooks = smtpd_hooks(shared, qmgr);
    tasks.push(match prepared {
        Some(prepared) => smtpd::spawn_prepared(hooks, prepared, stop_rx.clone()),
        None => smtpd::spawn(hooks, stop_rx.clone()),
    });
    tasks.push(tokio::spawn(qmgr.clone().run(stop_rx.clone(), STOP_GRACE)));
    let scheduler = qmgr.clone();
    let pickup = submit::pickup::Pickup {
        config: cfg.clone(),
        store: shared.store.clone(),
        queued: Box::new(move |id| scheduler.schedule(id, 0)),
        retry_delay: sched::retry::durable_step_delay,
    };
    tasks.push(tokio::spawn(submit::pickup::run(pickup, stop_rx.clone())));
    for access in [Access::Owner, Access::Public] {
        match control_server::bind(&cfg, access) {
            Ok(listener) => {
                tasks.push(tokio::spawn(control_server::run(
                    listener,
                    access,
                    shared.clone(),
                    qmgr.clone(),
                    reload_tx.clone(),
                    stop_rx.clone(),
                )));
            }
            Err(e) if access == Access::Owner => {
                warn!(target: "master", "control socket unavailable ({e}); postqueue -f will not reach the daemon")
            }
            Err(e) => {
                warn!(target: "master", "public listing socket unavailable ({e}); only the queue owner can list the queue")
            }
        }
    }
    tasks
}

fn remove_sockets(cfg: &Config) {
    for socket in [
        admin::protocol::socket_path(&cfg.queue_directory),
        admin::protocol::public_socket_path(&cfg.queue_directory),
    ] {
        match fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                // Harmless: the next start replaces it before binding.
                warn!(target: "master", "cannot remove {}: {e}", socket.display())
            }
            _ => {}
        }
    }
}

/// SIGHUP: re-read the configuration file and the alias files; keep the old ones on error.
fn reload(shared: &Shared, source: Option<&Path>) {
    let cfg = match Config::load(source) {
        Ok(c) => c,
        Err(e) => {
            warn!(target: "master", "reload failed, keeping the old configuration: {e}");
            return;
        }
    };
    match LocalAgent::new(&cfg) {
        Ok(agent) => {
            let remote = sched::SmtpRemote::new(&cfg);
            match remote.and_then(|r| shared.replace(cfg, agent).map(|()| r)) {
                Ok(remote) => {
                    shared.set_remote(Arc::new(remote));
                    info!(target: "master", "reload -- configuration and aliases re-read");
                    reload_helper(shared);
                }
                Err(e) => {
                    warn!(target: "master", "reload failed, keeping the old configuration: {e}")
                }
            }
        }
        Err(e) => warn!(target: "master", "reload failed, keeping the old aliases: {e}"),
    }
}

/// The helper re-reads the files itself (a request: the daemon cannot signal root).
fn reload_helper(shared: &Shared) {
    if let Some(helper) = shared.local_helper() {
        tokio::spawn(async move {
            if let Err(e) = helper.reload().await {
                warn!(target: "local", "local delivery helper: reload failed, it keeps the old configuration: {e}");
            }
        });
    }
}

/// Periodic work: compaction, folded log repeats, refused-submission counts, stale temps.
async fn chores(shared: Arc<Shared>, log: maillog::LogHandle, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut n: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        n += 1;
        log.flush_repeats();
        let store = shared.store.clone();
        let compacted = tokio::task::spawn_blocking(move || loop {
            match store.compact() {
                Ok(0) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        })
        .await;
        if let Ok(Err(e)) = compacted {
            // Tried again at the next tick; the repeat is folded by the log.
            warn!(target: "qmgr", "queue compaction failed: {e}; will retry");
        }
        if n.is_multiple_of(12) {
            let cfg = shared.config();
            match submit::take_refusal_count(&cfg.queue_directory) {
                Ok(0) | Err(_) => {}
                Ok(count) => warn!(target: "sendmail",
                    "{count} submissions were refused in the last interval (queue_minfree or maildrop limits); see mailroom doctor"),
            }
            submit::pickup::remove_stale_temp_files(&cfg);
        }
    }
}

fn log_recovery(report: &RecoveryReport, store: &Store) {
    info!(target: "qmgr", "queue store opened: {} messages in {} segments", store.len(), report.segments);
    if let Some((name, bytes)) = &report.torn_tail {
        warn!(target: "qmgr", "cut {bytes} bytes of an incomplete record at the end of the log (a write that was never acknowledged); saved as corrupt/{name}");
    }
    for (name, bytes) in &report.corrupt_regions {
        error!(target: "qmgr", "damaged queue log region of {bytes} bytes (records that fail their checksum) saved as corrupt/{name}; mail recorded only there is not in the queue, the rest of the queue is intact");
    }
}

/// Creates the queue layout if missing (the embedded default starts from nothing), with the
/// modes of the one table `mailroom check` verifies against. Existing directories are left
/// alone: `mailroom check` reports wrong modes, `check --fix` restores the table's.
fn make_layout(cfg: &Config) -> Result<(), String> {
    admin::check::layout::create_missing(cfg)?;
    let spool = &cfg.mail_spool_directory;
    if !spool.exists() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(spool)
            .map_err(|e| format!("cannot create {}: {e}", spool.display()))?;
    }
    Ok(())
}

/// What the SMTP server needs from the daemon: the live configuration (SIGHUP swaps it), the
/// store, and the queue manager to make newly queued mail due at once.
fn smtpd_hooks(shared: &Arc<Shared>, qmgr: &Arc<QueueManager>) -> smtpd::Hooks {
    let (source, scheduler, users) = (shared.clone(), qmgr.clone(), shared.clone());
    let check = move |address: &str| users.local().accepts(address);
    smtpd::Hooks {
        config: Arc::new(move || source.config()),
        store: shared.store.clone(),
        local_recipient: Some(smtpd::RecipientCheck(Arc::new(check))),
        queued: Arc::new(move |id| scheduler.schedule(id, 0)),
    }
}
