//! The SMTP server: RFC 5321 ESMTP intake with STARTTLS, AUTH, relay control and hard limits.
//! This is the part of mailroom the internet talks to, so it is strict, bounded and never
//! acknowledges what is not durable.
//!
//! # Job, inputs → outputs
//! TCP connections on the `smtpd_listen` (role `smtp`), `submission_listen` (`submission`)
//! and `reinject_listen` (`reinject`) addresses → messages in the queue store
//! (`Store::enqueue`), each announced to the scheduler through the `queued` hook, plus
//! Postfix-style `mailroom/smtpd[pid]` log lines.
//!
//! The path of a command, one file per step (`proto::` is the SMTP codec crate, shared
//! with `sendmail -bs`):
//! ```text
//!  settings.rs  SmtpdSettings::from_config: the only reader of the Config, at the edge
//!  listener.rs  accept, connection limits, shutdown; stress.rs: overload, eviction;
//!               anvil.rs: per-client counts and rates (MAIL, RCPT, STARTTLS, AUTH too);
//!               rebind.rs: reload (listeners follow the configuration, new certificates)
//!    └ conn.rs       bounded, timed reads; batched replies; STARTTLS stream swap
//!      └ proto::line     command-line framing (≤ 1000 bytes)
//!      └ proto::command  line → Command, smtpd's strict dialect      pure, fuzzed
//!      └ session/        Command → Action: states, relay (relay.rs)  pure
//!      └ proto::data     DATA/BDAT bytes → stored message            pure, fuzzed
//!      └ driver.rs       runs it all; tls.rs, auth.rs (sasl.rs, auth_guard.rs) for the sub-dialogues
//!      └ checks.rs       at MAIL, RCPT, DATA, end of data: the session's request →
//!        restrictions/   Postfix's smtpd_*_restrictions (DNS, tables, policy) → verdict
//!      └ message.rs      header limits, Received:, envelope
//!      └ content.rs      header_checks/body_checks verdict → reply, hold, discard
//!      └ milters.rs      smtpd_milters at each SMTP stage (crate `milter`)
//!      └ intake.rs       disk guard; durable enqueue, then 250
//! ```
//!
//! # Invariants
//! 1. `250 2.0.0 Ok: queued as ID` is sent only after `Store::enqueue` returned `Ok`
//!    (fdatasync done, DESIGN invariant 1); any other outcome is a 4xx/5xx or no reply.
//! 2. No open relay: a recipient outside `mydestination`/`relay_domains` needs a client in
//!    `mynetworks` or an authenticated one (`smtpd_relay_restrictions`, whose default says
//!    so; a restriction that cannot be evaluated refuses with 451 4.3.5, never permits).
//! 3. Only `<CRLF>.<CRLF>` ends DATA (no SMTP smuggling); bare LF/CR are refused or
//!    normalised per `smtpd_forbid_bare_newline`, never a line end of the end-of-data mark.
//! 4. Memory per session is bounded: a command line by 1000 bytes, a message (whatever
//!    its line lengths: long text lines are kept, as in Postfix) by `message_size_limit`;
//!    time per session by `smtpd_timeout` per read (per request under stress) and
//!    `smtpd_session_deadline` in all; sessions by `smtpd_process_limit` and per IP by
//!    `smtpd_client_connection_count_limit`; the per-client rate table by its size cap. Password checks run on a few dedicated
//!    threads, so failed AUTH floods cost bounded memory (`auth_guard.rs`).
//! 5. Bad input gets a reply code, never a crash of the daemon.
//!
//! # Security stance
//! Runs inside the daemon with the queue owner's rights and trusts nothing a client sends:
//! every byte is parsed strictly and bounded. Trust comes only from the peer address
//! (`mynetworks`) or a password verified inside TLS. No reverse DNS at connect: clients are
//! logged as `unknown[IP]`, so no lookup can stall a session or be spoofed into trust (only
//! `reject_unknown_*client_hostname`, if configured, asks for the name, and only to refuse).

#![forbid(unsafe_code)]

mod anvil;
mod auth;
mod auth_guard;
mod checks;
mod conn;
mod content;
mod driver;
mod exchange;
mod intake;
mod listener;
mod message;
mod milters;
mod rebind;
mod relay;
pub mod restrictions;
mod sasl;
pub mod session;
mod settings;
mod stress;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use envelope::QueueId;
use queue::Store;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::warn;

pub use listener::STOP_GRACE;
pub use relay::RelayPolicy;
pub use sasl::{decode_base64, encode_base64};
pub use session::{RecipientCheck, VirtualRecipientCheck};
pub use settings::{SettingsSource, SmtpdSettings};

