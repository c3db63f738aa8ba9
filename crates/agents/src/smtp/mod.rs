//! The SMTP client (Postfix's smtp(8)): delivers a queued message to another mail server.
//!
//! Job: for one message, some of its recipients and one nexthop, find the servers (MX records
//! sorted by preference, A/AAAA when there is no MX, or the `[host]:port` the router chose),
//! speak ESMTP with them (EHLO/HELO, STARTTLS, PIPELINING, SIZE, 8BITMIME, SMTPUTF8, DSN) and
//! report one [`envelope::Outcome`] per recipient with Postfix's texts: `250 2.0.0 Ok: queued
//! as X` when sent, `host h[ip] said: 450 … (in reply to RCPT TO command)` when refused,
//! `conversation with h[ip] timed out while sending end of data -- message may be sent more
//! than once` when the final reply never came.
//!
//! Inputs → outputs: [`SmtpSettings`] (from [`config::Config`]) once; per call a [`Nexthop`],
//! the queue ID (for logs), the envelope, the recipient indexes and the message bytes (LF
//! line ends) → an [`SmtpReport`]: the outcomes, and `destination_failure` when the
//! destination itself is unreachable so the scheduler can hold back its other mail.
//!
//! The rooms, in the order a message passes them:
//! `client` (orchestration) → `cache` (idle sessions per nexthop) → `dns` (where to connect)
//! → `session` (connect, greeting, EHLO, STARTTLS) → `transaction` (MAIL, RCPT, DATA) with
//! `wire` (commands and body encoding), `conn` (timed I/O), `reply` (reply parsing) and
//! `failure` (Postfix texts); `job` holds the message and collects the outcomes.
//!
//! Invariants:
//! * exactly one outcome per requested recipient, in request order;
//! * sent only after the server's 2xx to the final dot; 5xx bounces, 4xx and every I/O
//!   problem defer — a timeout or lost connection never bounces mail;
//! * every read and write has a deadline (the `smtp_*_timeout` of its phase); server replies
//!   are bounded (4 KiB per line, 200 lines) and no input makes the client panic;
//! * at `smtp_tls_security_level = encrypt` nothing after EHLO is sent in plaintext.
//!
//! Security stance: runs unprivileged and trusts neither DNS nor the remote servers; their
//! text reaches logs and DSNs only as printable ASCII inside fixed frames. Envelope addresses
//! that could inject commands (CR, LF, angle brackets) are refused before connecting. TLS at
//! `may`/`encrypt` checks no certificate (as Postfix's levels of the same names): it defeats
//! passive eavesdropping only.

mod cache;
mod client;
mod conn;
mod dns;
mod failure;
mod job;
mod reply;
mod session;
mod settings;
mod transaction;
mod wire;

#[cfg(test)]
mod tests;

use std::fmt;

pub use client::SmtpClient;
pub use settings::{SmtpSettings, Timeouts, TlsLevel};

use envelope::Outcome;

/// Where to connect, in Postfix's nexthop terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Nexthop {
    /// A domain (MX lookup), a host name or an IP address (no brackets).
    pub host: String,
    pub port: u16,
    /// `true` for `example.com` (look up MX), `false` for `[host]` (connect to the host's
    /// own addresses).
    pub mx_lookup: bool,
}

impl Nexthop {
    /// Parses Postfix's nexthop syntax: `example.com`, `example.com:2525`, `[mail.example]`,
    /// `[192.0.2.1]:2526`, `[ipv6:2001:db8::1]:25`. A missing port is `default_port`.
    pub fn parse(text: &str, default_port: u16) -> Result<Nexthop, SmtpError> {
        let bad = || SmtpError::Nexthop(text.to_string());
        let text = text.trim();
        let (host, rest, mx_lookup) = match text.strip_prefix('[') {
            Some(inner) => {
                let (host, rest) = inner.split_once(']').ok_or_else(bad)?;
                let host = strip_ipv6_tag(host);
                (host, rest, false)
            }
            None => match text.find(':') {
                Some(colon) => (&text[..colon], &text[colon..], true),
                None => (text, "", true),
            },
        };
        let port = match rest {
            "" => default_port,
            _ => rest
                .strip_prefix(':')
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|&p| p != 0)
                .ok_or_else(bad)?,
        };
        let valid = !host.is_empty() && !host.contains(['[', ']', ' ', '/', '\r', '\n']);
        if !valid {
            return Err(bad());
        }
        Ok(Nexthop {
            host: host.to_string(),
            port,
            mx_lookup,
        })
    }
}

fn strip_ipv6_tag(host: &str) -> &str {
    match host.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("ipv6:") => &host[5..],
        _ => host,
    }
}

impl fmt::Display for Nexthop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mx_lookup {
            write!(f, "{}:{}", self.host, self.port)
        } else {
            write!(f, "[{}]:{}", self.host, self.port)
        }
    }
}

/// What one [`SmtpClient::deliver`] call produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpReport {
    /// Exactly one per requested recipient, in request order; `relay` is `host[ip]:port`
    /// (or `none` when no server was reached).
    pub outcomes: Vec<Outcome>,
    /// Set when the destination itself failed (no usable DNS answer for now, every address
    /// refused, timed out or failed before MAIL): the scheduler may mark it dead for a while
    /// and defer its other mail without connecting. Never set for bounces.
    pub destination_failure: Option<String>,
}

/// Errors of building a client. Delivery problems are never errors: they are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("dns_nameservers: {0:?} is not an IP address or IP:port")]
    Nameserver(String),
    #[error("cannot start the DNS resolver: {0}")]
    Resolver(String),
    #[error("{0:?} is not a nexthop (expected host, host:port, [host] or [host]:port)")]
    Nexthop(String),
}

#[cfg(test)]
mod nexthop_tests {
    use super::*;

    fn hop(host: &str, port: u16, mx_lookup: bool) -> Nexthop {
        Nexthop {
            host: host.into(),
            port,
            mx_lookup,
        }
    }

    #[test]
    fn postfix_syntax() {
        let cases = [
            ("example.com", hop("example.com", 25, true)),
            ("example.com:2525", hop("example.com", 2525, true)),
            ("[mail.example]", hop("mail.example", 25, false)),
            ("[127.0.0.1]:2526", hop("127.0.0.1", 2526, false)),
            ("[ipv6:2001:db8::1]:587", hop("2001:db8::1", 587, false)),
            ("[::1]", hop("::1", 25, false)),
        ];
        for (text, want) in cases {
            assert_eq!(Nexthop::parse(text, 25).unwrap(), want, "{text}");
        }
        for bad in ["", "[x", "[x]y", "x:0", "x:99999", "[]", "a b", "x:y:z"] {
            assert!(Nexthop::parse(bad, 25).is_err(), "{bad:?}");
        }
        assert_eq!(
            hop("127.0.0.1", 2526, false).to_string(),
            "[127.0.0.1]:2526"
        );
    }
}
