//! The admin part of the control socket protocol, and its client.
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
//! The daemon's public socket accepts only [`Request::is_public`] requests (listings), from
//! anyone.

use crate::qshape::{Options, Shape};
use crate::row::{Row, State};
use crate::rowline;
use crate::select::Selector;
use crate::stats::Stats;
use crate::superop;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

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
}

impl Request {
    /// A listing any local user may ask for (Postfix lets everyone run `mailq`): it reads
    /// the queue's envelopes, never message contents, and changes nothing.
    pub fn is_public(&self) -> bool {
        matches!(self, Request::List { .. } | Request::Qshape { .. })
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
    /// One explicitly named message was changed: `removed`, `placed on hold`, …
    Done {
        id: String,
        what: String,
    },
    Warning(String),
    Summary(superop::Summary),
    Envelope(Box<Envelope>),
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

/// Why a request could not go through the daemon.
#[derive(Debug)]
pub enum ClientError {
    /// Nobody listens: the daemon is down (the caller may work on the store directly).
    NoDaemon(io::Error),
    /// The daemon answered badly or went away.
    Broken(String),
}

/// Sends `request` to the daemon and calls `on_event` for each event until `End`, which is
/// not passed on; `Error` becomes `Err(Broken)`. `ids`, if any, are copied to the daemon from
/// a separate thread, so a long ID list and a long answer cannot block each other.
pub fn call(
    socket: &Path,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let stream = UnixStream::connect(socket).map_err(ClientError::NoDaemon)?;
    call_on(stream, request, ids, on_event)
}

/// [`call`] on a stream already connected (so the caller keeps `ids` if nobody listens).
pub fn call_on(
    mut stream: UnixStream,
    request: &Request,
    ids: Option<Box<dyn Read + Send>>,
    mut on_event: impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let broken = |e: io::Error| ClientError::Broken(e.to_string());
    stream
        .set_write_timeout(Some(Duration::from_secs(60)))
        .map_err(broken)?;
    let line = serde_json::to_string(request).map_err(|e| ClientError::Broken(e.to_string()))?;
    stream
        .write_all(format!("{VERB} {line}\n").as_bytes())
        .map_err(broken)?;
    let writer = match ids {
        Some(mut ids) => {
            let mut w = stream.try_clone().map_err(broken)?;
            Some(std::thread::spawn(move || {
                let _ = io::copy(&mut ids, &mut w);
                let _ = w.shutdown(std::net::Shutdown::Write);
            }))
        }
        None => {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            None
        }
    };
    let result = read_events(BufReader::new(stream), &mut on_event);
    if let Some(w) = writer {
        let _ = w.join();
    }
    result
}

fn read_events(
    mut reader: impl BufRead,
    on_event: &mut impl FnMut(Event) -> io::Result<()>,
) -> Result<u64, ClientError> {
    let mut line = Vec::with_capacity(512);
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| ClientError::Broken(e.to_string()))?;
        if n == 0 {
            break;
        }
        let bad = |why: String| ClientError::Broken(format!("bad answer from the daemon: {why}"));
        let event = if line.starts_with(rowline::PREFIX) {
            Event::Row(rowline::decode(&line).ok_or_else(|| bad("a bad row line".into()))?)
        } else {
            serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?
        };
        match event {
            Event::End { count } => return Ok(count),
            Event::Error(e) => return Err(ClientError::Broken(e)),
            other => {
                if let Err(e) = on_event(other) {
                    // The reader went away (`mailq | head -1`): stop quietly.
                    if e.kind() == io::ErrorKind::BrokenPipe {
                        return Ok(0);
                    }
                    return Err(ClientError::Broken(e.to_string()));
                }
            }
        }
    }
    Err(ClientError::Broken(
        "the daemon closed the connection before the end of its answer".into(),
    ))
}
