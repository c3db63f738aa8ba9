//! `mailroom serve`: the daemon in the foreground. Takes the pid file's lock (one daemon per
//! queue; `pid/master.pid`, see `admin::pidfile`), opens the store (its lock makes it the
//! only owner), then runs pickup, the queue manager, the control socket and the periodic
//! chores on one tokio runtime until SIGTERM/SIGINT.
//!
//! Signals (what `mailroom stop`, `abort`, `reload`, `logrotate` send): SIGTERM/SIGINT stop
//! cleanly; SIGQUIT aborts at once (nothing acknowledged is lost: mail in flight is retried
//! at the next start); SIGHUP reloads configuration, aliases, listeners and TLS
//! certificates (`reload.rs`); SIGUSR1 reopens `maillog_file`. systemd hears READY=1 once
//! the listeners and control sockets are bound, RELOADING=1/READY=1 around a reload and
//! STOPPING=1 at a stop (sd_notify; a no-op without `NOTIFY_SOCKET`).
//!
//! A clean stop first stops taking new work (pickup, dispatch), then waits for deliveries in
//! flight; whatever was not finished is still queued on disk and is retried at the next start.
//!
//! Started as root, it separates privileges first (`privsep.rs`): listeners bound and the
//! local delivery helper started as root, then everything else as `mail_owner`.

mod control_server;
mod fleet_link;
mod history;
mod http;
pub mod local_helper;
mod privsep;

use control_server::Access;

use crate::commands::start;
use crate::edge::load_config;
use admin::pidfile::{PidFile, PidFileError};
use agents::local::helper::HelperClient;
use agents::LocalAgent;
use config::Config;
use envelope::sysexits::{EX_CONFIG, EX_SOFTWARE, EX_TEMPFAIL};
use queue::{RecoveryReport, Store, StoreError, StoreOptions};
use sched::{QueueManager, Shared};
use sd_notify::NotifyState;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
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
    hold_reload_signals();
    let cfg = match load_config(config_path, "mailroom") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rewrite = match open_rewrite(&cfg) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let _pid_file = match take_pid_file(&cfg) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let source = config_path
        .map(Path::to_path_buf)
        .or_else(|| cfg.source.clone());
    let started = open_log(&cfg).and_then(|log| {
        // Bound while still root (a port below 1024 is possible), before the drop.
        let http = http::prepare(&cfg)?;
        let separated = match privsep::decide(&cfg)? {
            privsep::Mode::Single => None,
            privsep::Mode::Separated(owner) => {
                Some(privsep::separate(&cfg, source.as_deref(), &owner)?)
            }
        };
        Ok((log, (separated, http), open_store(&cfg)?))
    });
    let (log, (separated, http), store) = match started {
        Ok(started) => started,
        Err(code) => return code,
    };
    let local = match LocalAgent::new(agents::LocalSettings::from_config(&cfg)) {
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
    // Logged once the routing and the agents are built: a bad routing setting stops the
    // start (exit 78) before anything says the daemon started.
    let shared = match shared_state(store, &cfg, local, &rewrite) {
        Ok(shared) => shared,
        Err(code) => return code,
    };
    info!(target: "master", "daemon started -- version {}, configuration {}, queue {}",
        env!("CARGO_PKG_VERSION"),
        source.as_deref().map(|p| p.display().to_string()).unwrap_or_else(|| "(embedded default)".into()),
        cfg.queue_directory.display());
    let live = LiveConfig::new(cfg, rewrite);
    let code = runtime.block_on(daemon(shared, live, source, log, (separated, http)));
    info!(target: "master", "terminating");
    code
}

/// SIGHUP and SIGUSR1 mean "reload" and "reopen the log" to a running daemon, but by
/// default they end a process: one sent while the daemon is still starting (`mailroom
/// reload` right after `start`, logrotate's postrotate) would kill it. Held off with a
/// handler that does nothing until the daemon's own handlers take over; the configuration
/// and the log are read after this point, so nothing is lost by ignoring them meanwhile.
fn hold_reload_signals() {
    for sig in [sys::Signal::SIGHUP, sys::Signal::SIGUSR1] {
        if let Err(e) = sys::hold_signal(sig) {
            eprintln!("mailroom: warning: cannot hold off {sig} while starting: {e}");
        }
    }
}

