//! Every request the control socket takes, as one type ([`Command`]), with its one-line
//! answer ([`Reply`]); the only place either is turned into text or read back.
//!
//! ```text
//! flush\n               → ok N\n          every deferred message due now (N of them)
//! flush-site DOMAIN\n   → ok N\n          the deferred mail for one destination
//! flush-id QUEUEID\n    → ok 0|1\n        one message
//! reload\n              → ok\n            re-read the configuration and aliases (as SIGHUP)
//! ping\n                → ok\n            is the daemon there?
//! admin {json}\n        → events          a queue request ([`Request`]), see the parent module
//! anything else         → error WHY\n
//! ```
//! The words are the wire format scripts and the benchmark already speak (`ping`), so they
//! are kept as they are; an argument after `flush`, `reload` or `ping` is ignored.

use super::{parse_request, Request, VERB};
use envelope::QueueId;
use std::fmt;

/// One request on the control socket.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// A queue request, answered with a stream of [`super::Event`]s.
    Admin(Request),
    /// Every deferred message due now (`postqueue -f`, `sendmail -q`).
    Flush,
    /// The deferred mail for one destination (`postqueue -s SITE`, `sendmail -qRSITE`).
    FlushSite(String),
    /// One message (`postqueue -i ID`, `sendmail -qIID`).
    FlushId(QueueId),
    /// Re-read the configuration and the alias files (`newaliases`).
    Reload,
    /// Is the daemon there?
    Ping,
}

/// A request line that is not a [`Command`], with the reason the client is told. An admin
/// request that does not parse is answered as an event stream (`{"Error":…}`), the short
/// commands with a line (`error …`), so the two are kept apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Admin(String),
    Command(String),
}

impl Command {
    /// The request line, newline included.
    pub fn encode(&self) -> Result<String, String> {
        Ok(match self {
            Command::Admin(request) => return admin_line(request),
            Command::Flush => "flush\n".into(),
            Command::FlushSite(site) => format!("flush-site {site}\n"),
            Command::FlushId(id) => format!("flush-id {id}\n"),
            Command::Reload => "reload\n".into(),
            Command::Ping => "ping\n".into(),
        })
    }

    /// Reads a request line (with or without its line end).
    pub fn decode(line: &str) -> Result<Command, Refusal> {
        if let Some(json) = line.strip_prefix(VERB).map(str::trim) {
            return parse_request(json)
                .map(Command::Admin)
                .map_err(Refusal::Admin);
        }
        let line = line.trim();
        let (verb, arg) = line.split_once(' ').unwrap_or((line, ""));
        match verb {
            "flush" => Ok(Command::Flush),
            "flush-site" => Ok(Command::FlushSite(arg.trim().to_string())),
            "flush-id" => QueueId::parse(arg.trim())
                .map(Command::FlushId)
                .map_err(|e| Refusal::Command(e.to_string())),
            "reload" => Ok(Command::Reload),
            "ping" => Ok(Command::Ping),
            other => Err(Refusal::Command(format!("unknown command {other:?}"))),
        }
    }

    /// What any local user may ask on the public socket: `ping` and the listings.
    pub fn is_public(&self) -> bool {
        match self {
            Command::Admin(request) => request.is_public(),
            Command::Ping => true,
            _ => false,
        }
    }
}

/// `admin {json}\n`.
pub(super) fn admin_line(request: &Request) -> Result<String, String> {
    let json = serde_json::to_string(request).map_err(|e| e.to_string())?;
    Ok(format!("{VERB} {json}\n"))
}

/// The one-line answer to a short command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Done; a flush says how many messages it made due.
    Ok(Option<u64>),
    /// Refused, and why.
    Error(String),
    /// A line that is neither (a daemon that went away mid-answer sends nothing at all).
    Unexpected(String),
}

impl Reply {
    /// The answer line, newline included.
    pub fn encode(&self) -> String {
        format!("{self}\n")
    }

    /// Reads an answer line (with or without its line end).
    pub fn decode(line: &str) -> Reply {
        let line = line.trim_end();
        match line.split_once(' ').unwrap_or((line, "")) {
            ("ok", "") => Reply::Ok(None),
            ("ok", n) if n.parse::<u64>().is_ok() => Reply::Ok(n.parse().ok()),
            ("error", why) => Reply::Error(why.to_string()),
            _ => Reply::Unexpected(line.to_string()),
        }
    }
}

/// The answer line without its line end.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Ok(None) => f.write_str("ok"),
            Reply::Ok(Some(n)) => write!(f, "ok {n}"),
            Reply::Error(why) => write!(f, "error {why}"),
            Reply::Unexpected(line) => f.write_str(line),
        }
    }
}
