//! Delivery status notifications (RFC 3464 `multipart/report; report-type=delivery-status`):
//! bounces, "delayed mail" warnings, success notices, and the postmaster's copy of a failed
//! bounce.
//!
//! Inputs → outputs: the original envelope and bytes plus per-recipient reports → the bytes of
//! a new message (LF line endings) that the scheduler queues with the null sender.
//!
//! Invariants (DESIGN invariant 5, enforced by the scheduler that calls this): a null-sender
//! message is never reported to its sender; its failure becomes one notice to the postmaster
//! ([`Kind::PostmasterNotice`]) and a failed notice is dropped. RFC 3461 is honoured by the
//! caller choosing recipients (NOTIFY) and here by RET (`HDRS` returns headers only) and
//! ENVID/ORCPT (echoed in the report).
//!
//! Security stance: pure function; the original is copied as data into the last MIME part,
//! never interpreted.

#![forbid(unsafe_code)]

pub mod fuzzing;

use envelope::{Envelope, QueueId};

/// What happened to one recipient, as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Failed,
    Delayed,
    Delivered,
    Relayed,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Delivered => "delivered",
            Action::Relayed => "relayed",
        }
    }
}

/// One recipient's line in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub address: String,
    /// RFC 3461 ORCPT as given by the client (`rfc822;user@example`).
    pub orcpt: Option<String>,
    pub action: Action,
    /// RFC 3463 status, e.g. `5.1.1`.
    pub status: String,
    pub reason: String,
    /// `host[addr]:port` of the remote server that answered, if any.
    pub remote_mta: Option<String>,
}

/// Kept for the scheduler's simple bounces: a failed recipient.
pub type Failed = Report;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// To the sender: these recipients failed for good.
    Bounce,
    /// To the postmaster: a null-sender message (itself a bounce) could not be delivered.
    PostmasterNotice,
    /// To the sender: not delivered yet, still trying (`delay_warning_time`).
    Delay,
    /// To the sender: delivered, as asked with NOTIFY=SUCCESS.
    Success,
}

pub struct Input<'a> {
    pub id: QueueId,
    pub envelope: &'a Envelope,
    pub original: &'a [u8],
    pub myhostname: &'a str,
    pub reports: &'a [Report],
    pub kind: Kind,
    /// Where the notification goes (the original sender, or the postmaster).
    pub to: &'a str,
    /// Return at most this many bytes of the original as `message/rfc822`; a bigger
    /// original (or RET=HDRS) is returned as headers only.
    pub size_limit: usize,
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
        Kind::Delay => "Delayed Mail (still being retried)",
        Kind::Success => "Successful Mail Delivery Report",
    };
    let mut m = String::new();
    m += &format!(
        "From: MAILER-DAEMON@{} (Mail Delivery System)\n",
        input.myhostname
    );
    m += &format!("To: {}\n", printable(input.to));
    m += &format!("Subject: {subject}\n");
    m += &format!("Date: {date}\n");
    m += &format!(
        "Message-ID: <{}.{}@{}>\n",
        input.id,
        kind_tag(input.kind),
        input.myhostname
    );
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
    let mut out = m.into_bytes();
    let headers_only = input
        .envelope
        .ret
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("HDRS"))
        || input.original.len() > input.size_limit
        || input.kind == Kind::Success;
    if headers_only {
        out.extend_from_slice(format!("\n--{boundary}\nContent-Description: Undelivered Message Headers\nContent-Type: text/rfc822-headers\n\n").as_bytes());
        out.extend_from_slice(header_block(input.original));
    } else {
        out.extend_from_slice(format!("\n--{boundary}\nContent-Description: Undelivered Message\nContent-Type: message/rfc822\n\n").as_bytes());
        out.extend_from_slice(input.original);
        if !input.original.ends_with(b"\n") {
            out.push(b'\n');
        }
    }
    out.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    out
}

fn kind_tag(kind: Kind) -> &'static str {
    match kind {
        Kind::Bounce => "bounce",
        Kind::PostmasterNotice => "notice",
        Kind::Delay => "delay",
        Kind::Success => "success",
    }
}

