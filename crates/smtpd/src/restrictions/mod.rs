//! Postfix's SMTP access restrictions: `smtpd_client_restrictions`, `_helo_`, `_sender_`,
//! `_relay_`, `_recipient_`, `_data_` and `_end_of_data_restrictions`, in Postfix's syntax
//! and evaluation order, with its reply codes, texts and `reject:` log lines (so fail2ban's
//! postfix filter and pflogsumm count mailroom's refusals as they count Postfix's).
//!
//! # Evaluate, then act
//! The session (pure, `session/`) says *when* a list is due and with what it knows
//! ([`Request`]); [`Restrictions::check`] evaluates the lists (the only part that waits:
//! DNS and policy services) and returns a [`Verdict`]; the session acts on it.
//! ```text
//!  parse.rs     the configured words → [`Restriction`]s, once per configuration
//!  evaluate.rs  the lists in order: permit ends a list, reject ends all, warn_if_reject,
//!               defer_if_permit / defer_if_reject (Postfix's "maybe" states)
//!  access.rs    check_*_access tables and their results (OK, REJECT text, 4xx/5xx text,
//!               DUNNO, HOLD, DISCARD, DEFER_IF_PERMIT, PREPEND, REDIRECT, BCC, FILTER, WARN …)
//!  dnsbl.rs     reject_rbl_client, reject_rhsbl_*: queries, filters, reply templates
//!  dns.rs       the DNS questions: lists, unknown domains and HELO names, client names
//!  policy.rs    check_policy_service: Postfix's policy delegation protocol
//! ```
//!
//! # Order (Postfix's, with `smtpd_delay_reject = yes`)
//! At RCPT: client, HELO, sender, relay, then recipient restrictions; `permit` (or OK)
//! ends only the list it is in. With `smtpd_delay_reject = no`, client, HELO and sender
//! restrictions are evaluated at MAIL instead (Postfix evaluates the client and HELO lists
//! at connect and at HELO; mailroom waits until MAIL, which refuses the same mail).
//! DATA restrictions at DATA, end-of-data restrictions after the message, before queueing.
//!
//! # Failure rules
//! A restriction that cannot be evaluated as configured (an unknown name, a missing
//! argument, a map that cannot be opened) answers `451 4.3.5 Server configuration error`,
//! as Postfix does, so a typo never opens the server. A DNS failure is a temporary
//! refusal only where the restriction would have refused (`defer_if_permit`). A policy
//! service that cannot be reached answers `smtpd_policy_service_default_action`.
//!
//! Security stance: everything in a [`Request`] but the client address and the
//! authentication comes from the client; it is only compared and looked up, and it appears
//! in replies and logs as printable text.

mod access;
mod dns;
mod dnsbl;
mod evaluate;
mod parse;
mod policy;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use config::Config;
use proto::reply::Reply;
use tracing::info;

pub use parse::Restriction;

/// The restriction lists of one configuration and what they need.
pub struct Restrictions {
    client: Vec<Restriction>,
    helo: Vec<Restriction>,
    sender: Vec<Restriction>,
    relay: Vec<Restriction>,
    recipient: Vec<Restriction>,
    data: Vec<Restriction>,
    end_of_data: Vec<Restriction>,
    /// `smtpd_restriction_classes`: name → list.
    classes: HashMap<String, Vec<Restriction>>,
    /// `smtpd_delay_reject`.
    pub delay_reject: bool,
    codes: Codes,
    dns: dns::Dns,
    policy: policy::PolicySettings,
    /// Kept policy server connections.
    policy_pool: policy::Pool,
    rbl_reply_maps: maps::Maps,
    default_rbl_reply: String,
    /// What could not be parsed or opened, `parameter: problem` (for the log and `check`).
    pub problems: Vec<String>,
}

impl std::fmt::Debug for Restrictions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Restrictions")
            .field("delay_reject", &self.delay_reject)
            .field("problems", &self.problems)
            .finish_non_exhaustive()
    }
}

/// The reply codes of the restrictions (`reject_code`, `access_map_reject_code` …).
#[derive(Debug, Clone, Copy)]
struct Codes {
    reject: u16,
    defer: u16,
    access_reject: u16,
    access_defer: u16,
    invalid_hostname: u16,
    non_fqdn: u16,
    unknown_address: u16,
    unknown_hostname: u16,
    unknown_client: u16,
    relay: u16,
    rbl: u16,
}

impl Codes {
    fn from_config(cfg: &Config) -> Codes {
        let code = |value: usize| u16::try_from(value).unwrap_or(554);
        Codes {
            reject: code(cfg.reject_code),
            defer: code(cfg.defer_code),
            access_reject: code(cfg.access_map_reject_code),
            access_defer: code(cfg.access_map_defer_code),
            invalid_hostname: code(cfg.invalid_hostname_reject_code),
            non_fqdn: code(cfg.non_fqdn_reject_code),
            unknown_address: code(cfg.unknown_address_reject_code),
            unknown_hostname: code(cfg.unknown_hostname_reject_code),
            unknown_client: code(cfg.unknown_client_reject_code),
            relay: code(cfg.relay_domains_reject_code),
            rbl: code(cfg.maps_rbl_reject_code),
        }
    }
}

