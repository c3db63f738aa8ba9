//! The SMTP session state machine (RFC 5321 section 4.1.4 ordering, RFC 3207 STARTTLS,
//! RFC 4954 AUTH, RFC 3030 BDAT): commands in, [`Action`]s out. No I/O: the connection
//! driver (`conn.rs`) reads lines, calls [`Session::handle`], and does what the action says.
//!
//! # States
//! ```text
//!  connected ──EHLO/HELO──► greeted ──MAIL──► in transaction ──RCPT ok──► has recipients
//!      ▲                      ▲  ▲                 │                          │
//!      │ STARTTLS ok          │  └── RSET, end of DATA/BDAT LAST, error ──────┘
//!      └──(forgets greeting, transaction and auth; RFC 3207 section 4.2)
//! ```
//! * MAIL needs a greeting; on a `submission` listener also AUTH; with
//!   `smtpd_tls_security_level = encrypt` also TLS.
//! * AUTH is offered only inside TLS and only where enabled, at most once per session, never
//!   inside a transaction.
//! * DATA needs at least one accepted recipient; BDAT chunks are always read (RFC 3030
//!   requires it) even when refused, so the client stays in sync.
//!
//! # Invariants
//! * A recipient outside `mydestination`/`relay_domains` is accepted only from a client in
//!   `mynetworks` or an authenticated one (see `relay.rs`).
//! * The transaction is forgotten after every end of data, whatever the outcome.
//!
//! Security stance: everything here is attacker-controlled input; the only trust decisions
//! are `mynetworks` (by peer address, which TCP makes hard to forge) and a verified AUTH.

pub mod stats;
mod transaction;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use config::Stressed;

use crate::relay::RelayPolicy;
use crate::sasl::{self, Mechanism};
use crate::stress::StressFlag;
use crate::SmtpdSettings;
use proto::command::Command;
use proto::data::BareNewline;
use proto::reply::{fixed, Reply};

pub use transaction::{AcceptedRcpt, ChunkEnd, PendingRcpt, Transaction};

/// What a listener is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Port 25 style: anyone may send to our domains; relay needs mynetworks or AUTH.
    Smtp,
    /// Port 587 style (RFC 6409): AUTH (inside TLS) is required before MAIL.
    Submission,
    /// Loopback return path of an after-queue content filter: mail queued here skips the
    /// filter (envelope origin `reinject`). No TLS, no AUTH; relay as for `smtp`.
    Reinject,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Smtp => "smtp",
            Role::Submission => "submission",
            Role::Reinject => "reinject",
        }
    }
}

/// Answers whether an address in a local domain is a known recipient (aliases and users, as
/// `local_recipient_maps` says).
#[derive(Clone)]
pub struct RecipientCheck(pub std::sync::Arc<dyn Fn(&str) -> bool + Send + Sync>);

impl std::fmt::Debug for RecipientCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecipientCheck")
    }
}

/// For an address in a virtual mailbox domain, whether `virtual_mailbox_maps` knows it
/// (`Some(known)`); `None` for any other address. A virtual mailbox domain is also a
/// destination the server accepts mail for from anyone (Postfix's
/// `permit_auth_destination`).
#[derive(Clone)]
pub struct VirtualRecipientCheck(pub std::sync::Arc<VirtualLookup>);

/// `address` → `None` (not a virtual mailbox domain) or `Some(known)`.
pub type VirtualLookup = dyn Fn(&str) -> Option<bool> + Send + Sync;

impl std::fmt::Debug for VirtualRecipientCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VirtualRecipientCheck")
    }
}

