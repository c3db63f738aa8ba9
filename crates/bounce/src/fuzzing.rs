//! Property checks for the cargo-fuzz target `dsn` (`fuzz/` at the repository root), also
//! run on random inputs in every `cargo test`.
//!
//! The envelope and the reports a notification is built from carry text from outside: the
//! sender and recipients as clients and `sendmail` callers gave them, ENVID and ORCPT, and
//! diagnostics quoted from remote servers. Whatever they hold, the notification must stay
//! the message RFC 3464 describes: the top-level header fields we write and no others, a
//! `multipart/report` with a notification, a `message/delivery-status` part made only of
//! `Field: value` lines (no control characters, one recipient group per report), and the
//! original (or its header block) returned as it was.

use envelope::fuzzing::Bytes;
use envelope::QueueId;

use crate::{build, Action, Input, Kind, Report};

const TOP: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Auto-Submitted",
    "MIME-Version",
    "Content-Type",
];

const STATUS_FIELDS: &[&str] = &[
    "Original-Envelope-Id",
    "Reporting-MTA",
    "X-Mailroom-Queue-ID",
    "Arrival-Date",
    "Original-Recipient",
    "Final-Recipient",
    "Action",
    "Status",
    "Remote-MTA",
    "Diagnostic-Code",
];

fn report(b: &mut Bytes<'_>) -> Report {
    let actions = [
        Action::Failed,
        Action::Delayed,
        Action::Delivered,
        Action::Relayed,
    ];
    Report {
        address: b.string(),
        orcpt: b.optional_string(),
        action: actions[usize::from(b.u8() % 4)],
        status: b.string(),
        reason: b.string(),
        remote_mta: b.optional_string(),
    }
}

/// See the module doc.
pub fn check_dsn(data: &[u8]) {
    let mut b = Bytes::new(data);
    let envelope = b.envelope(4);
    let reports: Vec<Report> = (0..b.u8() % 4 + 1).map(|_| report(&mut b)).collect();
    let kinds = [
        Kind::Bounce,
        Kind::PostmasterNotice,
        Kind::Delay,
        Kind::Success,
    ];
    let kind = kinds[usize::from(b.u8() % 4)];
    let to = b.string();
    let size_limit = usize::from(b.u8()) * 4;
    let input = Input {
        id: QueueId::from_u128(u128::from(b.u32())),
        envelope: &envelope,
        original: b.rest(),
        myhostname: "mx.example",
        reports: &reports,
        kind,
        to: &to,
        size_limit,
    };
    check_message(&input, &build(&input));
}

fn check_message(input: &Input<'_>, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\n\n").expect("a header block");
    check_top(head);
    let boundary = head
        .split_once("boundary=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(b, _)| b)
        .expect("a boundary");
    let reports = input.reports.iter();
    let texts = reports.flat_map(|r| [&r.address, &r.reason, &r.status]);
    if contains(input.original, boundary.as_bytes())
        || texts.into_iter().any(|t| t.contains(boundary))
    {
        return; // real input cannot: the boundary holds the unpredictable queue ID
    }
    let delimiter = format!("\n--{boundary}\n");
    let (parts, end) = body
        .rsplit_once(&format!("\n--{boundary}--\n"))
        .expect("the closing delimiter");
    assert!(end.is_empty(), "text after the closing delimiter");
    let parts: Vec<&str> = parts.split(&delimiter).collect();
    assert_eq!(parts.len(), 4, "preamble and three parts");
    let notification = parts[1].chars().filter(|&c| c != '\n' && c != '\t');
    assert!(
        !notification.into_iter().any(char::is_control),
        "{:?}",
        parts[1]
    );
    check_status(input, parts[2]);
    check_returned(input, out, parts[3], boundary);
}

/// Exactly the header fields we write, in order, each `Name: value` without control
/// characters (a folded Content-Type continues on a tab-indented line).
fn check_top(head: &str) {
    let mut names = Vec::new();
    for line in head.split('\n') {
        assert!(
            !line.chars().any(char::is_control) || line.starts_with('\t'),
            "{line:?}"
        );
        if !line.starts_with('\t') {
            names.push(line.split_once(": ").expect("a header field").0);
        }
    }
    assert_eq!(names, TOP, "top-level header fields");
}

fn check_status(input: &Input<'_>, part: &str) {
    let fields = part
        .strip_prefix(
            "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n",
        )
        .expect("the delivery-status part headers");
    let groups: Vec<&str> = fields.trim_end_matches('\n').split("\n\n").collect();
    assert_eq!(
        groups.len(),
        input.reports.len() + 1,
        "one group per recipient:\n{fields}"
    );
    for line in fields.lines().filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(": ").unwrap_or((line, ""));
        assert!(STATUS_FIELDS.contains(&name), "not a DSN field: {line:?}");
        assert!(
            !value.chars().any(char::is_control),
            "control character in {line:?}"
        );
    }
}

/// The original whole, or its header block when RET=HDRS, success or over the size limit.
fn check_returned(input: &Input<'_>, out: &[u8], part: &str, boundary: &str) {
    let headers_only = input
        .envelope
        .ret
        .as_deref()
        .is_some_and(|r| r.eq_ignore_ascii_case("HDRS"))
        || input.original.len() > input.size_limit
        || input.kind == Kind::Success;
    let (label, returned) = match headers_only {
        true => ("text/rfc822-headers", header_block(input.original)),
        false => ("message/rfc822", input.original),
    };
    assert!(part.contains(label), "{label} expected");
    let mut tail = returned.to_vec();
    if !headers_only && !tail.ends_with(b"\n") {
        tail.push(b'\n');
    }
    tail.extend_from_slice(format!("\n--{boundary}--\n").as_bytes());
    assert!(
        out.ends_with(&tail),
        "the original is not returned as it was"
    );
}

fn header_block(original: &[u8]) -> &[u8] {
    match original.windows(2).position(|w| w == b"\n\n") {
        Some(at) => &original[..at + 1],
        None => original,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few thousand random envelopes and reports on every run (the fuzz target goes further).
    #[test]
    fn random_notifications_keep_the_invariants() {
        let mut state = 0x00d5_0b0c_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3_000 {
            let len = next() as usize % 300;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check_dsn(&data);
        }
    }
}