impl Restrictions {
    /// Parses every list and opens its maps. Problems are collected, never fatal: the
    /// restriction concerned answers 451 4.3.5 (see the module doc).
    pub fn from_config(cfg: &Config) -> Restrictions {
        let mut problems = Vec::new();
        let definitions = class_definitions(&cfg.smtpd_restriction_classes);
        let names: HashSet<String> = definitions.iter().map(|(n, _)| n.clone()).collect();
        let mut list = |name: &str, words: &[String]| {
            let (list, found) = parse::parse_list(words, &names);
            problems.extend(found.into_iter().map(|p| format!("{name}: {p}")));
            list
        };
        let classes = definitions
            .iter()
            .map(|(name, words)| (name.clone(), list(name, words)))
            .collect();
        let client = list("smtpd_client_restrictions", &cfg.smtpd_client_restrictions);
        let helo = list("smtpd_helo_restrictions", &cfg.smtpd_helo_restrictions);
        let sender = list("smtpd_sender_restrictions", &cfg.smtpd_sender_restrictions);
        let relay = list("smtpd_relay_restrictions", &cfg.smtpd_relay_restrictions);
        let recipient = list(
            "smtpd_recipient_restrictions",
            &cfg.smtpd_recipient_restrictions,
        );
        let data = list("smtpd_data_restrictions", &cfg.smtpd_data_restrictions);
        let end_of_data = list(
            "smtpd_end_of_data_restrictions",
            &cfg.smtpd_end_of_data_restrictions,
        );
        let rbl_reply_maps = maps::Maps::open(&cfg.rbl_reply_maps).unwrap_or_else(|e| {
            problems.push(format!("rbl_reply_maps: {e}"));
            maps::Maps::default()
        });
        Restrictions {
            client,
            helo,
            sender,
            relay,
            recipient,
            data,
            end_of_data,
            classes,
            delay_reject: cfg.smtpd_delay_reject,
            codes: Codes::from_config(cfg),
            dns: dns::Dns::new(&cfg.dns_nameservers),
            policy: policy::PolicySettings::from_config(cfg),
            policy_pool: policy::Pool::default(),
            rbl_reply_maps,
            default_rbl_reply: cfg.default_rbl_reply.clone(),
            problems,
        }
    }

    /// Evaluates the lists due at `stage` for `request`. A refusal in the verdict has been
    /// logged (`NOQUEUE: reject: …`) already.
    pub async fn check(&self, stage: Stage, request: &Request) -> Verdict {
        let lists: Vec<(Class, &[Restriction])> = match stage {
            Stage::Mail => vec![
                (Class::Client, &self.client),
                (Class::Helo, &self.helo),
                (Class::Sender, &self.sender),
            ],
            Stage::Rcpt if self.delay_reject => vec![
                (Class::Client, &self.client),
                (Class::Helo, &self.helo),
                (Class::Sender, &self.sender),
                (Class::Recipient, &self.relay),
                (Class::Recipient, &self.recipient),
            ],
            Stage::Rcpt => vec![
                (Class::Recipient, &self.relay),
                (Class::Recipient, &self.recipient),
            ],
            Stage::Data => vec![(Class::Data, &self.data)],
            Stage::EndOfData => vec![(Class::EndOfData, &self.end_of_data)],
        };
        evaluate::run(self, &lists, request).await
    }

    /// The `smtpd_restriction_classes` names.
    fn class_names(&self) -> HashSet<String> {
        self.classes.keys().cloned().collect()
    }

    /// Whether MAIL has lists to evaluate (only with `smtpd_delay_reject = no`).
    pub fn checks_at_mail(&self) -> bool {
        let any = !(self.client.is_empty() && self.helo.is_empty() && self.sender.is_empty());
        !self.delay_reject && any
    }

    /// Whether DATA (or end of data) has a list to evaluate.
    pub fn checks_at(&self, stage: Stage) -> bool {
        match stage {
            Stage::Data => !self.data.is_empty(),
            Stage::EndOfData => !self.end_of_data.is_empty(),
            Stage::Mail => self.checks_at_mail(),
            Stage::Rcpt => true,
        }
    }
}

/// `name:restriction, restriction …` items → (name, words).
fn class_definitions(items: &[String]) -> Vec<(String, Vec<String>)> {
    items
        .iter()
        .filter_map(|item| item.split_once(':'))
        .map(|(name, list)| (name.trim().to_string(), words(list)))
        .collect()
}