/// The address rewriter. A map with a bad line refuses the start, naming file:line (a
/// reload keeps the old); checked with the configuration, before the pid file, like any
/// configuration error.
fn open_rewrite(cfg: &Config) -> Result<Arc<rewrite::Live>, u8> {
    rewrite::Live::open(cfg).map(Arc::new).map_err(|e| {
        for line in e.to_string().lines() {
            eprintln!("mailroom: fatal: {line}");
        }
        EX_CONFIG
    })
}

/// The locked `pid/master.pid`; "already running, pid N" is exit 1 as in Postfix.
fn take_pid_file(cfg: &Config) -> Result<PidFile, u8> {
    PidFile::acquire(&cfg.queue_directory).map_err(|e| {
        eprintln!("mailroom: fatal: {e}");
        match e {
            PidFileError::Running(_) => 1,
            _ => EX_TEMPFAIL,
        }
    })
}

/// The mail log, as `maillog_file`, `syslog_*` and `log_format` say (exit 78 if the file
/// cannot be opened; an unreachable syslog falls back to standard error with a warning).
pub(crate) fn open_log(cfg: &Config) -> Result<maillog::LogHandle, u8> {
    let options = crate::edge::log_options(cfg);
    match maillog::init(&options) {
        Ok(log) => Ok(log),
        Err(maillog::InitError::Syslog(e, log)) => {
            eprintln!(
                "mailroom: warning: cannot log to syslog_socket {}: {e}; logging to standard error",
                cfg.syslog_socket
            );
            Ok(log)
        }
        Err(maillog::InitError::File(e)) => {
            eprintln!(
                "mailroom: fatal: cannot open maillog_file {}: {e}",
                cfg.maillog_file
            );
            Err(EX_CONFIG)
        }
    }
}

/// The queue layout and the store, opened under its lock and recovered (exit 75 if not).
fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

fn open_store(cfg: &Config) -> Result<Store, u8> {
    if let Err(e) = make_layout(cfg) {
        error!(target: "master", "fatal: {e}");
        eprintln!("mailroom: fatal: {e}");
        return Err(EX_TEMPFAIL);
    }
    // `auto` (the default): on where the queue is on a journaled ext4, where they save
    // each batch's journal commit (BENCHMARKS.md, relay on a journaled ext4); off
    // elsewhere (XFS measured no gain, and pre-zeroing writes every segment twice).
    // Recovery reads zeroed tails either way, so they can change across restarts.
    // Looked for only when `auto` needs it; `queue_dsync_writes = auto` follows the first.
    let journaled_ext4 = (cfg.queue_prezero_segments == config::Toggle::Auto)
        .then(|| sys::on_journaled_ext4(&cfg.queue_directory));
    let preallocate = cfg
        .queue_prezero_segments
        .resolve(journaled_ext4 == Some(true));
    let dsync_writes = cfg.queue_dsync_writes.resolve(preallocate);
    info!(target: "master", "queue store: pre-zeroed segments {}, O_DSYNC writes {} (queue_prezero_segments = {}, queue_dsync_writes = {}{})",
        on_off(preallocate), on_off(dsync_writes),
        cfg.queue_prezero_segments, cfg.queue_dsync_writes,
        journaled_ext4.map_or("", |j| if j { "; the queue is on a journaled ext4" } else { "; the queue is not on a journaled ext4" }));
    let options = StoreOptions {
        // Below this the queue file system is short of space: the store then gives back
        // the dead part of its segments early (see queue's store.rs).
        min_free: cfg.queue_minfree,
        preallocate,
        dsync_writes,
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

/// The configuration the daemon runs with now: SIGHUP swaps it, smtpd reads it per session;
/// with the address rewriter built from its maps (swapped with it).
#[derive(Clone)]
struct LiveConfig(Arc<RwLock<Arc<Config>>>, Arc<rewrite::Live>);

impl LiveConfig {
    fn new(cfg: Config, rewrite: Arc<rewrite::Live>) -> LiveConfig {
        LiveConfig(Arc::new(RwLock::new(Arc::new(cfg))), rewrite)
    }

    fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, cfg: Config) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(cfg);
    }

    fn rewrite(&self) -> &Arc<rewrite::Live> {
        &self.1
    }
}

