//! The phases of an SMTP conversation and the texts Postfix logs when one of them fails, so
//! `mailq`, log greps and DSNs read the same as with Postfix.
//!
//! Inputs → outputs: a [`Phase`] plus a reply, an I/O error or a local reason → a
//! [`Failure`] (kind, RFC 3463 status, text) → one [`Outcome`] per affected recipient.
//! Invariants: a failure is never `Sent`; I/O errors are always deferrals (4.4.2), so a
//! broken connection can never bounce mail; texts hold only printable ASCII (replies are
//! already made printable by `reply`).
//! Security stance: server text is untrusted and appears only inside these fixed frames.

use envelope::{Outcome, OutcomeKind};

use super::conn::{ConnError, Peer};
use super::reply::Reply;

/// Where in the conversation we are, for timeouts and "in reply to" texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Greeting,
    Ehlo,
    Helo,
    /// LMTP's EHLO.
    Lhlo,
    StartTls,
    Auth,
    RsetProbe,
    Mail,
    Rcpt,
    Data,
    Body,
    Dot,
    Rset,
}

impl Phase {
    /// Postfix's words after "timed out while" / "lost connection … while".
    pub fn during(self) -> &'static str {
        match self {
            Phase::Greeting => "receiving the initial server greeting",
            Phase::Ehlo => "performing the EHLO handshake",
            Phase::Helo => "performing the HELO handshake",
            Phase::Lhlo => "performing the LHLO handshake",
            Phase::StartTls => "receiving the STARTTLS response",
            Phase::Auth => "sending the AUTH command",
            Phase::RsetProbe => "sending RSET probe",
            Phase::Mail => "sending MAIL FROM",
            Phase::Rcpt => "sending RCPT TO",
            Phase::Data => "sending DATA command",
            Phase::Body => "sending message body",
            Phase::Dot => "sending end of data -- message may be sent more than once",
            Phase::Rset => "sending final RSET",
        }
    }

    /// Postfix's words after "in reply to".
    pub fn request(self) -> &'static str {
        match self {
            Phase::Greeting => "initial server greeting",
            Phase::Ehlo => "EHLO command",
            Phase::Helo => "HELO command",
            Phase::Lhlo => "LHLO command",
            Phase::StartTls => "STARTTLS command",
            Phase::Auth => "AUTH command",
            Phase::RsetProbe => "RSET probe",
            Phase::Mail => "MAIL FROM command",
            Phase::Rcpt => "RCPT TO command",
            Phase::Data => "DATA command",
            Phase::Body | Phase::Dot => "end of DATA command",
            Phase::Rset => "final RSET command",
        }
    }
}

/// A non-delivery verdict shared by one or more recipients.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub kind: OutcomeKind,
    pub dsn: String,
    pub text: String,
}

impl Failure {
    pub fn deferred(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            kind: OutcomeKind::Deferred,
            dsn: dsn.to_string(),
            text: text.into(),
        }
    }

    pub fn bounced(dsn: &str, text: impl Into<String>) -> Failure {
        Failure {
            kind: OutcomeKind::Bounced,
            dsn: dsn.to_string(),
            text: text.into(),
        }
    }

    /// A timeout, a lost connection or a protocol error in `phase`.
    pub fn from_conn(error: &ConnError, peer: &Peer, phase: Phase) -> Failure {
        let namaddr = peer.namaddr();
        match error {
            ConnError::Timeout => Failure::deferred(
                "4.4.2",
                format!(
                    "conversation with {namaddr} timed out while {}",
                    phase.during()
                ),
            ),
            ConnError::Lost => Failure::deferred(
                "4.4.2",
                format!("lost connection with {namaddr} while {}", phase.during()),
            ),
            ConnError::Protocol(detail) => Failure::deferred(
                "4.5.0",
                format!(
                    "protocol error with {namaddr} while {}: {detail}",
                    phase.during()
                ),
            ),
        }
    }

    /// A negative (or unexpected) reply: 5xx bounces, anything else defers, with Postfix's
    /// `host h[ip] said: … (in reply to … command)`.
    pub fn from_reply(reply: &Reply, peer: &Peer, phase: Phase) -> Failure {
        let text = format!(
            "host {} said: {} (in reply to {})",
            peer.namaddr(),
            reply.text(),
            phase.request()
        );
        match reply.class() {
            5 => Failure::bounced(&reply.dsn(), text),
            4 => Failure::deferred(&reply.dsn(), text),
            _ => Failure::deferred("4.5.0", text),
        }
    }

    /// The server would not talk to us (greeting, EHLO 421, HELO): always a deferral (Postfix's
    /// `smtp_skip_5xx_greeting`), so another MX host or a later try gets the mail.
    pub fn refused(reply: &Reply, peer: &Peer) -> Failure {
        let dsn = soften(&reply.dsn());
        Failure::deferred(
            &dsn,
            format!(
                "host {} refused to talk to me: {}",
                peer.namaddr(),
                reply.text()
            ),
        )
    }

    pub fn outcome(&self, recipient: usize, relay: &str) -> Outcome {
        Outcome {
            recipient,
            kind: self.kind.clone(),
            dsn: self.dsn.clone(),
            text: self.text.clone(),
            relay: relay.to_string(),
            expanded: Vec::new(),
        }
    }
}

