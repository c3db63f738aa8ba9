//! Per-client connection counts and event rates (Postfix's anvil(8) server, kept in the
//! smtpd process: mailroom has one SMTP server, so a table in memory sees every session).
//!
//! For each service (listener role) and client address the table holds the number of open
//! sessions and, per `anvil_rate_time_unit`, how many connections, MAIL FROM, RCPT TO, new
//! TLS sessions and AUTH commands the client made. As in Postfix's anvil, a window starts
//! with the client's first event and its counts start again at the first event after the
//! window has passed (a fixed window, not a sliding one). Limits and replies are Postfix's
//! smtpd's:
//!
//! | parameter | where | reply | warning |
//! |---|---|---|---|
//! | `smtpd_client_connection_count_limit` | connect | `421 4.7.0 HOST Error: too many connections from IP` | `Connection concurrency limit exceeded: N from CLIENT for service S` |
//! | `smtpd_client_connection_rate_limit` | connect | the same 421 | `Connection rate limit exceeded: ...` |
//! | `smtpd_client_message_rate_limit` | MAIL | `450 4.7.1 Error: too much mail from IP` | `Message delivery request rate limit exceeded: ...` |
//! | `smtpd_client_recipient_rate_limit` | RCPT | `450 4.7.1 Error: too many recipients from IP` | `Recipient address rate limit exceeded: ...` |
//! | `smtpd_client_new_tls_session_rate_limit` | STARTTLS | `454 4.7.0 Error: too many new TLS sessions from CLIENT`; after a handshake over the limit `421 4.7.0` and close | `Refusing STARTTLS request from CLIENT for service S`, `New TLS session rate limit exceeded: ...` |
//! | `smtpd_client_auth_rate_limit` | AUTH | `450 4.7.1 Error: too many AUTH commands from IP` | `AUTH command rate limit exceeded: ...` |
//!
//! Clients in `smtpd_client_event_limit_exceptions` (default `$mynetworks`) are neither
//! counted against nor limited by any of these (Postfix's "hogger list").
//!
//! As in Postfix 3.8, a "client" is a network, not one address: IPv4 addresses count by
//! `smtpd_client_ipv4_prefix_length` (default 32, each alone) and IPv6 addresses by
//! `smtpd_client_ipv6_prefix_length` (default 84), so a host given a /64 cannot escape the
//! limits by taking a new address for each connection. Replies and log lines still name the
//! client's own address. An IPv4-mapped IPv6 address counts as its IPv4 address.
//!
//! Memory is bounded: an entry whose client has no open session is dropped once its window
//! has passed (swept at most once per time unit, and whenever the table is full); past
//! [`MAX_CLIENTS`] entries the idle ones go first, so a flood from many addresses costs at
//! most that many entries plus one per open session.
//!
//! Security stance: keys are peer addresses from the kernel; nothing the client sends is
//! stored. Pure bookkeeping: the time is a parameter, so the rules are unit-tested.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::relay::Network;
use proto::reply::Reply;

/// Table entries past which idle clients are dropped early.
const MAX_CLIENTS: usize = 100_000;

/// What anvil takes from the configuration.
#[derive(Debug, Clone)]
pub struct AnvilSettings {
    /// `anvil_rate_time_unit`.
    pub unit: Duration,
    /// `smtpd_client_connection_count_limit` (0 = none), and the rate limits.
    pub connection_count: usize,
    pub connection_rate: usize,
    pub message_rate: usize,
    pub recipient_rate: usize,
    pub new_tls_rate: usize,
    pub auth_rate: usize,
    /// `smtpd_client_event_limit_exceptions` (addresses and CIDR blocks).
    pub exceptions: Vec<Network>,
    /// `smtpd_client_ipv4_prefix_length` and `smtpd_client_ipv6_prefix_length`.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
}