/// The SMTP client (with its DKIM keys, MTA-STS and `smtp_generic_maps`) and the LMTP
/// client, with their settings from `cfg`.
fn smtp_remote(
    cfg: &Config,
    rewrite: &Arc<rewrite::Live>,
) -> Result<(sched::SmtpRemote, agents::SmtpClient), String> {
    let lmtp = agents::SmtpClient::new(agents::SmtpSettings::lmtp_from_config(cfg))
        .map_err(|e| e.to_string())?;
    let dkim = agents::dkim::DkimSettings::from_config(cfg);
    let sts = agents::mta_sts::MtaStsSettings::from_config(cfg);
    let mut smtp = agents::SmtpSettings::from_config(cfg);
    if !cfg.fleet_redis_url.is_empty() {
        // A fleet counts a connection while its delivery holds the lease; an idle cached
        // one would be open to the destination without one.
        smtp.connection_cache_time = std::time::Duration::ZERO;
    }
    let remote = sched::SmtpRemote::new(smtp, &dkim, &sts)?;
    Ok((remote.with_rewrite(rewrite.clone()), lmtp))
}

/// What every task of the daemon shares: store, scheduler settings, local and SMTP agents,
/// and routing's view of the address rewriter (relocated, alias loops, unknown virtual).
fn shared_state(
    store: Store,
    cfg: &Config,
    local: LocalAgent,
    rewrite: &Arc<rewrite::Live>,
) -> Result<Arc<Shared>, u8> {
    let remote = smtp_remote(cfg, rewrite);
    let settings = sched::Settings::from_config(cfg);
    match (Shared::new(store, settings, local), remote) {
        (Ok(s), Ok((remote, lmtp))) => {
            s.set_remote(Arc::new(remote));
            s.set_lmtp(lmtp);
            let (errors, cleanup) = (rewrite.clone(), rewrite.clone());
            s.set_recipient_errors(Arc::new(move |address: &str| {
                errors.get().recipient_error(address)
            }));
            s.set_cleanup(Arc::new(
                move |env: &mut envelope::Envelope, message: &[u8]| {
                    cleanup.get().cleanup(env, message)
                },
            ));
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
    live: LiveConfig,
    source: Option<PathBuf>,
    log: maillog::LogHandle,
    (separated, http): (Option<privsep::Separated>, HttpServer),
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
    let (mut tasks, smtpd) = spawn_tasks(&shared, &live, &qmgr, &stop_rx, reload_tx, prepared);
    let fleet = match fleet_link::start(&live.get(), &shared, &qmgr, &stop_rx) {
        Ok(Some((task, fleet))) => {
            tasks.push(task);
            Some(fleet)
        }
        Ok(None) => None,
        Err(code) => return code,
    };
    let links = (&shared, &qmgr, fleet);
    tasks.push(spawn_http(http, links, &live.get(), &stop_rx));
    tasks.push(tokio::spawn(chores(
        shared.clone(),
        live.clone(),
        log.clone(),
        stop_rx.clone(),
    )));
    let sampler = history::run(shared.clone(), qmgr.clone(), live.clone(), stop_rx.clone());
    tasks.push(tokio::spawn(sampler));

    let (Ok(mut term), Ok(mut int), Ok(mut hup), Ok(mut usr1), Ok(mut quit)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::quit()),
    ) else {
        error!(target: "master", "cannot install signal handlers");
        return EX_SOFTWARE;
    };
    announce_ready();
    let mut code = 0;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&shared, &live, &smtpd, &qmgr, source.as_deref()),
            Some(()) = reload_rx.recv() => reload(&shared, &live, &smtpd, &qmgr, source.as_deref()),
            _ = usr1.recv() => reopen_log(&log, &live.get()),
            _ = quit.recv() => abort(&shared.settings().layout),
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
    wind_down(stop_tx, tasks, &shared, helper).await;
    code
}

/// The HTTP server's settings and listeners, bound at start.
type HttpServer = (web::Settings, Vec<std::net::TcpListener>);

/// `/metrics` and the API (a task that ends at once when `http_listen` is empty).
fn spawn_http(
    (settings, listeners): HttpServer,
    (shared, qmgr, fleet): (&Arc<Shared>, &Arc<QueueManager>, Option<fleet::Fleet>),
    cfg: &Config,
    stop: &watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let daemon = Arc::new(http::Daemon {
        shared: shared.clone(),
        qmgr: qmgr.clone(),
        queue_directory: cfg.queue_directory.clone(),
        queue_minfree: cfg.queue_minfree,
        node: fleet::FleetSettings::from_config(cfg)
            .filter(|f| f.redis_url.is_some())
            .map(|f| f.node_name),
        fleet,
    });
    tokio::spawn(web::serve(listeners, daemon, settings, stop.clone()))
}

