//! The local delivery agent: messages for recipients in `mydestination` go to mailboxes
//! (mbox or Maildir), commands and files named by aliases, or back to the daemon as new
//! messages for aliases that point elsewhere.
//!
//! The path through this module: [`LocalAgent::deliver`] → `resolve` (Delivered-To check,
//! aliases, `.forward` (`forward.rs`), user look-up) → one `deliver` call per destination
//! (`mbox`, `maildir`, `command`, or `mailbox_command` for a mailbox) → one [`Outcome`] per
//! requested recipient, aggregated (see [`LocalAgent::deliver`]).

mod aliases;
mod command;
pub(crate) mod deliver;
mod expand;
mod forward;
pub(crate) mod fsutil;
pub mod fuzzing;
pub(crate) mod headers;
pub mod helper;
pub(crate) mod lock;
mod mailbox_name;
pub(crate) mod maildir;
pub(crate) mod mbox;
mod resolve;
pub(crate) mod users;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use envelope::{Envelope, Expanded, Outcome, OutcomeKind, QueueId};

use crate::virtual_mailbox::{VirtualAgent, VirtualSettings};
pub use aliases::AliasSyntaxError;
use aliases::AliasTable;
/// The mailbox locks (dotlock + fcntl), for tools that rewrite an mbox (`mailbox archive`).
pub use lock::{holds_mail as lock_file_holds_mail, lock_exclusive, DotLock};
use resolve::Step;

/// The `relay=` of every local outcome.
const RELAY: &str = "local";

/// Errors of loading or checking the alias files. Delivery problems are never errors: they
/// are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot read alias file {}: {source}", path.display())]
    AliasRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{map}: unsupported alias map type (use a text file, optionally with a hash:, lmdb: or texthash: prefix)")]
    UnsupportedMap { map: String },
    /// Every bad line, one `file:line: problem` per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    AliasSyntax(Vec<AliasSyntaxError>),
    /// A virtual(8) map (`virtual_mailbox_maps`, `virtual_uid_maps`, …) that cannot be read.
    #[error("{0}")]
    VirtualMap(#[from] maps::MapError),
}

/// What one [`LocalAgent::deliver`] call produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Exactly one per requested recipient, in the order requested.
    pub outcomes: Vec<Outcome>,
    /// New messages the daemon must queue (aliases that point to other domains).
    pub resubmit: Vec<Resubmission>,
}

/// A new message the daemon must queue (alias to a non-local address); the original
/// recipient counts as sent only after the daemon has queued it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resubmission {
    /// Index into `Envelope::recipients` of the recipient whose alias produced it.
    pub for_recipient: usize,
    pub sender: String,
    pub recipients: Vec<String>,
    /// The message with `Delivered-To: <alias address>` prepended.
    pub message: Vec<u8>,
}

/// One forward of a recipient: (`Delivered-To:`, address, sender when not the original's).
type ForwardTo = (String, String, Option<String>);

/// A verdict for one destination, before it is tied to a recipient index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub kind: OutcomeKind,
    pub dsn: String,
    pub text: String,
}

impl Verdict {
    pub(crate) fn sent(text: impl Into<String>) -> Verdict {
        Verdict::new(OutcomeKind::Sent, "2.0.0", text)
    }
    pub(crate) fn deferred(dsn: &str, text: impl Into<String>) -> Verdict {
        Verdict::new(OutcomeKind::Deferred, dsn, text)
    }
    pub(crate) fn bounced(dsn: &str, text: impl Into<String>) -> Verdict {
        Verdict::new(OutcomeKind::Bounced, dsn, text)
    }
    fn new(kind: OutcomeKind, dsn: &str, text: impl Into<String>) -> Verdict {
        Verdict {
            kind,
            dsn: dsn.to_string(),
            text: text.into(),
        }
    }
    fn into_outcome(self, recipient: usize) -> Outcome {
        self.outcome_by(recipient, RELAY)
    }
    fn into_virtual_outcome(self, recipient: usize) -> Outcome {
        self.outcome_by(recipient, crate::virtual_mailbox::RELAY)
    }
    fn outcome_by(self, recipient: usize, relay: &str) -> Outcome {
        match self.kind {
            OutcomeKind::Sent => Outcome::sent(recipient, relay, self.text),
            OutcomeKind::Deferred => Outcome::deferred(recipient, &self.dsn, relay, self.text),
            OutcomeKind::Bounced => Outcome::bounced(recipient, &self.dsn, relay, self.text),
        }
    }
}