impl AnvilSettings {
    pub fn from_config(cfg: &config::Config) -> AnvilSettings {
        AnvilSettings {
            unit: cfg.anvil_rate_time_unit.max(Duration::from_secs(1)),
            connection_count: cfg.smtpd_client_connection_count_limit,
            connection_rate: cfg.smtpd_client_connection_rate_limit,
            message_rate: cfg.smtpd_client_message_rate_limit,
            recipient_rate: cfg.smtpd_client_recipient_rate_limit,
            new_tls_rate: cfg.smtpd_client_new_tls_session_rate_limit,
            auth_rate: cfg.smtpd_client_auth_rate_limit,
            exceptions: cfg
                .smtpd_client_event_limit_exceptions
                .iter()
                .filter_map(|entry| Network::parse(entry))
                .collect(),
            ipv4_prefix: cfg.smtpd_client_ipv4_prefix_length,
            ipv6_prefix: cfg.smtpd_client_ipv6_prefix_length,
        }
    }

    /// The table key of a client address: its network under the configured prefix length.
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let keep = u32::MAX.checked_shl(32 - u32::from(self.ipv4_prefix.min(32)));
                IpAddr::V4((u32::from(v4) & keep.unwrap_or(0)).into())
            }
            IpAddr::V6(v6) => {
                let keep = u128::MAX.checked_shl(128 - u32::from(self.ipv6_prefix.min(128)));
                IpAddr::V6((u128::from(v6) & keep.unwrap_or(0)).into())
            }
        }
    }

    fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exceptions.iter().any(|n| n.contains(ip))
    }
}

/// The events counted per time unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Connect,
    Mail,
    Rcpt,
    NewTls,
    Auth,
}

#[derive(Debug, Clone, Copy)]
struct Remote {
    /// Open sessions.
    count: usize,
    /// When the current window started.
    start: Instant,
    /// Events in the current window, indexed by `Event as usize`.
    rates: [usize; 5],
}

impl Remote {
    fn new(now: Instant) -> Remote {
        Remote {
            count: 0,
            start: now,
            rates: [0; 5],
        }
    }

    /// Postfix's ANVIL_REMOTE_INCR_RATE: a window that has passed starts again now.
    fn renew(&mut self, unit: Duration, now: Instant) {
        if now.saturating_duration_since(self.start) > unit {
            self.start = now;
            self.rates = [0; 5];
        }
    }

    fn idle_and_expired(&self, unit: Duration, now: Instant) -> bool {
        self.count == 0 && now.saturating_duration_since(self.start) > unit
    }
}

#[derive(Debug)]
struct Table {
    clients: HashMap<IpAddr, Remote>,
    last_sweep: Instant,
}

/// One service's table.
#[derive(Debug)]
pub struct Anvil {
    table: Mutex<Table>,
}