fn human_part(input: &Input<'_>) -> String {
    let host = input.myhostname;
    let mut t = match input.kind {
        Kind::Bounce => format!("This is the mail system at host {host}.\n\nI'm sorry to have to inform you that your message could not\nbe delivered to one or more recipients. It's attached below.\n\n"),
        Kind::PostmasterNotice => format!("This is the mail system at host {host}.\n\nA message with the null sender (a bounce or notification) could not be\ndelivered; this copy goes to the postmaster only, and the message is dropped.\n\n"),
        Kind::Delay => format!("This is the mail system at host {host}.\n\n####################################################################\n# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #\n####################################################################\n\nYour message could not be delivered yet; the mail system will keep\ntrying until the queue lifetime runs out.\n\n"),
        Kind::Success => format!("This is the mail system at host {host}.\n\nYour message was successfully delivered to the destination(s)\nlisted below.\n\n"),
    };
    for r in input.reports {
        t += &format!("<{}>: {}\n", printable(&r.address), printable(&r.reason));
    }
    t
}

fn status_part(input: &Input<'_>) -> String {
    // RFC 3464 Arrival-Date is optional: left out for a time RFC 5322 cannot show (past the
    // year 9999), which chrono's `to_rfc2822` would panic on.
    let arrival = i64::try_from(input.envelope.arrival_time)
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .filter(|d| (0..=9999).contains(&chrono::Datelike::year(d)))
        .map(|d| format!("Arrival-Date: {}\n", d.to_rfc2822()))
        .unwrap_or_default();
    let mut t = String::new();
    if let Some(envid) = &input.envelope.envid {
        t += &format!("Original-Envelope-Id: {}\n", printable(envid));
    }
    t += &format!(
        "Reporting-MTA: dns; {}\nX-Mailroom-Queue-ID: {}\n{arrival}",
        input.myhostname, input.id
    );
    for r in input.reports {
        t += "\n";
        if let Some(orcpt) = &r.orcpt {
            t += &format!("Original-Recipient: {}\n", printable(orcpt));
        }
        t += &format!(
            "Final-Recipient: rfc822; {}\nAction: {}\nStatus: {}\n",
            printable(&r.address),
            r.action.as_str(),
            printable(&r.status)
        );
        match &r.remote_mta {
            Some(mta) => {
                let host = mta.split('[').next().unwrap_or(mta);
                t += &format!(
                    "Remote-MTA: dns; {}\nDiagnostic-Code: smtp; {}\n",
                    printable(host),
                    printable(&r.reason)
                );
            }
            None => t += &format!("Diagnostic-Code: X-Mailroom; {}\n", printable(&r.reason)),
        }
    }
    t
}