/// The session's view of the [`SmtpdSettings`], computed once per connection.
#[derive(Debug, Clone)]
pub struct Settings {
    pub role: Role,
    pub hostname: String,
    pub banner: String,
    pub myorigin: String,
    pub message_size_limit: u64,
    pub header_size_limit: u64,
    pub hopcount_limit: u32,
    pub recipient_limit: usize,
    pub recipient_overshoot_limit: usize,
    /// `RCPT TO:<postmaster>` (no domain) goes here: the postmaster of a local domain.
    pub postmaster: String,
    pub tls_available: bool,
    pub tls_required: bool,
    pub auth_enabled: bool,
    /// `smtpd_client_auth_failure_limit` per `anvil_rate_time_unit` (0 = none).
    pub auth_failure_limit: usize,
    pub auth_failure_window: Duration,
    pub vrfy_disabled: bool,
    pub error_sleep: Duration,
    pub soft_error_limit: usize,
    pub hard_error_limit: Stressed<usize>,
    pub junk_command_limit: Stressed<usize>,
    pub helo_required: bool,
    /// `smtpd_forbid_unauth_pipelining`, off on `submission` listeners.
    pub forbid_unauth_pipelining: bool,
    /// The server's overload state (see `stress.rs`).
    pub stress: StressFlag,
    pub bare_newline: BareNewline,
    pub relay: RelayPolicy,
    /// `None`: every recipient in a local domain is accepted (and unknown ones bounce later).
    pub local_recipient: Option<RecipientCheck>,
    /// The address rewriter of this moment (virtual alias domains, relocated users).
    pub rewriter: Arc<rewrite::Rewriter>,
    /// `None`: no virtual mailbox domains are checked (or there are none).
    pub virtual_recipient: Option<VirtualRecipientCheck>,
    /// The `smtpd_*_restrictions` lists (`restrictions/`).
    pub restrictions: Arc<crate::restrictions::Restrictions>,
    /// `smtpd_milters` and the milter macros (none on `reinject` listeners: that mail
    /// went through the milters when it first came in, as Postfix's `no_milters`).
    pub milters: Arc<milter::MilterSettings>,
}

impl Settings {
    /// The settings of a session on a `role` listener: the configured ones
    /// ([`SmtpdSettings::session`]) with what the role changes.
    pub fn new(s: &SmtpdSettings, role: Role, tls_available: bool) -> Settings {
        let configured = &s.session;
        Settings {
            role,
            tls_available: tls_available && role != Role::Reinject,
            tls_required: configured.tls_required && role != Role::Reinject,
            auth_enabled: match role {
                Role::Submission => true,
                Role::Smtp => configured.auth_enabled,
                Role::Reinject => false,
            },
            // Postfix's stock master.cf turns it off for submission (clients such as
            // Thunderbird pipeline QUIT after EHLO).
            forbid_unauth_pipelining: configured.forbid_unauth_pipelining
                && role != Role::Submission,
            milters: match role {
                Role::Reinject => Arc::default(),
                Role::Smtp | Role::Submission => configured.milters.clone(),
            },
            ..configured.clone()
        }
    }
}

/// The peer. Reverse DNS is not looked up (no network waits at connect): the name is
/// always `unknown`, as Postfix logs a client without rDNS.
#[derive(Debug, Clone)]
pub struct Client {
    pub ip: IpAddr,
    /// The client's source port (0 when unknown): milters get it in `SMFIC_CONNECT`.
    pub port: u16,
    pub name: String,
    /// `name[ip]`, made once: a session logs it on several lines (connect, client=,
    /// disconnect), and formatting an address costs more than the rest of such a line.
    label: String,
}

impl Client {
    pub fn new(ip: IpAddr) -> Client {
        let ip = crate::relay::canonical(ip);
        let name = "unknown".to_string();
        Client {
            label: format!("{name}[{ip}]"),
            ip,
            port: 0,
            name,
        }
    }