/// `5.x.y` → `4.x.y`: a permanent code used for a temporary verdict.
pub(crate) fn soften(dsn: &str) -> String {
    match dsn.strip_prefix('5') {
        Some(rest) => format!("4{rest}"),
        None if dsn.starts_with('4') => dsn.to_string(),
        None => "4.0.0".to_string(),
    }
}

/// The outcome for a recipient the server accepted after the final dot.
pub(crate) fn sent(reply: &Reply, recipient: usize, relay: &str) -> Outcome {
    Outcome {
        recipient,
        kind: OutcomeKind::Sent,
        dsn: reply.dsn(),
        text: reply.text(),
        relay: relay.to_string(),
        expanded: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        Peer {
            host: "mx.example".into(),
            addr: "192.0.2.1:25"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        }
    }

    fn reply(code: u16, text: &str) -> Reply {
        Reply {
            code,
            lines: vec![format!("{code} {text}")],
        }
    }

    #[test]
    fn postfix_texts() {
        let f = Failure::from_conn(&ConnError::Timeout, &peer(), Phase::Dot);
        assert_eq!(f.dsn, "4.4.2");
        assert_eq!(
            f.text,
            "conversation with mx.example[192.0.2.1] timed out while sending end of data -- message may be sent more than once"
        );
        let f = Failure::from_conn(&ConnError::Lost, &peer(), Phase::Greeting);
        assert_eq!(
            f.text,
            "lost connection with mx.example[192.0.2.1] while receiving the initial server greeting"
        );
        let f = Failure::from_reply(&reply(450, "4.2.0 busy"), &peer(), Phase::Rcpt);
        assert_eq!(f.kind, OutcomeKind::Deferred);
        assert_eq!(
            f.text,
            "host mx.example[192.0.2.1] said: 450 4.2.0 busy (in reply to RCPT TO command)"
        );
        let f = Failure::from_reply(&reply(550, "no"), &peer(), Phase::Mail);
        assert_eq!((f.kind, f.dsn.as_str()), (OutcomeKind::Bounced, "5.0.0"));
    }

    #[test]
    fn refusals_are_soft() {
        let f = Failure::refused(&reply(554, "5.7.1 go away"), &peer());
        assert_eq!((f.kind, f.dsn.as_str()), (OutcomeKind::Deferred, "4.7.1"));
        assert_eq!(
            f.text,
            "host mx.example[192.0.2.1] refused to talk to me: 554 5.7.1 go away"
        );
        assert_eq!(soften("2.0.0"), "4.0.0");
    }

    #[test]
    fn unexpected_class_defers() {
        let f = Failure::from_reply(&reply(250, "ok"), &peer(), Phase::Data);
        assert_eq!((f.kind, f.dsn.as_str()), (OutcomeKind::Deferred, "4.5.0"));
    }
}
