//! Listeners, admission and shutdown: binds every configured address with its role, accepts
//! connections, applies the connection limits, and runs one task per session.
//!
//! * `smtpd_process_limit`: sessions per service (a semaphore for each listener role —
//!   smtp, submission, reinject — as each Postfix master.cf service has its own process
//!   limit, so a password-guessing flood on the submission port cannot take the slots of
//!   port 25). When every slot of a service is taken, the
//!   session that has waited longest for its client gives its slot to the newcomer
//!   (`stress.rs`); if none has waited long enough, the new client gets
//!   `421 4.3.2 ... too many connections` and is closed at once. From 80 % of the limit the
//!   sessions run with Postfix's stress-adaptive limits.
//! * `smtpd_client_connection_count_limit` and `smtpd_client_connection_rate_limit`: per
//!   client IP and service (`anvil.rs`, Postfix's anvil); over either,
//!   `421 4.7.0 ... too many connections from IP`. Clients in
//!   `smtpd_client_event_limit_exceptions` (default `$mynetworks`) are exempt, as in Postfix.
//! * Refusals are written with a non-blocking `try_write`: a client that does not read
//!   cannot hold the accept loop.
//! * Stop: when the daemon's stop signal flips, the accept loops end (the ports close), idle
//!   sessions get `421 4.3.2` at once, sessions inside DATA/BDAT finish that message; after
//!   [`STOP_GRACE`] whatever is left is dropped with the runtime, never with a 250 sent for
//!   mail that was not queued.
//! * Reload (`rebind.rs`): listeners follow the new configuration without touching the
//!   sessions, which are tasks of their own.
//! * A panic in a session ends that session only (tokio contains it in the task).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tracing::{error, info, warn};

use crate::anvil::{self, Anvil, ClientEvents, ClientId};
use crate::conn::Conn;
use crate::driver;
use crate::exchange::Env;
use crate::intake::Intake;
use crate::relay::canonical;
use crate::session::{Client, Role, Session, Settings};
use crate::stress::{Load, Registration};
use crate::{SettingsSource, SmtpdError, SmtpdSettings};
use proto::reply::{fixed, Reply};

/// How long a new client waits for the slot of a session told to close.
const EVICTION_WAIT: Duration = Duration::from_secs(2);

/// How long a stop waits for sessions to finish the message they are receiving.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// The session counts behind both connection limits.
struct Limits {
    sessions: Arc<Semaphore>,
    total: usize,
    /// Per-client counts and rates (`anvil.rs`).
    anvil: Arc<Anvil>,
    load: Arc<Load>,
}

impl Limits {
    fn active(&self) -> usize {
        self.total - self.sessions.available_permits()
    }
}

/// What the accept loops share.
pub(crate) struct Shared {
    pub(crate) settings: SettingsSource,
    pub(crate) intake: Arc<Intake>,
    /// One set of limits per service (listener role).
    services: Vec<(Role, Arc<Limits>)>,
}

impl Shared {
    /// Every service has its limits from the start: a reload may open a role's first port.
    pub(crate) fn new(settings: SettingsSource, intake: Intake, process_limit: usize) -> Shared {
        let services = [Role::Smtp, Role::Submission, Role::Reinject]
            .into_iter()
            .map(|role| (role, Limits::new(process_limit)))
            .collect();
        Shared {
            settings,
            intake: Arc::new(intake),
            services,
        }
    }

    /// Waits (at most [`STOP_GRACE`]) for the sessions of every service to end.
    pub(crate) async fn drain(&self) {
        let deadline = Instant::now() + STOP_GRACE;
        let active = || self.services.iter().map(|(_, l)| l.active()).sum::<usize>();
        while active() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        match active() {
            0 => info!(target: "smtpd", "all SMTP sessions closed"),
            n => {
                warn!(target: "smtpd", "stopping with {n} SMTP sessions still open; they get no reply for unfinished mail")
            }
        }
    }

    /// The limits of `role`'s service; every role that listens has them.
    fn limits(&self, role: Role) -> &Arc<Limits> {
        let found = self.services.iter().find(|(r, _)| *r == role);
        &found.unwrap_or(&self.services[0]).1
    }
}

impl Limits {
    fn new(process_limit: usize) -> Arc<Limits> {
        Arc::new(Limits {
            sessions: Arc::new(Semaphore::new(process_limit)),
            total: process_limit,
            anvil: Anvil::new(),
            load: Load::new(process_limit),
        })
    }
}

/// Where and as what a listener is configured: the key a reload compares (the configured
/// address, not the bound one: `127.0.0.1:0` stays one listener across reloads).
pub(crate) type ListenKey = (SocketAddr, Role);

/// Binds every listener of `settings`. One that cannot be bound (port in use, address not
/// configured) is reported on standard error and in the log, and left out: the rest of the
/// daemon (pickup, delivery, the other listeners) keeps working.
pub fn bind_all(settings: &SmtpdSettings) -> Vec<(ListenKey, std::net::TcpListener)> {
    let mut bound = Vec::new();
    for &(address, role) in &settings.listen {
        match bind_std(address, role) {
            Ok(listener) => bound.push(((address, role), listener)),
            Err(e) => {
                error!(target: "smtpd", "{e}; this listener is disabled");
                eprintln!("mailroom: error: {e}; this listener is disabled");
            }
        }
    }
    bound
}