/// The configuration the agent uses, copied out of [`config::Config`] and normalized
/// ([`LocalSettings::from_config`], called by the binary).
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// The alias files (`alias_maps`), read by [`LocalAgent::new`] and `reload`.
    alias_maps: Vec<String>,
    mail_spool_directory: PathBuf,
    home_mailbox: String,
    mailbox_size_limit: u64,
    myhostname: String,
    myorigin: String,
    local_domains: HashSet<String>,
    /// `local_recipient_maps` is empty: every local part is a user.
    any_user: bool,
    /// `local_recipient_maps` has `unix:passwd.byname`.
    passwd_users: bool,
    allow_mail_to_commands: Vec<String>,
    allow_mail_to_files: Vec<String>,
    default_privs: String,
    /// Commands and files never run as this user (the queue owner), when we are root.
    mail_owner: String,
    /// gid of the `mail` group, which owns new spool mailboxes when it exists.
    mail_gid: Option<u32>,
    /// Expanded per recipient (`expand.rs`); empty = no `.forward` files.
    forward_path: String,
    /// Expanded per recipient; empty = deliver to the mailbox ourselves.
    mailbox_command: String,
    recipient_delimiter: String,
    command_time_limit: Duration,
    /// The virtual(8) agent's settings: the same process delivers both (see
    /// [`LocalAgent::deliver`]).
    virtual_mailbox: VirtualSettings,
}

impl LocalSettings {
    /// `alias_maps`, `mail_spool_directory`, `home_mailbox`, `mailbox_size_limit`,
    /// `myhostname`, `myorigin`, `mydestination`, `local_recipient_maps`,
    /// `allow_mail_to_commands`, `allow_mail_to_files`, `default_privs`, `forward_path`,
    /// `mailbox_command`, `recipient_delimiter`, `command_time_limit`.
    pub fn from_config(cfg: &config::Config) -> LocalSettings {
        let lower = |list: &[String]| -> Vec<String> {
            list.iter()
                .flat_map(|entry| entry.split([',', ' ', '\t']))
                .map(|item| item.trim().to_ascii_lowercase())
                .filter(|item| !item.is_empty())
                .collect()
        };
        let maps = lower(&cfg.local_recipient_maps);
        LocalSettings {
            alias_maps: cfg.alias_maps.clone(),
            mail_spool_directory: cfg.mail_spool_directory.clone(),
            home_mailbox: cfg.home_mailbox.trim().to_string(),
            mailbox_size_limit: cfg.mailbox_size_limit,
            myhostname: cfg.myhostname.clone(),
            myorigin: cfg.myorigin.clone(),
            local_domains: lower(&cfg.mydestination)
                .into_iter()
                .map(|d| d.trim_end_matches('.').to_string())
                .collect(),
            any_user: maps.is_empty(),
            passwd_users: maps.iter().any(|m| m.ends_with("unix:passwd.byname")),
            allow_mail_to_commands: lower(&cfg.allow_mail_to_commands),
            allow_mail_to_files: lower(&cfg.allow_mail_to_files),
            default_privs: cfg.default_privs.clone(),
            mail_owner: cfg.mail_owner.clone(),
            mail_gid: users::group_id("mail").ok().flatten(),
            forward_path: cfg.forward_path.clone(),
            mailbox_command: cfg.mailbox_command.trim().to_string(),
            recipient_delimiter: cfg.recipient_delimiter.clone(),
            command_time_limit: cfg.command_time_limit,
            virtual_mailbox: VirtualSettings::from_config(cfg),
        }
    }
}