/// Envelope or report text as it goes into a header or DSN field: a control character (a
/// line break would start a forged field, and RFC 3464 fields are printable text) becomes
/// `?`, as Postfix's `printable()` does. Text from SMTP is clean already; `sendmail`
/// arguments (`-f`, `-V`, recipients) may hold any control character but CR, LF and NUL.
fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    match text.contains(char::is_control) {
        false => text.into(),
        true => text
            .chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into(),
    }
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

    fn report(action: Action, status: &str) -> Report {
        Report {
            address: "a@y".into(),
            orcpt: Some("rfc822;A@Y".into()),
            action,
            status: status.into(),
            reason: "unknown user: \"a\"".into(),
            remote_mta: None,
        }
    }

    fn build_with(env: &Envelope, kind: Kind, reports: &[Report], limit: usize) -> String {
        let input = Input {
            id: QueueId::generate(),
            envelope: env,
            original: b"Subject: hello\nFrom: s@x\n\nsecret body\n",
            myhostname: "mx.example",
            reports,
            kind,
            to: "s@x",
            size_limit: limit,
        };
        String::from_utf8(build(&input)).unwrap()
    }

    #[test]
    fn bounce_names_each_failed_recipient_and_returns_the_message() {
        let mut env = Envelope::new("s@x", vec!["a@y".into()], 1_700_000_000);
        env.envid = Some("ENV123".into());
        let text = build_with(
            &env,
            Kind::Bounce,
            &[report(Action::Failed, "5.1.1")],
            50_000,
        );
        assert!(text.contains("Original-Recipient: rfc822;A@Y\nFinal-Recipient: rfc822; a@y\nAction: failed\nStatus: 5.1.1"));
        assert!(text.contains("Original-Envelope-Id: ENV123"));
        assert!(text.contains("Content-Type: message/rfc822\n\nSubject: hello"));
        assert!(
            text.contains("secret body"),
            "the full original fits in bounce_size_limit"
        );
        assert!(text.contains("report-type=delivery-status"));
    }

    #[test]
    fn ret_hdrs_and_size_limit_return_headers_only() {
        let mut env = Envelope::new("s@x", vec!["a@y".into()], 1);
        let small = build_with(&env, Kind::Bounce, &[report(Action::Failed, "5.1.1")], 10);
        assert!(small.contains("text/rfc822-headers") && !small.contains("secret body"));
        env.ret = Some("HDRS".into());
        let hdrs = build_with(
            &env,
            Kind::Bounce,
            &[report(Action::Failed, "5.1.1")],
            50_000,
        );
        assert!(hdrs.contains("Subject: hello") && !hdrs.contains("secret body"));
    }

    #[test]
    fn control_characters_in_envelope_fields_do_not_reach_the_report() {
        // What `sendmail -f $'s\x0bx' -V $'id\x1b[2J' $'bob\tx'` can queue (the maildrop format
        // refuses only CR, LF and NUL), bounced.
        let mut env = Envelope::new("s\u{b}x", vec!["bob\tx".into()], 1);
        env.envid = Some("id\u{1b}[2J".into());
        let mut failed = report(Action::Failed, "5.1.1");
        failed.address = "bob\tx".into();
        failed.reason = "unknown user: \"bob\u{85}x\"".into();
        let input = Input {
            id: QueueId::generate(),
            envelope: &env,
            original: b"Subject: x\n\nbody\n",
            myhostname: "mx.example",
            reports: &[failed],
            kind: Kind::Bounce,
            to: &env.sender,
            size_limit: 50_000,
        };
        let text = String::from_utf8(build(&input)).unwrap();
        assert!(text.contains("To: s?x\n"), "{text}");
        assert!(text.contains("Original-Envelope-Id: id?[2J\n"), "{text}");
        assert!(text.contains("Final-Recipient: rfc822; bob?x\n"), "{text}");
        assert!(text.contains("Diagnostic-Code: X-Mailroom; unknown user: \"bob?x\"\n"));
        assert!(text.contains("<bob?x>: unknown user"), "{text}");
        let (_, report_part) = text.split_once("message/delivery-status\n\n").unwrap();
        let fields = report_part.split("\n--").next().unwrap();
        assert!(
            !fields.chars().any(|c| c.is_control() && c != '\n'),
            "{fields:?}"
        );
    }

    #[test]
    fn arrival_time_past_the_year_9999_is_left_out_not_a_panic() {
        for arrival_time in [253_402_300_800, i64::MAX as u64 + 1, u64::MAX] {
            let env = Envelope::new("s@x", vec!["a@y".into()], arrival_time);
            let text = build_with(
                &env,
                Kind::Bounce,
                &[report(Action::Failed, "5.1.1")],
                50_000,
            );
            assert!(!text.contains("Arrival-Date"), "{text}");
            assert!(text.contains("X-Mailroom-Queue-ID: "));
        }
        let env = Envelope::new("s@x", vec!["a@y".into()], 1_700_000_000);
        let text = build_with(
            &env,
            Kind::Bounce,
            &[report(Action::Failed, "5.1.1")],
            50_000,
        );
        assert!(
            text.contains("Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000\n"),
            "{text}"
        );
    }

    #[test]
    fn delay_and_success_reports() {
        let env = Envelope::new("s@x", vec!["a@y".into()], 1);
        let delay = build_with(
            &env,
            Kind::Delay,
            &[report(Action::Delayed, "4.4.1")],
            50_000,
        );
        assert!(delay.contains("Action: delayed\nStatus: 4.4.1") && delay.contains("WARNING ONLY"));
        let ok = build_with(
            &env,
            Kind::Success,
            &[report(Action::Delivered, "2.0.0")],
            50_000,
        );
        assert!(ok.contains("Action: delivered\nStatus: 2.0.0") && !ok.contains("secret body"));
    }
}