pub(crate) fn bind(address: SocketAddr, role: Role) -> Result<TcpListener, SmtpdError> {
    let error = |source| SmtpdError::Bind {
        address,
        role: role.name(),
        source,
    };
    TcpListener::from_std(bind_std(address, role)?).map_err(error)
}

/// Binds one listener without a runtime (before the daemon gives up root).
fn bind_std(address: SocketAddr, role: Role) -> Result<std::net::TcpListener, SmtpdError> {
    let error = |source| SmtpdError::Bind {
        address,
        role: role.name(),
        source,
    };
    let listener = std::net::TcpListener::bind(address).map_err(error)?;
    listener.set_nonblocking(true).map_err(error)?;
    Ok(listener)
}

/// The bound listeners as tokio's (inside the runtime); one that tokio refuses is logged
/// and skipped, like one that could not be bound.
pub fn into_tokio(bound: Vec<(ListenKey, std::net::TcpListener)>) -> Vec<(ListenKey, TcpListener)> {
    let mut listeners = Vec::new();
    for ((address, role), listener) in bound {
        match TcpListener::from_std(listener) {
            Ok(listener) => listeners.push(((address, role), listener)),
            Err(e) => {
                error!(target: "smtpd", "cannot listen ({}): {e}; this listener is disabled", role.name())
            }
        }
    }
    listeners
}

pub(crate) async fn accept_loop(
    listener: TcpListener,
    role: Role,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|stopping| *stopping) => return,
        };
        match accepted {
            Ok((tcp, peer)) => admit(tcp, peer, role, &shared, &stop),
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(target: "smtpd", "accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn admit(
    tcp: TcpStream,
    peer: SocketAddr,
    role: Role,
    shared: &Arc<Shared>,
    stop: &watch::Receiver<bool>,
) {
    let settings = (shared.settings)();
    let ip = canonical(peer.ip());
    // Made once for the session: its `name[ip]` label costs more than the rest of admission.
    let mut named = Client::new(ip);
    named.port = peer.port();
    let label = named.label();
    let limits = shared.limits(role).clone();
    let client = ClientId {
        ip,
        label,
        service: role.name(),
        hostname: &settings.session.hostname,
    };
    let slot = match anvil::admit(&limits.anvil, &settings.anvil, &client) {
        Ok(slot) => slot,
        Err(reply) => {
            refuse(&tcp, &reply);
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let admitted = Admitted {
        tcp,
        ip,
        client: named,
        role,
        slot,
        stop: stop.clone(),
    };
    if let Ok(permit) = limits.sessions.clone().try_acquire_owned() {
        spawn_session(admitted, &settings, shared, permit);
        return;
    }
    if !limits.load.evict_stalest() {
        refuse_over_limit(&admitted, &settings, shared);
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        let permit = limits.sessions.clone().acquire_owned();
        match tokio::time::timeout(EVICTION_WAIT, permit).await {
            Ok(Ok(permit)) => spawn_session(admitted, &settings, &shared, permit),
            _ => refuse_over_limit(&admitted, &settings, &shared),
        }
    });
}

/// A connection past the per-IP limit, waiting for a session slot.
struct Admitted {
    tcp: TcpStream,
    ip: IpAddr,
    /// The session's client (address, source port, label).
    client: Client,
    role: Role,
    /// `None` for a client in `smtpd_client_event_limit_exceptions` (not counted).
    slot: Option<anvil::Slot>,
    stop: watch::Receiver<bool>,
}

fn refuse_over_limit(admitted: &Admitted, settings: &SmtpdSettings, shared: &Shared) {
    warn!(target: "smtpd", "service {} has reached its process limit {}: new clients are refused", admitted.role.name(), shared.limits(admitted.role).total);
    refuse(
        &admitted.tcp,
        &fixed::too_many_connections(&settings.session.hostname),
    );
}

fn spawn_session(
    admitted: Admitted,
    settings: &SmtpdSettings,
    shared: &Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let Admitted {
        tcp,
        ip,
        client,
        role,
        slot,
        stop,
    } = admitted;
    let limits = shared.limits(role);
    let load = &limits.load;
    let anvil = ClientEvents::new(limits.anvil.clone(), settings.anvil.clone(), ip);
    let registration: Registration = load.register();
    let stress = load.flag();
    let storage = settings.disk.clone();
    let password_file = settings.sasl_password_file.clone();
    let conn = Conn::new(
        tcp,
        settings.time_limits,
        stress.clone(),
        registration.presence.clone(),
    );
    let mut settings = Settings::new(settings, role, shared.intake.tls().is_some());
    settings.local_recipient = shared.intake.local_recipient.clone();
    settings.virtual_recipient = shared.intake.virtual_recipient.clone();
    settings.rewriter = shared.intake.rewrite.get();
    settings.stress = stress;
    let session = Session::new(Arc::new(settings), client);
    let intake = shared.intake.clone();
    // Boxed: a session's future is many kilobytes (the state of every verb's await), and
    // tokio moves an unboxed future by value several times while spawning it and again
    // when it completes; a box makes each of those moves one pointer.
    tokio::spawn(Box::pin(async move {
        let _claims = (permit, slot, registration);
        let env = Env {
            intake: &intake,
            storage: &storage,
            stop,
            password_file,
            anvil,
        };
        driver::run(conn, session, env).await;
    }));
}

/// Best effort: one reply line into the socket buffer, then close.
fn refuse(tcp: &TcpStream, reply: &Reply) {
    let _ = tcp.try_write(&reply.to_wire());
}
