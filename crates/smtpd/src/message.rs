//! From a finished transaction to what the queue stores (Postfix's smtpd → cleanup step):
//! header checks, the `Received:` header, the envelope.
//!
//! * `header_size_limit` per logical header (552 5.3.4; refused rather than truncated, as
//!   local submission does).
//! * `hopcount_limit`: more `Received:` headers than the limit, ours included, is a mail loop
//!   (554 5.4.6).
//! * Prepends `Received: from HELO (unknown [IP]) (using TLS...) by myhostname (mailroom)
//!   with ESMTPSA id QUEUEID for <rcpt>; date` (RFC 5321 section 4.4, RFC 3848 names).
//! * On `submission` listeners (RFC 6409 section 8) adds `Date:` and `Message-ID:` when the
//!   client left them out; mail from `smtp` listeners is passed on as it came.
//!
//! Input is the decoded message (LF line ends); output keeps LF line ends.

use std::io::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use envelope::{Envelope, QueueId};
use submit::cleanup::rfc5322_date;
use submit::headers::{self, Header};

use crate::session::{Role, Session, Transaction};
use proto::reply::{fixed, Reply};

/// A message ready for `Store::enqueue`.
#[derive(Debug)]
pub struct Prepared {
    pub id: QueueId,
    pub envelope: Envelope,
    pub message: Vec<u8>,
    /// For the `message-id=<...>` log line (empty when there is none).
    pub message_id: String,
}

/// Checks and completes a message; `Err` is the reply refusing it.
pub fn prepare(session: &Session, tx: Transaction, body: Vec<u8>) -> Result<Prepared, Reply> {
    let settings = &session.settings;
    let split = headers::split(&body);
    let size_limit = settings.header_size_limit;
    if size_limit > 0
        && split
            .headers
            .iter()
            .any(|h| h.raw.len() as u64 > size_limit)
    {
        return Err(fixed::header_too_big());
    }
    let hops = split.headers.iter().filter(|h| h.is("Received")).count();
    if settings.hopcount_limit > 0 && hops >= settings.hopcount_limit as usize {
        return Err(fixed::too_many_hops());
    }
    let id = tx.id.unwrap_or_else(QueueId::generate);
    let now = unix_now();
    let date = rfc5322_date(now);
    let mut message = Vec::with_capacity(body.len() + 512);
    received(&mut message, session, &tx, id, &date);
    let mut message_id = find_value(&split.headers, "Message-ID");
    if settings.role == Role::Submission {
        message.extend_from_slice(&body[..split.headers_end]);
        if find_value(&split.headers, "Date").is_empty() {
            message.extend_from_slice(format!("Date: {date}\n").as_bytes());
        }
        if message_id.is_empty() {
            message_id = format!("<{id}@{}>", settings.hostname);
            message.extend_from_slice(format!("Message-ID: {message_id}\n").as_bytes());
        }
        message.extend_from_slice(&body[split.headers_end..]);
    } else {
        message.extend_from_slice(&body);
    }
    let envelope = Envelope {
        sender: tx.sender,
        recipients: tx.recipients,
        arrival_time: now,
        envid: tx.params.envid,
        ret: tx.params.ret,
        origin: match settings.role {
            Role::Reinject => "reinject",
            Role::Smtp | Role::Submission => "smtpd",
        }
        .to_string(),
        filter: None,
    };
    Ok(Prepared {
        id,
        envelope,
        message,
        message_id,
    })
}

