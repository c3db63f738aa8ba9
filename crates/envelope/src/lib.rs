//! Pure types shared by every room of mailroom: [`QueueId`], [`Envelope`], [`Recipient`],
//! [`Outcome`], and what the scheduler and the SMTP client say to each other ([`Nexthop`],
//! [`DeliveryReport`]). No I/O happens here.
//!
//! Inputs → outputs: none; these are the nouns the other crates pass to each other.
//! Invariants: a [`QueueId`] is never reused (time in microseconds plus a per-process counter
//! plus randomness) and sorts by creation time; it is safe in file names and log lines.
//! Security stance: trusts nothing and needs no privilege; addresses are carried as given.

#![forbid(unsafe_code)]

pub mod fuzzing;
mod nexthop;
mod queue_id;
pub mod sysexits;

pub use nexthop::{parse_filter, DeliveryReport, Nexthop, NexthopError, FILTER_TRANSPORTS};
pub use queue_id::{QueueId, QueueIdError};

use serde::{Deserialize, Serialize};

/// What happened (or is happening) to one recipient of a queued message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    /// Not yet tried, or due for another try.
    Pending,
    /// Delivered; never tried again.
    Sent,
    /// Temporarily failed; `reason` is what `mailq` shows in parentheses.
    Deferred { reason: String },
    /// Permanently failed: `status` is the RFC 3463 code (`5.1.1`), `reason` the diagnostic.
    Bounced { status: String, reason: String },
}

impl RecipientState {
    /// True when this recipient still needs a delivery attempt.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            RecipientState::Pending | RecipientState::Deferred { .. }
        )
    }
}

/// One envelope recipient with its RFC 3461 DSN parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given in RCPT TO or on the sendmail command line, without angle brackets.
    pub address: String,
    /// RFC 3461 ORCPT, if the client gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY (`NEVER`, or a comma list of `SUCCESS,FAILURE,DELAY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    pub state: RecipientState,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Self {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: None,
            state: RecipientState::Pending,
        }
    }
}

/// The envelope of a queued message: who sent it, to whom, and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The envelope sender; empty string is the null sender `<>` (bounces).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Arrival time, seconds since the Unix epoch.
    pub arrival_time: u64,
    /// RFC 3461 ENVID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// RFC 3461 RET (`FULL` or `HDRS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// Where the message came from, for logs: `local`, `pickup`, `smtpd`, `bounce`.
    #[serde(default)]
    pub origin: String,
    /// A `FILTER transport:nexthop` action (header_checks, body_checks or an access table)
    /// for this message alone: it goes there instead of `content_filter` or its own route
    /// (Postfix's queue file `content_filter` record). Absent in records written before it
    /// existed, and then `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

impl Envelope {
    pub fn new(sender: impl Into<String>, recipients: Vec<String>, arrival_time: u64) -> Self {
        Envelope {
            sender: sender.into(),
            recipients: recipients.into_iter().map(Recipient::new).collect(),
            arrival_time,
            envid: None,
            ret: None,
            origin: String::new(),
            filter: None,
        }
    }

    /// True for the null sender `<>`: such mail is never bounced (DESIGN invariant 5).
    pub fn is_null_sender(&self) -> bool {
        self.sender.is_empty()
    }
}

/// The verdict of a delivery agent for one recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutcomeKind {
    Sent,
    Deferred,
    Bounced,
}

/// What an agent reports for one recipient; the scheduler alone turns it into queue state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Index into [`Envelope::recipients`].
    pub recipient: usize,
    pub kind: OutcomeKind,
    /// RFC 3463 enhanced status code, e.g. `2.0.0`, `4.2.2`, `5.1.1`.
    pub dsn: String,
    /// Human text for the log line's parenthesis: `delivered to mailbox`.
    pub text: String,
    /// `relay=` value of the log line: `local`, `host[addr]:port`, `none`.
    pub relay: String,
    /// When the recipient was an alias: each final destination with
    /// its own verdict, so the log has one `to=<member>, orig_to=<alias>` line per member
    /// as Postfix writes. The outcome's kind stays the recipient's aggregate. Log only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expanded: Vec<Expanded>,
}

/// One final destination of an expanded recipient (see [`Outcome::expanded`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expanded {
    /// The member: `alice@host`, or the alias address for a command or file.
    pub to: String,
    pub kind: OutcomeKind,
    pub dsn: String,
    pub text: String,
    /// A forward to another domain: it is done only once the daemon queued the new message.
    pub forward: bool,
}

impl Outcome {
    pub fn sent(recipient: usize, relay: &str, text: impl Into<String>) -> Self {
        Self::new(recipient, OutcomeKind::Sent, "2.0.0", relay, text)
    }
    pub fn deferred(recipient: usize, dsn: &str, relay: &str, text: impl Into<String>) -> Self {
        Self::new(recipient, OutcomeKind::Deferred, dsn, relay, text)
    }
    pub fn bounced(recipient: usize, dsn: &str, relay: &str, text: impl Into<String>) -> Self {
        Self::new(recipient, OutcomeKind::Bounced, dsn, relay, text)
    }
    fn new(
        recipient: usize,
        kind: OutcomeKind,
        dsn: &str,
        relay: &str,
        text: impl Into<String>,
    ) -> Self {
        Outcome {
            recipient,
            kind,
            dsn: dsn.to_string(),
            text: text.into(),
            relay: relay.to_string(),
            expanded: Vec::new(),
        }
    }
}

/// Splits `user@domain` into its local part and lower-cased domain; an address without `@`
/// has an empty domain. The split is at the last `@` (RFC 5321 quoted local parts may hold `@`).
pub fn split_address(address: &str) -> (&str, String) {
    match address.rfind('@') {
        Some(at) => (&address[..at], address[at + 1..].to_ascii_lowercase()),
        None => (address, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_address_at_last_at() {
        assert_eq!(split_address("a@B.org"), ("a", "b.org".to_string()));
        assert_eq!(split_address("\"x@y\"@z"), ("\"x@y\"", "z".to_string()));
        assert_eq!(split_address("root"), ("root", String::new()));
    }

    #[test]
    fn open_states() {
        assert!(RecipientState::Pending.is_open());
        assert!(RecipientState::Deferred { reason: "x".into() }.is_open());
        assert!(!RecipientState::Sent.is_open());
    }
}
