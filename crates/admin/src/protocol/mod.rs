//! The control socket protocol, and its client: the only place a control request is put into
//! words or read back. [`Command`] is every request the socket takes — the short ones
//! (`flush`, `flush-site`, `flush-id`, `reload`, `ping`, answered with one [`Reply`] line, see
//! `command.rs`) and [`Request`], the queue requests below; [`send`] and [`call`] are the
//! client, the daemon decodes with [`Command::decode`].
//!
//! ```text
//! client → daemon:  admin {"List":{"selector":{…}}}\n          one request line (≤ 64 KiB)
//!                   [0H5X9R3T6W2K4M8A\n …]                      queue IDs, if the request
//!                                                               says `ids_follow`, then EOF
//! daemon → client:  {"Row":{…}}\n {"Progress":{…}}\n …          events, one JSON per line
//!                   R\t…\n                                       or a compact row (below)
//!                   {"End":{"count":N}}\n  or  {"Error":"…"}\n  always last
//! ```
//! A listing asked for with `compact_rows` gets its rows as tab-separated lines
//! ([`crate::rowline`]), several times cheaper to write and read than JSON at a million rows;
//! the client reads both forms, so it also works with a daemon that predates them.
//! A stream that ends without `End` or `Error` means the daemon went away mid-answer; the
//! client reports that rather than a short listing. The same [`Event`]s are produced
//! in-process when the daemon is down (see [`crate::engine`]), so the tools render one
//! stream either way.
//!
//! Security stance: the control socket is the queue owner's (mode 0600), so whoever can send
//! a request could already open the store; requests are still parsed strictly and bounded.
//! The daemon's public socket accepts only [`Command::is_public`] requests (`ping` and the
//! listings), from anyone.

use crate::qshape::{Options, Shape};
use crate::row::{Row, State};
use crate::select::Selector;
use crate::stats::Stats;
use crate::superop;
use serde::{Deserialize, Serialize};
use std::io::{self, Write};

mod client;
mod command;
#[cfg(test)]
mod tests;

pub use client::{call, call_on, send, ClientError};
pub use command::{Command, Refusal, Reply};

/// The first word of an admin request line.
pub const VERB: &str = "admin";
/// Longest request line accepted.
pub const MAX_REQUEST: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Every message the selector matches, as [`Event::Row`]s in queue-ID order.
    List {
        selector: Selector,
        /// Send the rows as [`crate::rowline`] lines rather than JSON.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        compact_rows: bool,
    },
    /// The qshape matrix of these queues.
    Qshape {
        options: Options,
        queues: Vec<State>,
    },
    /// Counts and top lists for `doctor`.
    Stats,
    /// A postsuper operation.
    Super(superop::Request),
    /// One message's envelope and content (postcat).
    Cat { id: String },
    /// Suspend deliveries to a destination (`postqueue -S`, `mailroom suspend`): answered
    /// with the [`Event::Suspension`] now in force.
    Suspend {
        destination: String,
        /// How long; `None` = until resumed.
        #[serde(default)]
        seconds: Option<u64>,
        #[serde(default)]
        reason: String,
    },
    /// End a suspension (`postqueue -U`, `mailroom resume`): count 1 if one was in force.
    Resume { destination: String },
    /// The suspensions in force, one [`Event::Suspension`] each.
    Suspensions,
}

impl Request {
    /// A listing any local user may ask for (Postfix lets everyone run `mailq`): it reads
    /// the queue's envelopes, never message contents, and changes nothing.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Request::List { .. } | Request::Qshape { .. } | Request::Suspensions
        )
    }
}

/// postcat's view of one message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub row: Row,
    /// Every recipient with its state: `pending`, `sent`, `deferred (why)`, `bounced 5.1.1 (why)`.
    pub recipients: Vec<(String, String)>,
    pub origin: String,
    pub envid: Option<String>,
    pub ret: Option<String>,
    /// The message's own content filter (a `FILTER` action), printed as Postfix's
    /// `content_filter` record. Absent from an older daemon's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Where the message's record lives (`store/000000000001.seg@4096+1300`), or the maildrop file.
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Row(Row),
    Shape(Shape),
    Stats(Stats),
    Progress {
        done: u64,
        total: u64,
    },
    /// A listing read in this process (the daemon is down) is still reading the log;
    /// `not_empty`: it will certainly list at least one message. Sent before the log is
    /// read and after each segment, so the caller can write the heading early and stop when
    /// its reader has gone.
    Scanning {
        not_empty: bool,
    },
    /// One explicitly named message was changed: `removed`, `placed on hold`, …
    Done {
        id: String,
        what: String,
    },
    Warning(String),
    Summary(superop::Summary),
    Envelope(Box<Envelope>),
    /// A suspended destination.
    Suspension(queue::Suspension),
    /// Message bytes: `text` when they are UTF-8, else `hex`.
    Body {
        text: Option<String>,
        hex: Option<String>,
    },
    End {
        count: u64,
    },
    Error(String),
}

impl Event {
    pub fn body(bytes: Vec<u8>) -> Event {
        match String::from_utf8(bytes) {
            Ok(text) => Event::Body {
                text: Some(text),
                hex: None,
            },
            Err(e) => Event::Body {
                text: None,
                hex: Some(e.into_bytes().iter().map(|b| format!("{b:02x}")).collect()),
            },
        }
    }

    /// The bytes of a [`Event::Body`].
    pub fn body_bytes(text: &Option<String>, hex: &Option<String>) -> Vec<u8> {
        if let Some(t) = text {
            return t.clone().into_bytes();
        }
        let h = hex.as_deref().unwrap_or("").as_bytes();
        h.chunks(2)
            .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
            .collect()
    }
}

/// Writes one event line.
pub fn write_event(out: &mut impl Write, event: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, event).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

/// Parses the rest of a request line (after `admin `).
pub fn parse_request(json: &str) -> Result<Request, String> {
    serde_json::from_str(json).map_err(|e| format!("bad admin request: {e}"))
}
