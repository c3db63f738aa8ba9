//! Bounces: turns the failed recipients of a queued message into a delivery status
//! notification (RFC 3464 `multipart/report; report-type=delivery-status`) for its sender.
//!
//! Inputs → outputs: the original envelope and bytes plus the failed recipients → the bytes
//! of a new message (LF line endings) that the scheduler queues with the null sender.
//!
//! Invariants (DESIGN invariant 5, enforced by the scheduler that calls this): a null-sender
//! message is never bounced to its sender; its failure becomes one notice to the postmaster
//! ([`Kind::PostmasterNotice`]) and a failed notice is dropped.
//!
//! Security stance: pure function; the original's headers are copied as data into a
//! `text/rfc822-headers` part, never interpreted.

use envelope::{Envelope, QueueId};

/// One recipient that could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub address: String,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// To the sender: these recipients failed for good.
    Bounce,
    /// To the postmaster: a null-sender message (itself a bounce) could not be delivered.
    PostmasterNotice,
}

pub struct Input<'a> {
    pub id: QueueId,
    pub envelope: &'a Envelope,
    pub original: &'a [u8],
    pub myhostname: &'a str,
    pub failed: &'a [Failed],
    pub kind: Kind,
    /// Where the notification goes (the original sender, or the postmaster).
    pub to: &'a str,
}

/// Builds the notification message.
pub fn build(input: &Input<'_>) -> Vec<u8> {
    let boundary = format!(
        "{}.{}/{}",
        input.id, input.envelope.arrival_time, input.myhostname
    );
    let date = chrono::Local::now().to_rfc2822();
    let subject = match input.kind {
        Kind::Bounce => "Undelivered Mail Returned to Sender",
        Kind::PostmasterNotice => "Postmaster Copy: Undelivered Mail",
    };
    let mut m = String::new();
    m += &format!(
        "From: MAILER-DAEMON@{} (Mail Delivery System)\n",
        input.myhostname
    );
    m += &format!("To: {}\n", input.to);
    m += &format!("Subject: {subject}\n");
    m += &format!("Date: {date}\n");
    m += &format!("Message-ID: <{}.bounce@{}>\n", input.id, input.myhostname);
    m += "Auto-Submitted: auto-replied\n";
    m += "MIME-Version: 1.0\n";
    m += &format!(
        "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"{boundary}\"\n\n"
    );
    m += "This is a MIME-encapsulated message.\n\n";
    m += &format!("--{boundary}\nContent-Description: Notification\nContent-Type: text/plain; charset=utf-8\n\n");
    m += &human_part(input);
    m += &format!("\n--{boundary}\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n\n");
    m += &status_part(input);
    m += &format!("\n--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n");
    let mut out = m.into_bytes();
    out.extend_from_slice(header_block(input.original));
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

fn human_part(input: &Input<'_>) -> String {
    let mut t = format!(
        "This is the mail system at host {}.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients.\n\n",
        input.myhostname
    );
    if input.kind == Kind::PostmasterNotice {
        t = format!(
            "This is the mail system at host {}.\n\nA message with the null sender (a bounce or notification) could not be\ndelivered; this copy goes to the postmaster only, and the message is dropped.\n\n",
            input.myhostname
        );
    }
    for f in input.failed {
        t += &format!("<{}>: {}\n", f.address, f.reason);
    }
    t
}

fn status_part(input: &Input<'_>) -> String {
    let arrival = chrono::DateTime::from_timestamp(input.envelope.arrival_time as i64, 0)
        .map(|d| d.to_rfc2822())
        .unwrap_or_default();
    let mut t = format!(
        "Reporting-MTA: dns; {}\nX-Mailroom-Queue-ID: {}\nArrival-Date: {arrival}\n",
        input.myhostname, input.id
    );
    if let Some(envid) = &input.envelope.envid {
        t += &format!("Original-Envelope-Id: {envid}\n");
    }
    for f in input.failed {
        t += &format!(
            "\nFinal-Recipient: rfc822; {}\nAction: failed\nStatus: {}\nDiagnostic-Code: X-Mailroom; {}\n",
            f.address, f.status, f.reason
        );
    }
    t
}

/// The original's header block (up to the first empty line), always ending in a newline.
fn header_block(original: &[u8]) -> &[u8] {
    let end = original
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 1)
        .unwrap_or(original.len());
    &original[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounce_names_each_failed_recipient_and_carries_the_headers() {
        let env = Envelope::new("s@x", vec!["a@y".into()], 1_700_000_000);
        let failed = vec![Failed {
            address: "a@y".into(),
            status: "5.1.1".into(),
            reason: "unknown user: \"a\"".into(),
        }];
        let input = Input {
            id: QueueId::generate(),
            envelope: &env,
            original: b"Subject: hello\nFrom: s@x\n\nsecret body\n",
            myhostname: "mx.example",
            failed: &failed,
            kind: Kind::Bounce,
            to: "s@x",
        };
        let text = String::from_utf8(build(&input)).unwrap();
        assert!(text.contains("Final-Recipient: rfc822; a@y\nAction: failed\nStatus: 5.1.1"));
        assert!(text.contains("Subject: hello\n"));
        assert!(!text.contains("secret body"), "only headers are returned");
        assert!(text.contains("report-type=delivery-status"));
    }
}