    /// `unknown[192.0.2.1]`, the form every log line uses.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// The disk guard, injected so the state machine stays pure.
pub trait Storage {
    /// `Err(reply)` (452 4.3.1) when a message of `size` bytes would take the queue file
    /// system below `queue_minfree`.
    fn has_room(&self, size: u64) -> Result<(), Reply>;
}

/// What the connection driver must do next.
#[derive(Debug)]
pub enum Action {
    Reply(Reply),
    /// Send the reply, then close the connection.
    Close(Reply),
    /// Send 220, then run the TLS handshake (discarding any pipelined plaintext).
    StartTls,
    /// Send 354, then read the message with a dot-mode decoder.
    Data,
    /// Read the `size` octets of a chunk. With a refusal, discard them and send it.
    /// `first`: the transaction's first chunk, accepted so far (`smtpd_data_restrictions`
    /// are due, as Postfix 3.4+ applies them at the first BDAT).
    Bdat {
        size: u64,
        last: bool,
        refusal: Option<Reply>,
        first: bool,
    },
    /// Run a SASL exchange, check the password, then call [`Session::authenticated`].
    Auth {
        mechanism: Mechanism,
        initial: Option<String>,
    },
    /// Evaluate the restrictions for this recipient ([`Session::restriction_request`]),
    /// then reply what [`Session::finish_rcpt`] says.
    Rcpt(Box<PendingRcpt>),
    /// A recipient taken without the restrictions (bare `<postmaster>`, RFC 5321 4.5.1):
    /// only the milters are left to ask, then [`Session::accept_rcpt`] (Postfix tells
    /// them of every recipient).
    RcptAccepted(Box<AcceptedRcpt>),
}

/// One SMTP session.
#[derive(Debug)]
pub struct Session {
    pub settings: Arc<Settings>,
    pub client: Client,
    /// The EHLO/HELO argument.
    pub helo: Option<String>,
    pub esmtp: bool,
    /// `TLSv1.3 with cipher ...` once STARTTLS completed.
    pub tls: Option<String>,
    /// Mechanism and user name after a successful AUTH.
    pub auth: Option<(Mechanism, String)>,
    pub tx: Option<Transaction>,
    /// Client errors so far (Postfix's error count).
    pub errors: usize,
    /// NOOP, VRFY, RSET, HELO and EHLO since the last queued message.
    pub junk_commands: usize,
    /// The reply about to be sent must not count as an error (a recipient within
    /// `smtpd_recipient_overshoot_limit`).
    pub forgive_reply: bool,
    pub stats: stats::Stats,
    /// The last command verb, upper case, for `timeout after RCPT` and the like.
    pub last_verb: &'static str,
    /// The `smtpd_milters` connections of this session (`milters.rs` drives them; the
    /// state machine never touches them).
    pub milters: milter::SessionMilters,
    /// A milter's answer was a 421 (`SMFIR_SHUTDOWN` or a 421 reply code): the session
    /// ends after that reply, as Postfix hangs up after any 421.
    pub milter_hangup: bool,
}

impl Session {
    pub fn new(settings: Arc<Settings>, client: Client) -> Session {
        Session {
            settings,
            client,
            helo: None,
            esmtp: false,
            tls: None,
            auth: None,
            tx: None,
            errors: 0,
            junk_commands: 0,
            forgive_reply: false,
            stats: stats::Stats::default(),
            last_verb: "CONNECT",
            milters: milter::SessionMilters::default(),
            milter_hangup: false,
        }
    }

    pub fn greeting(&self) -> Reply {
        Reply::new(220, "", self.settings.banner.clone())
    }

    /// Handles one parsed command.
    pub fn handle(&mut self, command: Command, storage: &dyn Storage) -> Action {
        self.last_verb = upper_verb(command.verb());
        if is_junk(&command) {
            self.count_junk();
        }
        match command {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail { sender, params } => Action::Reply(self.mail(sender, params, storage)),
            Command::Rcpt { recipient, params } => self.rcpt(recipient, params),
            Command::Data => self.data(storage),
            Command::Bdat { size, last } => self.bdat(size, last, storage),
            Command::Rset => {
                self.tx = None;
                Action::Reply(fixed::ok())
            }
            Command::Noop => Action::Reply(fixed::ok()),
            Command::Quit => Action::Close(fixed::bye()),
            Command::Vrfy(_) => Action::Reply(fixed::vrfy()),
            Command::Help => Action::Reply(fixed::help()),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(&mechanism, initial),
            Command::NotImplemented(_) => Action::Reply(fixed::not_implemented()),
        }
    }

    /// Counts an error reply (Postfix's error count drives the soft and hard limits).
    pub fn note_reply(&mut self, reply: &Reply) {
        if reply.is_error() && !std::mem::take(&mut self.forgive_reply) {
            self.errors += 1;
        }
    }

    /// True once the client made `smtpd_hard_error_limit` errors: reply 421 and close.
    pub fn too_many_errors(&self) -> bool {
        let stress = self.settings.stress.get();
        self.errors >= self.settings.hard_error_limit.get(stress)
    }

    /// Postfix: past `smtpd_junk_command_limit`, each junk command is also an error, so a
    /// client cannot hold a session open with NOOPs.
    fn count_junk(&mut self) {
        let limit = self
            .settings
            .junk_command_limit
            .get(self.settings.stress.get());
        if self.junk_commands > limit {
            self.errors += 1;
        }
        self.junk_commands += 1;
    }

    /// A message was queued: the error and junk counts start again (Postfix).
    pub fn delivered(&mut self) {
        self.errors = 0;
        self.junk_commands = 0;
    }