/// A restriction list as text → its words (commas and white space separate them).
fn words(list: &str) -> Vec<String> {
    list.split([',', ' ', '\t', '\n', '\r'])
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// When a check happens (Postfix's `protocol_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Mail,
    Rcpt,
    Data,
    EndOfData,
}

impl Stage {
    /// The command as log lines and policy services name it.
    pub fn verb(self) -> &'static str {
        match self {
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
            Stage::EndOfData => "END-OF-MESSAGE",
        }
    }
}

/// What a list is about: the `<name>: Class rejected:` part of its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Client,
    Helo,
    Sender,
    Recipient,
    Data,
    EndOfData,
}

impl Class {
    /// Postfix's `SMTPD_NAME_*`.
    fn name(self) -> &'static str {
        match self {
            Class::Client => "Client host",
            Class::Helo => "Helo command",
            Class::Sender => "Sender address",
            Class::Recipient => "Recipient address",
            Class::Data => "Data command",
            Class::EndOfData => "End-of-data",
        }
    }

    /// What the `<…>` of a reply names.
    fn subject(self, request: &Request) -> String {
        match self {
            Class::Client => request.client_label(),
            Class::Helo => request.helo.clone().unwrap_or_default(),
            Class::Sender => request.sender.clone().unwrap_or_default(),
            Class::Recipient => request.recipient.clone().unwrap_or_default(),
            Class::Data => "DATA".to_string(),
            Class::EndOfData => "END-OF-MESSAGE".to_string(),
        }
    }
}

/// What the session knows when a list is due. Strings are as the client sent them
/// (the sender and recipient unqualified, as Postfix sees them).
#[derive(Debug, Clone)]
pub struct Request {
    pub stage: Stage,
    pub client_ip: IpAddr,
    /// `unknown` without reverse DNS.
    pub client_name: String,
    pub helo: Option<String>,
    /// `None` before MAIL; `Some("")` for the null sender.
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// `SMTP`, `ESMTP`, `ESMTPS` …
    pub protocol: String,
    /// The client is in `mynetworks`.
    pub mynetworks: bool,
    /// SASL mechanism and user name after AUTH.
    pub sasl: Option<(String, String)>,
    /// The recipient's domain is ours (`mydestination`, virtual domains, `relay_domains`):
    /// Postfix's `permit_auth_destination` without routing tricks.
    pub auth_destination: bool,
    /// The recipient's domain is delivered here (`mydestination`, virtual domains): not
    /// asked about by `reject_unknown_recipient_domain`, as Postfix skips its final classes.
    pub final_destination: bool,
    /// The client sent this command before our previous reply (`reject_unauth_pipelining`).
    pub pipelined: bool,
    pub queue_id: Option<String>,
    /// Accepted recipients (policy `recipient_count`, at DATA and after).
    pub recipient_count: usize,
    /// The SIZE parameter, or the message size at end of data.
    pub size: u64,
    pub stress: bool,
}

impl Request {
    /// `unknown[192.0.2.1]`.
    fn client_label(&self) -> String {
        format!("{}[{}]", self.client_name, self.client_ip)
    }
}

/// The outcome of a check, for the session to act on.
#[derive(Debug, Default)]
pub struct Verdict {
    /// The refusal to send (already logged), if any.
    pub reject: Option<Reply>,
    /// HOLD: queue the message on hold (the text is the reason, for the log).
    pub hold: Option<String>,
    /// DISCARD: answer as if queued, then drop the message.
    pub discard: Option<String>,
    /// PREPEND: headers to add at the top of the message.
    pub prepend: Vec<String>,
    /// REDIRECT: every recipient of the message replaced by this one (the last wins).
    pub redirect: Option<String>,
    /// BCC: recipients to add to the message.
    pub bcc: Vec<String>,
    /// FILTER: the content filter (`transport:destination`) for the message (the last wins).
    pub filter: Option<String>,
}

/// Postfix's `log_whatsup`: `NOQUEUE: reject: RCPT from unknown[ip]: TEXT; from=<s>
/// to=<r> proto=ESMTP helo=<h>` (also `reject_warning`, `hold`, `discard`, `warn`).
fn log_whatsup(request: &Request, whatsup: &str, text: &str) {
    let queue = request.queue_id.as_deref().unwrap_or("NOQUEUE");
    let mut line = format!(
        "{queue}: {whatsup}: {} from {}: {text};",
        request.stage.verb(),
        request.client_label()
    );
    if let Some(sender) = &request.sender {
        line.push_str(&format!(" from=<{sender}>"));
    }
    if let Some(recipient) = &request.recipient {
        line.push_str(&format!(" to=<{recipient}>"));
    }
    line.push_str(&format!(" proto={}", request.protocol));
    if let Some(helo) = &request.helo {
        line.push_str(&format!(" helo=<{helo}>"));
    }
    info!(target: "smtpd", "{}", maillog::sanitize(&line));
}
