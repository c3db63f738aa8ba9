//! [`Row`]: one queued message as the listing tools see it — the fields of Postfix's
//! `postqueue -j` object plus the scheduler's retry state — built from a store entry or a
//! maildrop file. It is also the wire form of a listing on the control socket.
//!
//! Only recipients still open (pending or deferred) are listed, as Postfix's showq does:
//! delivered and bounced ones are done. A deferred recipient carries its reason.

use envelope::{Envelope, QueueId, RecipientState};
use queue::{Entry, QueueName};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The queue a message is in, as Postfix names them (`active` = being delivered now).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Maildrop,
    Incoming,
    Active,
    Deferred,
    Hold,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Maildrop,
        State::Incoming,
        State::Active,
        State::Deferred,
        State::Hold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Maildrop => "maildrop",
            State::Incoming => "incoming",
            State::Active => "active",
            State::Deferred => "deferred",
            State::Hold => "hold",
        }
    }

    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The state of a stored message: `active` while the scheduler delivers it.
    pub fn of(queue: QueueName, active: bool) -> State {
        match (queue, active) {
            (QueueName::Hold, _) => State::Hold,
            (_, true) => State::Active,
            (QueueName::Incoming, false) => State::Incoming,
            (QueueName::Deferred, false) => State::Deferred,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowRecipient {
    pub address: String,
    /// Why the last attempt failed; empty when not tried yet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub delay_reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub queue_name: State,
    pub queue_id: String,
    /// Unix seconds.
    pub arrival_time: u64,
    pub message_size: u64,
    pub forced_expire: bool,
    /// Empty = the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<RowRecipient>,
    /// Unix seconds of the next attempt (0 = due now); not in Postfix's JSON.
    #[serde(default)]
    pub next_attempt: u64,
    #[serde(default)]
    pub attempts: u32,
}

impl Row {
    /// The row of a stored message.
    pub fn from_entry(entry: &Entry, active: bool) -> Row {
        let meta = &entry.meta;
        Row {
            queue_name: State::of(meta.queue, active),
            queue_id: entry.id.to_string(),
            arrival_time: meta.envelope.arrival_time,
            message_size: entry.size,
            forced_expire: false,
            sender: meta.envelope.sender.clone(),
            recipients: open_recipients(&meta.envelope),
            next_attempt: meta.next_attempt,
            attempts: meta.attempts,
        }
    }

    /// The row of a file waiting in `maildrop/`, or `None` if it cannot be read (it may
    /// have just been picked up).
    pub fn from_maildrop(id: QueueId, path: &Path) -> Option<Row> {
        let file = submit::maildrop::read(path).ok()?;
        Some(Row::of_maildrop_file(id, &file))
    }

    /// The row of a maildrop file already read.
    pub fn of_maildrop_file(id: QueueId, file: &submit::MaildropFile) -> Row {
        Row {
            queue_name: State::Maildrop,
            queue_id: id.to_string(),
            arrival_time: file.arrival_time,
            message_size: file.message.len() as u64,
            forced_expire: false,
            sender: file.sender.clone(),
            recipients: file
                .recipients
                .iter()
                .map(|address| RowRecipient {
                    address: address.clone(),
                    delay_reason: String::new(),
                })
                .collect(),
            next_attempt: 0,
            attempts: 0,
        }
    }
}

fn open_recipients(envelope: &Envelope) -> Vec<RowRecipient> {
    envelope
        .recipients
        .iter()
        .filter(|r| r.state.is_open())
        .map(|r| RowRecipient {
            address: r.address.clone(),
            delay_reason: match &r.state {
                RecipientState::Deferred { reason } => reason.clone(),
                _ => String::new(),
            },
        })
        .collect()
}