/// The local delivery agent. Cheap to share between threads (`&self` everywhere); reload
/// with [`LocalAgent::reload`].
#[derive(Debug, Clone)]
pub struct LocalAgent {
    settings: LocalSettings,
    aliases: AliasTable,
    /// Recipients in `virtual_mailbox_domains` are delivered by it.
    virtual_mailbox: Arc<VirtualAgent>,
    /// How long to wait for a mailbox lock (10s; shorter in tests).
    lock_timeout: Duration,
    /// How long a `|command` or `mailbox_command` may run (`command_time_limit`).
    command_timeout: Duration,
}

impl LocalAgent {
    /// Reads the alias files; a missing one is an empty table. Bad lines are logged (and
    /// skipped); an unreadable file or an unsupported map type is an error.
    pub fn new(settings: LocalSettings) -> Result<LocalAgent, LocalError> {
        let aliases = load_aliases(&settings.alias_maps)?;
        let virtual_mailbox = Arc::new(VirtualAgent::new(settings.virtual_mailbox.clone())?);
        Ok(LocalAgent {
            command_timeout: settings.command_time_limit,
            settings,
            aliases,
            virtual_mailbox,
            lock_timeout: lock::LOCK_TIMEOUT,
        })
    }

    /// Re-reads configuration and aliases (SIGHUP, `newaliases`). On error the agent keeps
    /// its previous state.
    pub fn reload(&mut self, settings: LocalSettings) -> Result<(), LocalError> {
        let aliases = load_aliases(&settings.alias_maps)?;
        self.command_timeout = settings.command_time_limit;
        let virtual_mailbox = Arc::new(VirtualAgent::new(settings.virtual_mailbox.clone())?);
        self.settings = settings;
        self.aliases = aliases;
        self.virtual_mailbox = virtual_mailbox;
        Ok(())
    }

