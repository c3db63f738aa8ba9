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
//! Inputs → outputs: [`SmtpSettings`] (from [`config::Config`]) once; per call an
//! [`envelope::Nexthop`] (a missing port is `smtp_default_port`), the queue ID (for logs),
//! the envelope, the recipient indexes and the message bytes (LF line ends) → an
//! [`envelope::DeliveryReport`]: the outcomes, and `destination_failure` when the
//! destination itself is unreachable so the scheduler can hold back its other mail.
//!
//! The rooms, in the order a message passes them:
//! `client` (orchestration) → `policy` (the destination's TLS level, from `maps`) → `cache`
//! (idle sessions per nexthop) → `dns` (where to connect) → `session` (connect, greeting,
//! EHLO, STARTTLS with `tls`'s certificate checks, AUTH with `sasl`) → `transaction` (MAIL,
//! RCPT, DATA) with
//! `wire` (commands and body encoding), `conn` (timed I/O), `reply` (reply parsing) and
//! `failure` (Postfix texts); `job` holds the message (DKIM-signed there, by
//! [`crate::dkim`], as it will go on the wire) and collects the outcomes; `sts` applies a
//! recipient domain's MTA-STS policy ([`crate::mta_sts`]) to the MX hosts and the TLS level.
//!
//! Invariants:
//! * exactly one outcome per requested recipient, in request order;
//! * sent only after the server's 2xx to the final dot; 5xx bounces, 4xx and every I/O
//!   problem defer — a timeout or lost connection never bounces mail;
//! * every read and write has a deadline (the `smtp_*_timeout` of its phase); server replies
//!   are bounded (4 KiB per line, 200 lines) and no input makes the client panic;
//! * at TLS levels `encrypt`, `verify` and `secure` nothing after EHLO is sent in plaintext;
//!   at `verify`/`secure` nothing is sent over a session whose certificate failed the check;
//! * a refused AUTH or a bad certificate defers, never bounces.
//!
//! The LMTP client (Postfix's lmtp(8), RFC 2033) is this client with [`Dialect::Lmtp`]
//! settings ([`SmtpSettings::lmtp_from_config`]) and [`SmtpClient::deliver_lmtp`]: LHLO, unix
//! sockets or TCP ([`LmtpNexthop`]), one reply per accepted recipient after the final dot,
//! the same pipelining, connection cache and texts.
//!
//! Security stance: runs unprivileged and trusts neither DNS nor the remote servers; their
//! text reaches logs and DSNs only as printable ASCII inside fixed frames. Envelope addresses
//! that could inject commands (CR, LF, angle brackets) are refused before connecting. TLS at
//! `may`/`encrypt` checks no certificate (as Postfix's levels of the same names): it defeats
//! passive eavesdropping only; `verify`/`secure` check the chain and names (`tls.rs`). SASL
//! passwords go only to the server they are configured for, by default only inside TLS. Under an enforced MTA-STS policy the certificate must verify.

/// Logs one info line under `smtp` or `lmtp`, the program name of the dialect (tracing
/// targets must be constants).
macro_rules! note {
    ($dialect:expr, $($arg:tt)+) => {
        match $dialect {
            $crate::smtp::Dialect::Smtp => tracing::info!(target: "smtp", $($arg)+),
            $crate::smtp::Dialect::Lmtp => tracing::info!(target: "lmtp", $($arg)+),
        }
    };
}

/// Logs one warning line under `smtp` or `lmtp` (as [`note!`]).
macro_rules! caution {
    ($dialect:expr, $($arg:tt)+) => {
        match $dialect {
            $crate::smtp::Dialect::Smtp => tracing::warn!(target: "smtp", $($arg)+),
            $crate::smtp::Dialect::Lmtp => tracing::warn!(target: "lmtp", $($arg)+),
        }
    };
}

mod answers;
mod cache;
mod client;
mod conn;
mod dane;
mod dns;
mod failure;
pub mod generic;
mod job;
mod lmtp;
mod maps;
mod policy;
mod reply;
mod sasl;
mod session;
mod settings;
mod sts;
mod tls;
mod tls_log;
mod transaction;
mod wire;

#[cfg(test)]
mod tests;

pub use client::SmtpClient;
pub use lmtp::LmtpNexthop;
pub use settings::{
    BindAddresses, Dialect, SaslSettings, SmtpSettings, SmtpTlsLevel, Timeouts, TlsVersions,
};

/// Errors of building a client. Delivery problems are never errors: they are outcomes.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("dns_nameservers: {0:?} is not an IP address or IP:port")]
    Nameserver(String),
    #[error("cannot start the DNS resolver: {0}")]
    Resolver(String),
}