impl Anvil {
    pub fn new() -> Arc<Anvil> {
        Arc::new(Anvil {
            table: Mutex::new(Table {
                clients: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table) -> T) -> T {
        f(&mut self.table.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A new session: its count and connection rate, both including it.
    pub fn connect(&self, ip: IpAddr, unit: Duration, now: Instant) -> (usize, usize) {
        self.with(|t| {
            t.make_room(unit, now);
            let remote = t.clients.entry(ip).or_insert_with(|| Remote::new(now));
            remote.renew(unit, now);
            remote.count += 1;
            remote.rates[Event::Connect as usize] += 1;
            (remote.count, remote.rates[Event::Connect as usize])
        })
    }

    /// A session ended; its entry stays (with its rates) until its window passes.
    pub fn disconnect(&self, ip: IpAddr) {
        self.with(|t| {
            if let Some(remote) = t.clients.get_mut(&ip) {
                remote.count = remote.count.saturating_sub(1);
            }
        })
    }

    /// Counts one `event` and returns the client's rate including it.
    pub fn count(&self, ip: IpAddr, event: Event, unit: Duration, now: Instant) -> usize {
        self.with(|t| {
            t.make_room(unit, now);
            let remote = t.clients.entry(ip).or_insert_with(|| Remote::new(now));
            remote.renew(unit, now);
            remote.rates[event as usize] += 1;
            remote.rates[event as usize]
        })
    }

    /// The client's current rate of `event`, without counting one.
    pub fn rate(&self, ip: IpAddr, event: Event, unit: Duration, now: Instant) -> usize {
        self.with(|t| match t.clients.get(&ip) {
            Some(r) if now.saturating_duration_since(r.start) <= unit => r.rates[event as usize],
            _ => 0,
        })
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.with(|t| t.clients.len())
    }
}

impl Table {
    /// Drops expired idle entries once per time unit or when full; when still full, every
    /// idle entry (their rates are forgotten early rather than memory growing).
    fn make_room(&mut self, unit: Duration, now: Instant) {
        let full = self.clients.len() >= MAX_CLIENTS;
        if !full && now.saturating_duration_since(self.last_sweep) <= unit {
            return;
        }
        self.last_sweep = now;
        self.clients.retain(|_, r| !r.idle_and_expired(unit, now));
        if self.clients.len() >= MAX_CLIENTS {
            self.clients.retain(|_, r| r.count > 0);
        }
    }
}

/// A client's claim on its service's session count; released on drop.
pub struct Slot {
    anvil: Arc<Anvil>,
    /// The client's table key (its network).
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.anvil.disconnect(self.ip);
    }
}

/// Admission: counts the connection unless the client is exempt, and refuses it over the
/// count or rate limit (Postfix logs and answers both alike). `Ok(None)`: exempt, uncounted.
pub fn admit(
    anvil: &Arc<Anvil>,
    settings: &AnvilSettings,
    client: &ClientId<'_>,
) -> Result<Option<Slot>, Reply> {
    if settings.is_exempt(client.ip) {
        return Ok(None);
    }
    let key = settings.key(client.ip);
    let (count, rate) = anvil.connect(key, settings.unit, Instant::now());
    let slot = Slot {
        anvil: anvil.clone(),
        ip: key,
    };
    let refusal =
        || proto::reply::fixed::too_many_connections_from(client.hostname, &client.ip.to_string());
    if over(settings.connection_count, count) {
        client.warn("Connection concurrency limit exceeded", count);
        return Err(refusal());
    }
    if over(settings.connection_rate, rate) {
        client.warn("Connection rate limit exceeded", rate);
        return Err(refusal());
    }
    Ok(Some(slot))
}

fn over(limit: usize, value: usize) -> bool {
    limit > 0 && value > limit
}

/// Who the client is, for replies and log lines.
pub struct ClientId<'a> {
    pub ip: IpAddr,
    /// `unknown[IP]`.
    pub label: &'a str,
    pub service: &'static str,
    /// `myhostname`, in the 421 replies.
    pub hostname: &'a str,
}

impl<'a> ClientId<'a> {
    fn of(session: &'a crate::session::Session, label: &'a str) -> ClientId<'a> {
        ClientId {
            ip: session.client.ip,
            label,
            service: session.settings.role.name(),
            hostname: &session.settings.hostname,
        }
    }

    fn warn(&self, what: &str, value: usize) {
        warn!(target: "smtpd", "{what}: {value} from {} for service {}", self.label, self.service);
    }
}

/// One session's door to its service's table: the event checks of MAIL, RCPT, STARTTLS
/// and AUTH. A session of an exempt client gets one that never refuses.
#[derive(Clone)]
pub struct ClientEvents {
    anvil: Arc<Anvil>,
    settings: Arc<AnvilSettings>,
    exempt: bool,
}

impl ClientEvents {
    pub fn new(anvil: Arc<Anvil>, settings: Arc<AnvilSettings>, ip: IpAddr) -> ClientEvents {
        let exempt = settings.is_exempt(ip);
        ClientEvents {
            anvil,
            settings,
            exempt,
        }
    }

    /// The client network `ip` counts under (also the key of the AUTH failure counts).
    pub fn key(&self, ip: IpAddr) -> IpAddr {
        self.settings.key(ip)
    }

    /// Counts `event` and returns the refusal when the client is over its limit.
    pub fn check(&self, event: Event, client: &ClientId<'_>) -> Option<Reply> {
        let limit = self.limit(event);
        if self.exempt || limit == 0 {
            return None;
        }
        let key = self.settings.key(client.ip);
        let rate = self
            .anvil
            .count(key, event, self.settings.unit, Instant::now());
        if rate <= limit {
            return None;
        }
        let (what, reply) = refusal(event, client);
        client.warn(what, rate);
        Some(reply)
    }

    /// STARTTLS: `454 4.7.0` when the client already negotiated too many new sessions
    /// (checked without counting; the handshake is counted by [`ClientEvents::check`]).
    pub fn starttls(&self, client: &ClientId<'_>) -> Option<Reply> {
        let limit = self.settings.new_tls_rate;
        if self.exempt || limit == 0 {
            return None;
        }
        let key = self.settings.key(client.ip);
        let rate = self
            .anvil
            .rate(key, Event::NewTls, self.settings.unit, Instant::now());
        if rate < limit {
            return None;
        }
        warn!(target: "smtpd", "Refusing STARTTLS request from {} for service {}", client.label, client.service);
        Some(Reply::new(
            454,
            "4.7.0",
            format!("Error: too many new TLS sessions from {}", client.label),
        ))
    }

    fn limit(&self, event: Event) -> usize {
        let s = &self.settings;
        match event {
            Event::Connect => s.connection_rate,
            Event::Mail => s.message_rate,
            Event::Rcpt => s.recipient_rate,
            Event::NewTls => s.new_tls_rate,
            Event::Auth => s.auth_rate,
        }
    }
}

/// The rate limit of a MAIL (not nested), RCPT (inside a transaction) or AUTH command, checked
/// before the session handles it, as Postfix's smtpd checks them first.
pub fn session_check(
    session: &crate::session::Session,
    events: &ClientEvents,
    command: &proto::command::Command,
) -> Option<Reply> {
    use proto::command::Command;
    let event = match command {
        Command::Mail { .. } if session.tx.is_none() => Event::Mail,
        Command::Rcpt { .. } if session.tx.is_some() => Event::Rcpt,
        Command::Auth { .. } if session.auth.is_none() => Event::Auth,
        _ => return None,
    };
    let label = session.client.label();
    events.check(event, &ClientId::of(session, label))
}

/// STARTTLS from a client that negotiated too many new TLS sessions: `454 4.7.0`.
pub fn starttls_check(session: &crate::session::Session, events: &ClientEvents) -> Option<Reply> {
    let label = session.client.label();
    events.starttls(&ClientId::of(session, label))
}

/// After a handshake: a new (not resumed) session is counted, and over the limit the
/// session ends with `421 4.7.0` (Postfix).
pub fn new_tls_session(
    session: &crate::session::Session,
    events: &ClientEvents,
    resumed: bool,
) -> Option<Reply> {
    if resumed {
        return None;
    }
    let label = session.client.label();
    events.check(Event::NewTls, &ClientId::of(session, label))
}

/// Postfix's warning and reply for an event over its limit.
fn refusal(event: Event, client: &ClientId<'_>) -> (&'static str, Reply) {
    let ip = client.ip;
    match event {
        Event::Connect => (
            "Connection rate limit exceeded",
            proto::reply::fixed::too_many_connections_from(client.hostname, &ip.to_string()),
        ),
        Event::Mail => (
            "Message delivery request rate limit exceeded",
            Reply::new(450, "4.7.1", format!("Error: too much mail from {ip}")),
        ),
        Event::Rcpt => (
            "Recipient address rate limit exceeded",
            Reply::new(
                450,
                "4.7.1",
                format!("Error: too many recipients from {ip}"),
            ),
        ),
        Event::NewTls => (
            "New TLS session rate limit exceeded",
            Reply::new(
                421,
                "4.7.0",
                format!(
                    "{} Error: too many new TLS sessions from {}",
                    client.hostname, client.label
                ),
            ),
        ),
        Event::Auth => (
            "AUTH command rate limit exceeded",
            Reply::new(
                450,
                "4.7.1",
                format!("Error: too many AUTH commands from {ip}"),
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