    /// True for a domain in `mydestination` (case-insensitive, trailing dot ignored) and for
    /// the empty domain of a bare user name.
    pub fn is_local_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        domain.is_empty()
            || self
                .settings
                .local_domains
                .contains(&domain.to_ascii_lowercase())
    }

    /// True for a domain in `virtual_mailbox_domains` that the virtual agent delivers.
    pub fn is_virtual_domain(&self, domain: &str) -> bool {
        self.virtual_mailbox.is_virtual_domain(domain)
    }

    /// smtpd's RCPT check for virtual mailbox domains: `None` when `address` is not in one,
    /// else whether `virtual_mailbox_maps` has it ([`VirtualAgent::accepts`]).
    pub fn accepts_virtual(&self, address: &str) -> Option<bool> {
        self.virtual_mailbox.accepts(address)
    }

    /// Delivers one message to the given recipients (indexes into `env.recipients`).
    ///
    /// Each recipient gets exactly one outcome. When its aliases lead to several
    /// destinations the outcome is: deferred if any destination deferred (the whole
    /// recipient is retried later, so destinations that succeeded this time get a second
    /// copy then, as in Postfix), else bounced if any bounced, else sent. Forwards to other
    /// domains are returned as [`Resubmission`]s unless the recipient is deferred (the retry
    /// produces them then, so they are not sent twice). A destination reached by several
    /// recipients of this message is delivered once; the others share its verdict.
    pub fn deliver(
        &self,
        id: QueueId,
        env: &Envelope,
        recipients: &[usize],
        message: &[u8],
    ) -> Delivery {
        let loops = headers::delivered_to_addresses(message);
        let mut done: HashMap<String, Verdict> = HashMap::new();
        let mut delivery = Delivery::default();
        for &index in recipients {
            let Some(recipient) = env.recipients.get(index) else {
                let verdict =
                    Verdict::deferred("4.3.0", format!("internal error: no recipient #{index}"));
                delivery.outcomes.push(verdict.into_outcome(index));
                continue;
            };
            let copy = deliver::Copy {
                id,
                sender: &env.sender,
                original_recipient: &recipient.address,
                message,
            };
            let (_, domain) = envelope::split_address(&recipient.address);
            if !self.is_local_domain(&domain) && self.is_virtual_domain(&domain) {
                let verdict = self.virtual_mailbox.deliver(&copy, &recipient.address);
                delivery.outcomes.push(verdict.into_virtual_outcome(index));
                continue;
            }
            let steps = resolve::expand(self, &recipient.address, &loops);
            let (verdict, forwards, members) = self.run_steps(&copy, steps, &mut done);
            if verdict.kind != OutcomeKind::Deferred {
                delivery
                    .resubmit
                    .extend(resubmissions(index, &env.sender, message, forwards));
            }
            let mut outcome = verdict.into_outcome(index);
            if is_expansion(&recipient.address, &members) {
                outcome.expanded = members;
            }
            delivery.outcomes.push(outcome);
        }
        delivery
    }

    /// Carries out one recipient's steps; returns its aggregate verdict, its forwards as
    /// (Delivered-To, address) pairs, and each final destination with its own verdict.
    fn run_steps(
        &self,
        copy: &deliver::Copy<'_>,
        steps: Vec<Step>,
        done: &mut HashMap<String, Verdict>,
    ) -> (Verdict, Vec<ForwardTo>, Vec<Expanded>) {
        let mut verdicts = Vec::new();
        let mut forwards = Vec::new();
        let mut members = Vec::new();
        for step in steps {
            match step {
                Step::Failed(verdict) => {
                    members.push(member(copy.original_recipient, &verdict, false));
                    verdicts.push(verdict);
                }
                Step::Forward {
                    address,
                    delivered_to,
                    sender,
                } => {
                    let verdict = Verdict::sent("forwarded as new message");
                    members.push(member(&address, &verdict, true));
                    forwards.push((delivered_to, address, sender));
                }
                Step::Deliver(target) => {
                    let verdict = done
                        .entry(target.key())
                        .or_insert_with(|| self.deliver_target(copy, &target));
                    members.push(member(target.log_address(), verdict, false));
                    verdicts.push(verdict.clone());
                }
            }
        }
        if !forwards.is_empty() {
            verdicts.push(Verdict::sent("forwarded as new message"));
        }
        (aggregate(verdicts), forwards, members)
    }

    /// Is this local address (its local part, case-insensitive) a key of `alias_maps`? The scheduler keeps aliases with this
    /// agent when `mailbox_transport` sends users' mail elsewhere.
    pub fn is_alias(&self, address: &str) -> bool {
        let (local, _) = envelope::split_address(address);
        let name = resolve::normalize_local_part(local);
        self.aliases.get(&name).is_some()
    }

    /// Would this local address be accepted by `local_recipient_maps`: an alias, or a known
    /// user whose name can be a mailbox (`mailbox_name.rs`)? The SMTP server asks at RCPT
    /// time, so what can never be delivered (unknown users, `"|/bin/sh"`, `..`,
    /// `alice.lock`) is refused with 550 there instead of accepted and bounced later (no
    /// backscatter). Passwd lookup errors say yes: the delivery attempt decides then.
    pub fn accepts(&self, address: &str) -> bool {
        let (local, _) = envelope::split_address(address);
        let name = resolve::normalize_local_part(local);
        let recipient = self.split_extension(&name);
        if [&name, &recipient.user]
            .into_iter()
            .any(|key| self.aliases.get(key).is_some())
        {
            return true;
        }
        let name = recipient.user;
        if mailbox_name::problem(&name).is_some() {
            return false;
        }
        if self.settings.any_user {
            return true;
        }
        match users::user_by_name(&name) {
            Ok(account) => self.is_known_user(account.is_some()),
            Err(_) => true,
        }
    }

    /// `alice+news` → `alice` and `news` by `recipient_delimiter`.
    fn split_extension(&self, local: &str) -> resolve::Extension {
        resolve::split_extension(local, &self.settings.recipient_delimiter)
    }

    /// `owner-NAME@myorigin` when the alias `NAME` has an `owner-NAME` alias (a list whose
    /// bounces go to its owner, Postfix's `owner_request_special`).
    fn list_owner(&self, name: &str) -> Option<String> {
        let owner = format!("owner-{name}");
        self.aliases.get(&owner)?;
        Some(format!("{owner}@{}", self.origin()))
    }

    /// Is a local part that is not an alias a user? (`local_recipient_maps`)
    fn is_known_user(&self, in_passwd: bool) -> bool {
        self.settings.any_user || (self.settings.passwd_users && in_passwd)
    }

    fn commands_allowed(&self, class: &str) -> bool {
        self.settings
            .allow_mail_to_commands
            .iter()
            .any(|c| c == class)
    }

    fn files_allowed(&self, class: &str) -> bool {
        self.settings.allow_mail_to_files.iter().any(|c| c == class)
    }

    /// The domain appended to bare names (Postfix's `myorigin`).
    fn origin(&self) -> &str {
        [&self.settings.myorigin, &self.settings.myhostname]
            .into_iter()
            .map(|d| d.trim())
            .find(|d| !d.is_empty())
            .unwrap_or("localhost")
    }

    /// `user` → `user@myorigin`; a full address is returned as is.
    fn qualify(&self, address: &str) -> String {
        if address.contains('@') {
            address.to_string()
        } else {
            format!("{address}@{}", self.origin())
        }
    }
}