fn find_value(headers: &[Header<'_>], name: &str) -> String {
    headers
        .iter()
        .find(|h| h.is(name))
        .map(|h| h.value())
        .unwrap_or_default()
}

/// The `Received:` header, folded like Postfix's, appended to `out` (written in place: a
/// `format!` per part was most of this header's cost).
fn received(out: &mut Vec<u8>, session: &Session, tx: &Transaction, id: QueueId, date: &str) {
    // The client's word, so kept to printable ASCII: a header line must not carry 8-bit
    // bytes the next hop may refuse. Without HELO, the client's name (Postfix).
    let helo = session.helo.as_deref().unwrap_or(&session.client.name);
    let client = &session.client;
    out.extend_from_slice(b"Received: from ");
    for c in helo.chars() {
        out.push(if c.is_ascii_graphic() { c as u8 } else { b'?' });
    }
    // Writing into a Vec cannot fail.
    let _ = match client.ip {
        IpAddr::V4(v4) => writeln!(out, " ({} [{v4}])", client.name),
        IpAddr::V6(v6) => writeln!(out, " ({} [IPv6:{v6}])", client.name),
    };
    if let Some(tls) = &session.tls {
        let _ = writeln!(out, "\t(using {tls})");
    }
    let _ = write!(
        out,
        "\tby {} (mailroom) with {} id {id}",
        session.settings.hostname,
        session.protocol()
    );
    let _ = match tx.recipients.as_slice() {
        [only] => writeln!(out, "\n\tfor <{}>; {date}", only.address),
        _ => writeln!(out, ";\n\t{date}"),
    };
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Client, Settings};
    use envelope::Recipient;
    use proto::params::MailParams;
    use std::sync::Arc;

    fn session(role: Role, edit: impl FnOnce(&mut config::Config)) -> Session {
        let mut cfg = config::Config::embedded_default();
        cfg.myhostname = "mx.test".into();
        cfg.hopcount_limit = 3;
        cfg.header_size_limit = 200;
        edit(&mut cfg);
        let settings = Arc::new(Settings::new(
            &crate::SmtpdSettings::from_config(&cfg),
            role,
            false,
        ));
        let mut session = Session::new(settings, Client::new("192.0.2.7".parse().unwrap()));
        session.helo = Some("client.example".into());
        session.esmtp = true;
        session
    }

    fn tx(recipients: &[&str]) -> Transaction {
        Transaction {
            sender: "a@b.org".into(),
            params: MailParams {
                envid: Some("E1".into()),
                ret: Some("HDRS".into()),
                ..MailParams::default()
            },
            recipients: recipients.iter().map(|r| Recipient::new(*r)).collect(),
            id: None,
            chunks: None,
            refused_recipients: false,
            overshoot: 0,
            given_sender: "a@b.org".into(),
            actions: Default::default(),
        }
    }

    fn text(prepared: &Prepared) -> String {
        String::from_utf8_lossy(&prepared.message).into_owned()
    }

    #[test]
    fn received_header_and_envelope() {
        let s = session(Role::Smtp, |_| {});
        let body = b"Subject: hi\nMessage-ID: <m1@b.org>\n\nbody\n".to_vec();
        let p = prepare(&s, tx(&["x@mx.test"]), body).unwrap();
        let expected_start = format!(
            "Received: from client.example (unknown [192.0.2.7])\n\tby mx.test (mailroom) with ESMTP id {}\n\tfor <x@mx.test>; ",
            p.id
        );
        assert!(text(&p).starts_with(&expected_start), "{}", text(&p));
        assert!(text(&p).ends_with("\nSubject: hi\nMessage-ID: <m1@b.org>\n\nbody\n"));
        assert_eq!(p.message_id, "<m1@b.org>");
        assert_eq!(p.envelope.origin, "smtpd");
        assert_eq!(p.envelope.envid.as_deref(), Some("E1"));
        assert_eq!(p.envelope.ret.as_deref(), Some("HDRS"));
        assert_eq!(p.envelope.sender, "a@b.org");

        let two = prepare(&s, tx(&["x@mx.test", "y@mx.test"]), b"\nbody\n".to_vec()).unwrap();
        assert!(!text(&two).contains("for <"), "{}", text(&two));
        assert_eq!(two.message_id, "");
    }

    #[test]
    fn hop_count_and_header_size() {
        let s = session(Role::Smtp, |_| {});
        let hops = "Received: from a\n".repeat(2);
        assert!(prepare(
            &s,
            tx(&["x@mx.test"]),
            format!("{hops}\nbody\n").into_bytes()
        )
        .is_ok());
        let hops = "Received: from a\n".repeat(3);
        let refused = prepare(
            &s,
            tx(&["x@mx.test"]),
            format!("{hops}\nbody\n").into_bytes(),
        );
        assert_eq!(
            refused.unwrap_err().summary(),
            "554 5.4.6 Error: too many hops"
        );
        let big = format!("X-Big: {}\n\nbody\n", "y".repeat(300));
        let refused = prepare(&s, tx(&["x@mx.test"]), big.into_bytes());
        assert_eq!(refused.unwrap_err().code, 552);
    }

    #[test]
    fn submission_completes_headers_and_reinject_is_marked() {
        let s = session(Role::Submission, |_| {});
        let p = prepare(&s, tx(&["x@far.example"]), b"Subject: s\n\nbody\n".to_vec()).unwrap();
        let t = text(&p);
        assert!(t.contains("\nSubject: s\nDate: "), "{t}");
        assert!(
            t.contains(&format!("\nMessage-ID: <{}@mx.test>\n\nbody\n", p.id)),
            "{t}"
        );
        let r = session(Role::Reinject, |_| {});
        assert_eq!(
            prepare(&r, tx(&["x@mx.test"]), b"\nb\n".to_vec())
                .unwrap()
                .envelope
                .origin,
            "reinject"
        );
    }

    #[test]
    fn helo_with_odd_bytes_is_made_printable() {
        let mut s = session(Role::Smtp, |_| {});
        s.helo = Some("δ(x)".into());
        let p = prepare(&s, tx(&["x@mx.test"]), b"\nb\n".to_vec()).unwrap();
        assert!(
            text(&p).starts_with("Received: from ?(x) (unknown"),
            "{}",
            text(&p)
        );
        s.helo = None;
        let p = prepare(&s, tx(&["x@mx.test"]), b"\nb\n".to_vec()).unwrap();
        assert!(
            text(&p).starts_with("Received: from unknown (unknown [192.0.2.7])"),
            "no HELO: {}",
            text(&p)
        );
    }
}