/// What the daemon gives the SMTP server.
pub struct Hooks {
    /// The settings of this moment ([`SmtpdSettings::follow`] the daemon's configuration).
    pub settings: SettingsSource,
    pub store: Store,
    /// Whether a recipient in a local domain exists (`local_recipient_maps`); `None` accepts
    /// every local recipient.
    pub local_recipient: Option<session::RecipientCheck>,
    /// Address rewriting (canonical, masquerade, virtual aliases, relocated): applied to
    /// each message before it is queued, and asked at RCPT; the daemon reloads it.
    pub rewrite: Arc<rewrite::Live>,
    /// Whether a recipient in a virtual mailbox domain is in `virtual_mailbox_maps`;
    /// `None` accepts them all (and unknown ones bounce later).
    pub virtual_recipient: Option<session::VirtualRecipientCheck>,
    /// Called with each newly queued message's ID (`QueueManager::schedule(id, 0)`).
    pub queued: Arc<dyn Fn(QueueId) + Send + Sync>,
}

#[derive(Debug, thiserror::Error)]
pub enum SmtpdError {
    #[error("cannot listen on {address} ({role}): {source}")]
    Bind {
        address: SocketAddr,
        role: &'static str,
        source: std::io::Error,
    },
}

/// The running SMTP server: its task and the door to reload it.
pub struct Server {
    /// Ends once the listeners are closed and the sessions finished (at most
    /// [`STOP_GRACE`] after the stop).
    pub task: JoinHandle<()>,
    pub reload: Reload,
}

/// Asks the server to follow the current configuration: listeners whose address changed
/// are closed or opened, TLS certificates re-read; sessions in progress are not touched.
#[derive(Clone)]
pub struct Reload(mpsc::UnboundedSender<()>);

impl Reload {
    /// Call after the settings source returns the new settings.
    pub fn request(&self) {
        let _ = self.0.send(());
    }
}

/// Binds the configured listeners (one that cannot be bound is logged and skipped), then
/// serves until `stop` becomes true. Call inside the runtime.
pub fn spawn(hooks: Hooks, stop: watch::Receiver<bool>) -> Server {
    let settings = (hooks.settings)();
    spawn_prepared(hooks, prepare(&settings), stop)
}

/// What needs the privileges the daemon starts with: the listening sockets (port 25 needs
/// root) and the TLS key (often readable by root only). A root daemon makes it before it
/// gives up root, then serves with [`spawn_prepared`] as `mail_owner`.
pub struct Prepared {
    listeners: Vec<(listener::ListenKey, std::net::TcpListener)>,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Binds the listeners and loads the TLS key; needs no runtime.
pub fn prepare(settings: &SmtpdSettings) -> Prepared {
    let listeners = listener::bind_all(settings);
    let tls = match settings.wants_tls() {
        true => tls::acceptor(settings),
        false => None,
    };
    Prepared { listeners, tls }
}

/// [`spawn`] with listeners and TLS made earlier by [`prepare`]. Call inside the runtime.
pub fn spawn_prepared(hooks: Hooks, prepared: Prepared, stop: watch::Receiver<bool>) -> Server {
    let settings = (hooks.settings)();
    warn_about_setup(&settings, prepared.tls.is_some());
    let intake = intake::Intake {
        store: hooks.store,
        queued: hooks.queued,
        tls: std::sync::RwLock::new(prepared.tls),
        local_recipient: hooks.local_recipient,
        rewrite: hooks.rewrite,
        virtual_recipient: hooks.virtual_recipient,
        auth: auth_guard::AuthGuard::new(),
    };
    let (reload, reloads) = mpsc::unbounded_channel();
    let task = rebind::start(
        listener::into_tokio(prepared.listeners),
        hooks.settings,
        intake,
        settings.process_limit,
        stop,
        reloads,
    );
    Server {
        task,
        reload: Reload(reload),
    }
}

/// Configuration that works but cannot do what the operator probably wants.
fn warn_about_setup(settings: &SmtpdSettings, tls: bool) {
    for problem in &settings.session.restrictions.problems {
        warn!(target: "smtpd", "{problem}");
    }
    for entry in &settings.invalid_networks {
        warn!(target: "smtpd", "mynetworks: ignoring {entry:?}: not an address or CIDR block");
    }
    for problem in &settings.session.milters.problems {
        warn!(target: "smtpd", "{problem}: its default action applies to every message");
    }
    if !tls && settings.listens_as(session::Role::Submission) {
        warn!(target: "smtpd", "submission listeners need TLS for AUTH, which is unavailable: they will refuse all mail");
    }
    if !tls && settings.tls_level == config::TlsLevel::Encrypt {
        warn!(target: "smtpd", "smtpd_tls_security_level = encrypt but TLS is unavailable: all mail will be refused");
    }
}