fn load_aliases(alias_maps: &[String]) -> Result<AliasTable, LocalError> {
    let (table, errors) = AliasTable::load(alias_maps)?;
    for error in errors {
        tracing::warn!("{error} (entry skipped)");
    }
    Ok(table)
}

/// One recipient's verdict from its destinations' (rule in [`LocalAgent::deliver`]).
fn member(to: &str, verdict: &Verdict, forward: bool) -> Expanded {
    Expanded {
        to: to.to_string(),
        kind: verdict.kind.clone(),
        dsn: verdict.dsn.clone(),
        text: verdict.text.clone(),
        forward,
    }
}

/// The recipient went through an alias: not just its own mailbox.
fn is_expansion(recipient: &str, members: &[Expanded]) -> bool {
    match members {
        [only] => !only.forward && !only.to.eq_ignore_ascii_case(recipient),
        _ => true,
    }
}

fn aggregate(verdicts: Vec<Verdict>) -> Verdict {
    let first = |kind: OutcomeKind| verdicts.iter().find(|v| v.kind == kind).cloned();
    if let Some(deferred) = first(OutcomeKind::Deferred) {
        return deferred;
    }
    if let Some(bounced) = first(OutcomeKind::Bounced) {
        return bounced;
    }
    let mut texts: Vec<&str> = Vec::new();
    for verdict in &verdicts {
        if !texts.contains(&verdict.text.as_str()) {
            texts.push(&verdict.text);
        }
    }
    if texts.is_empty() {
        return Verdict::bounced("5.1.1", "alias expanded to no recipients");
    }
    Verdict::sent(texts.join("; "))
}

/// Groups forwards by the alias that produced them and their sender: one new message per
/// `Delivered-To:` and sender. A null sender (a bounce) stays null, whatever the list owner.
fn resubmissions(
    index: usize,
    sender: &str,
    message: &[u8],
    forwards: Vec<ForwardTo>,
) -> Vec<Resubmission> {
    let mut groups: Vec<(String, String, Vec<String>)> = Vec::new();
    for (delivered_to, address, new_sender) in forwards {
        let new_sender = match new_sender {
            Some(owner) if !sender.is_empty() => owner,
            _ => sender.to_string(),
        };
        match groups
            .iter_mut()
            .find(|(d, s, _)| *d == delivered_to && *s == new_sender)
        {
            Some((_, _, addresses)) => addresses.push(address),
            None => groups.push((delivered_to, new_sender, vec![address])),
        }
    }
    groups
        .into_iter()
        .map(|(delivered_to, sender, recipients)| Resubmission {
            for_recipient: index,
            sender,
            recipients,
            message: headers::with_delivered_to(message, &delivered_to),
        })
        .collect()
}

/// `mailroom newaliases` / `check`: parses every alias file and returns the number of
/// aliases, or every bad line as `file:line: problem`.
pub fn check_aliases(alias_maps: &[String]) -> Result<usize, LocalError> {
    let (table, errors) = AliasTable::load(alias_maps)?;
    if !errors.is_empty() {
        return Err(LocalError::AliasSyntax(errors));
    }
    Ok(table.len())
}