/// The stop: no new work, deliveries in flight finished (bounded), sockets removed, the
/// local delivery helper told to finish and reaped.
async fn wind_down(
    stop_tx: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shared: &Shared,
    helper: Option<(Arc<HelperClient>, std::process::Child)>,
) {
    notify(&[NotifyState::Stopping]);
    info!(target: "master", "stopping: no new work; waiting for deliveries in flight");
    let _ = stop_tx.send(true);
    for t in tasks {
        if let Err(e) = t.await {
            error!(target: "master", "a daemon task ended abnormally while stopping: {e}");
        }
    }
    remove_sockets(&shared.settings().layout);
    if let Some((client, child)) = helper {
        client.close();
        let _ = tokio::task::spawn_blocking(move || privsep::reap(child, STOP_GRACE)).await;
    }
}

/// READY=1: listeners and control sockets are bound. Detached by `mailroom start`, the
/// daemon first lets go of the pipe `start` reads its errors from, and after READY=1 stops
/// notifying: `start` has exited and removed its socket, so RELOADING=1 would find nobody.
fn announce_ready() {
    let detached = std::env::var_os(start::DETACHED_ENV).is_some();
    if detached {
        start::release_standard_error();
    }
    notify(&[NotifyState::Ready]);
    if detached {
        NOTIFY.store(false, Ordering::Relaxed);
    }
}

/// Whether a service manager listens (systemd: always; `mailroom start`: until READY=1).
static NOTIFY: AtomicBool = AtomicBool::new(true);

/// sd_notify; without `NOTIFY_SOCKET` (not under systemd or `start`) it does nothing.
fn notify(states: &[NotifyState]) {
    if !NOTIFY.load(Ordering::Relaxed) {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        warn!(target: "master", "cannot notify the service manager: {e}");
    }
}

/// SIGUSR1 / `mailroom logrotate`: the line after the reopen is the new file's first.
fn reopen_log(log: &maillog::LogHandle, cfg: &Config) {
    match log.reopen() {
        Ok(true) => info!(target: "master", "logrotate -- maillog_file reopened"),
        Ok(false) => {
            info!(target: "master", "logrotate -- the log is not a file, nothing to reopen")
        }
        Err(e) => {
            warn!(target: "master", "cannot reopen maillog_file {}: {e}; still writing to the old file", cfg.maillog_file)
        }
    }
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

/// SIGQUIT / `mailroom abort`: exit now. Every acknowledged message is already durable
/// (DESIGN invariant 1), so what was in flight is simply retried at the next start, as
/// after a crash; only the sockets are cleaned up.
fn abort(layout: &queue::Layout) -> ! {
    notify(&[NotifyState::Stopping]);
    warn!(target: "master", "abort -- stopping at once; deliveries in flight are retried at the next start");
    remove_sockets(layout);
    std::process::exit(0)
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
    live: &LiveConfig,
    qmgr: &Arc<QueueManager>,
    stop_rx: &watch::Receiver<bool>,
    reload_tx: tokio::sync::mpsc::Sender<()>,
    prepared: Option<smtpd::Prepared>,
) -> (Vec<tokio::task::JoinHandle<()>>, smtpd::Reload) {
    let cfg = live.get();
    let mut tasks = Vec::new();
    // SMTP listeners (crate smtpd); the task ends after the stop once its sessions are done.
    // Separated, they were bound as root before the drop.
    let hooks = smtpd_hooks(shared, live, qmgr);
    let smtpd = match prepared {
        Some(prepared) => smtpd::spawn_prepared(hooks, prepared, stop_rx.clone()),
        None => smtpd::spawn(hooks, stop_rx.clone()),
    };
    tasks.push(smtpd.task);
    tasks.push(tokio::spawn(qmgr.clone().run(stop_rx.clone(), STOP_GRACE)));
    let scheduler = qmgr.clone();
    let pickup = submit::pickup::Pickup {
        settings: Arc::new(submit::pickup::PickupSettings::from_config(&cfg)),
        store: shared.store.clone(),
        queued: Box::new(move |id| scheduler.schedule(id, 0)),
        retry_delay: sched::retry::durable_step_delay,
        rewrite: live.rewrite().clone(),
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
    (tasks, smtpd.reload)
}

fn remove_sockets(layout: &queue::Layout) {
    for socket in [layout.control_socket(), layout.showq_socket()] {
        match fs::remove_file(&socket) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                // Harmless: the next start replaces it before binding.
                warn!(target: "master", "cannot remove {}: {e}", socket.display())
            }
            _ => {}
        }
    }
}