    /// Under `smtpd_forbid_unauth_pipelining`: must nothing follow `command` until its
    /// reply? RFC 2920 section 3.1: EHLO, HELO, DATA, VRFY and NOOP end a group (and
    /// Postfix adds: every command of a client that did not say EHLO).
    pub fn must_end_group(&self, command: &Command) -> bool {
        self.settings.forbid_unauth_pipelining
            && (!self.esmtp
                || matches!(
                    command,
                    Command::Ehlo(_)
                        | Command::Helo(_)
                        | Command::Data
                        | Command::Noop
                        | Command::Vrfy(_)
                ))
    }

    /// True once replies must be slowed down (`smtpd_soft_error_limit`).
    pub fn slow_down(&self) -> bool {
        self.errors >= self.settings.soft_error_limit
    }

    fn hello(&mut self, name: String, esmtp: bool) -> Action {
        self.tx = None;
        self.helo = Some(name);
        self.esmtp = esmtp;
        if !esmtp {
            return Action::Reply(Reply::new(250, "", self.settings.hostname.clone()));
        }
        Action::Reply(Reply::multi(250, self.ehlo_lines()))
    }

    fn ehlo_lines(&self) -> Vec<String> {
        let s = &self.settings;
        let mut lines = vec![s.hostname.clone(), "PIPELINING".to_string()];
        lines.push(match s.message_size_limit {
            0 => "SIZE".to_string(),
            limit => format!("SIZE {limit}"),
        });
        if s.tls_available && self.tls.is_none() {
            lines.push("STARTTLS".to_string());
        }
        if self.auth_offered() {
            lines.push(format!("AUTH {}", sasl::MECHANISMS));
        }
        for ext in [
            "ENHANCEDSTATUSCODES",
            "8BITMIME",
            "DSN",
            "SMTPUTF8",
            "CHUNKING",
        ] {
            lines.push(ext.to_string());
        }
        lines
    }

    fn auth_offered(&self) -> bool {
        self.settings.auth_enabled && self.tls.is_some() && self.auth.is_none()
    }

    fn starttls(&mut self) -> Action {
        if self.tls.is_some() {
            return Action::Reply(fixed::tls_already_active());
        }
        if !self.settings.tls_available {
            return Action::Reply(fixed::not_implemented());
        }
        Action::StartTls
    }

    /// After a successful handshake: forget everything learned in plaintext (RFC 3207 4.2).
    pub fn tls_started(&mut self, description: String) {
        self.tls = Some(description);
        self.helo = None;
        self.esmtp = false;
        self.tx = None;
        self.auth = None;
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Action {
        let refusal = if !self.settings.auth_enabled {
            Some(fixed::auth_not_enabled())
        } else if self.helo.is_none() || !self.esmtp {
            Some(fixed::need_helo())
        } else if self.tls.is_none() {
            Some(fixed::auth_needs_tls())
        } else if self.auth.is_some() {
            Some(fixed::already_authenticated())
        } else if self.tx.is_some() {
            Some(fixed::auth_in_transaction())
        } else {
            None
        };
        if let Some(reply) = refusal {
            return Action::Reply(reply);
        }
        match Mechanism::from_name(mechanism) {
            Some(mechanism) => Action::Auth { mechanism, initial },
            None => Action::Reply(fixed::auth_mechanism_unsupported()),
        }
    }

    pub fn authenticated(&mut self, mechanism: Mechanism, user: String) {
        self.auth = Some((mechanism, user));
    }

    /// May this client relay (mynetworks or authenticated)?
    pub fn is_trusted(&self) -> bool {
        self.auth.is_some() || self.settings.relay.is_trusted_client(self.client.ip)
    }

    /// RFC 3848 protocol name for the Received: header and the log.
    pub fn protocol(&self) -> &'static str {
        match (self.esmtp, self.tls.is_some(), self.auth.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        }
    }
}

/// Postfix's "junk" commands (`smtpd_junk_command_limit`).
fn is_junk(command: &Command) -> bool {
    matches!(
        command,
        Command::Ehlo(_) | Command::Helo(_) | Command::Noop | Command::Rset | Command::Vrfy(_)
    )
}

/// `rcpt` → `RCPT`, for log lines such as `timeout after RCPT`.
pub fn upper_verb(verb: &str) -> &'static str {
    match verb {
        "ehlo" => "EHLO",
        "helo" => "HELO",
        "mail" => "MAIL",
        "rcpt" => "RCPT",
        "data" => "DATA",
        "bdat" => "BDAT",
        "rset" => "RSET",
        "noop" => "NOOP",
        "quit" => "QUIT",
        "vrfy" => "VRFY",
        "help" => "HELP",
        "starttls" => "STARTTLS",
        "auth" => "AUTH",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests;