/// SIGHUP: re-read the configuration file and the alias files (keep the old ones on error);
/// then the SMTP server follows the new configuration (listeners, TLS certificates). The
/// suspended destinations are read back too: a CLI may have changed them while no daemon
/// answered.
fn reload(
    shared: &Shared,
    live: &LiveConfig,
    smtpd: &smtpd::Reload,
    qmgr: &QueueManager,
    source: Option<&Path>,
) {
    qmgr.reload_suspensions();
    let reloading = NotifyState::monotonic_usec_now().map(|now| [NotifyState::Reloading, now]);
    if let Ok(states) = &reloading {
        notify(states);
    }
    if reload_config(shared, live, source) {
        smtpd.request();
    }
    notify(&[NotifyState::Ready]);
}

/// True when the new configuration is in place.
fn reload_config(shared: &Shared, live: &LiveConfig, source: Option<&Path>) -> bool {
    let cfg = match Config::load(source) {
        Ok(c) => c,
        Err(e) => {
            warn!(target: "master", "reload failed, keeping the old configuration: {e}");
            return false;
        }
    };
    let agent = match LocalAgent::new(agents::LocalSettings::from_config(&cfg)) {
        Ok(agent) => agent,
        Err(e) => {
            warn!(target: "master", "reload failed, keeping the old aliases and maps: {e}");
            return false;
        }
    };
    let rewriter = match rewrite::Rewriter::from_config(&cfg) {
        Ok(r) => r,
        Err(e) => {
            for line in e.to_string().lines() {
                warn!(target: "master", "reload failed, keeping the old configuration and maps: {line}");
            }
            return false;
        }
    };
    let settings = sched::Settings::from_config(&cfg);
    let remote = smtp_remote(&cfg, live.rewrite());
    match remote.and_then(|r| shared.replace(settings, agent).map(|()| r)) {
        Ok((remote, lmtp)) => {
            shared.set_remote(Arc::new(remote));
            shared.set_lmtp(lmtp);
            live.rewrite().replace(rewriter);
            live.set(cfg);
            info!(target: "master", "reload -- configuration and aliases re-read");
            reload_helper(shared);
            true
        }
        Err(e) => {
            warn!(target: "master", "reload failed, keeping the old configuration: {e}");
            false
        }
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
async fn chores(
    shared: Arc<Shared>,
    live: LiveConfig,
    log: maillog::LogHandle,
    mut stop: watch::Receiver<bool>,
) {
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
            let cfg = live.get();
            match submit::take_refusal_count(&cfg.queue_directory) {
                Ok(0) | Err(_) => {}
                Ok(count) => {
                    history::REFUSED.fetch_add(count, Ordering::Relaxed);
                    telemetry::submissions_refused("sendmail", count);
                    warn!(target: "sendmail",
                    "{count} submissions were refused in the last interval (queue_minfree or maildrop limits); see mailroom doctor")
                }
            }
            submit::pickup::remove_stale_temp_files(&submit::pickup::PickupSettings::from_config(
                &cfg,
            ));
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
    admin::check::layout::create_missing(&admin::Settings::from_config(cfg))?;
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

/// What the SMTP server needs from the daemon: its settings, following the live configuration
/// (SIGHUP swaps it), the store, and the queue manager to make newly queued mail due at once.
fn smtpd_hooks(shared: &Arc<Shared>, live: &LiveConfig, qmgr: &Arc<QueueManager>) -> smtpd::Hooks {
    let (source, scheduler, users) = (live.clone(), qmgr.clone(), shared.clone());
    let check = move |address: &str| users.local().accepts(address);
    let mailboxes = shared.clone();
    let virtual_check = move |address: &str| mailboxes.local().accepts_virtual(address);
    smtpd::Hooks {
        settings: smtpd::SmtpdSettings::follow(move || source.get()),
        store: shared.store.clone(),
        local_recipient: Some(smtpd::RecipientCheck(Arc::new(check))),
        rewrite: live.rewrite().clone(),
        virtual_recipient: Some(smtpd::VirtualRecipientCheck(Arc::new(virtual_check))),
        queued: Arc::new(move |id| scheduler.schedule(id, 0)),
    }
}
