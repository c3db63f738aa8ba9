//! The few header operations local delivery needs: reading the `Delivered-To:` headers a
//! message already carries (loop detection, DESIGN invariant 5) and writing the trace headers
//! each delivered copy gets, like Postfix: `Return-Path:`, `X-Original-To:`, `Delivered-To:`.
//!
//! Envelope addresses reach this module from the network; they are made single-line before
//! they are written into a header or a `From ` line, so a CR or LF in an address can never
//! start a forged header or a forged mbox message.

use std::collections::HashSet;

/// Lower-cased addresses of every `Delivered-To:` header in the header section (up to the
/// first empty line). Bytes that are not UTF-8 are replaced, never trusted.
pub(crate) fn delivered_to_addresses(message: &[u8]) -> HashSet<String> {
    let mut found = HashSet::new();
    let mut current: Option<Vec<u8>> = None;
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if let Some(value) = current.as_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(value) = current.take() {
            found.insert(normalize_address(&value));
        }
        current = header_value(line, b"delivered-to").map(<[u8]>::to_vec);
    }
    if let Some(value) = current {
        found.insert(normalize_address(&value));
    }
    found
}

/// The value of `line` if it is a header with this (lower-case) name.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let colon = line.iter().position(|&b| b == b':')?;
    let (field, value) = line.split_at(colon);
    let field = field.strip_suffix(b" ").unwrap_or(field);
    field.eq_ignore_ascii_case(name).then_some(&value[1..])
}

fn normalize_address(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let text = text.trim();
    let text = text
        .strip_prefix('<')
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text);
    text.trim().to_lowercase()
}

/// The text with every control character (CR, LF, NUL, …) replaced by `?`, so it cannot
/// end the line it is written on.
pub(crate) fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The trace headers Postfix's local delivery prepends, in Postfix's order.
pub(crate) fn trace_headers(sender: &str, original_recipient: &str, delivered_to: &str) -> Vec<u8> {
    format!(
        "Return-Path: <{}>\nX-Original-To: {}\nDelivered-To: {}\n",
        one_line(sender),
        one_line(original_recipient),
        one_line(delivered_to)
    )
    .into_bytes()
}

/// A copy of the message with `Delivered-To:` prepended, for resubmission: the next hop
/// (here or elsewhere) then sees the alias was already expanded once.
pub(crate) fn with_delivered_to(message: &[u8], address: &str) -> Vec<u8> {
    let header = format!("Delivered-To: {}\n", one_line(address));
    let mut out = Vec::with_capacity(header.len() + message.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(message);
    out
}

/// The mbox `From ` separator line: envelope sender (`MAILER-DAEMON` for the null sender)
/// and the delivery time in asctime format, UTC.
pub(crate) fn from_line(sender: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    let sender = if sender.is_empty() {
        "MAILER-DAEMON".to_string()
    } else {
        // A space would make the address ambiguous for mbox readers that split on it.
        one_line(sender).replace(' ', "_")
    };
    format!("From {sender} {}\n", now.format("%a %b %e %H:%M:%S %Y"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn finds_delivered_to_in_headers_only() {
        let msg = b"Subject: x\nDelivered-To: Alice@Example.ORG\ndelivered-to :\n <bob@b>\nX: y\n\nDelivered-To: body@x\n";
        let found = delivered_to_addresses(msg);
        assert!(found.contains("alice@example.org"));
        assert!(found.contains("bob@b"));
        assert!(!found.contains("body@x"));
    }

    #[test]
    fn delivered_to_as_last_header_and_odd_bytes() {
        let msg = b"Delivered-To: a@b\r\n";
        assert!(delivered_to_addresses(msg).contains("a@b"));
        let junk = b"\xff\xfe: \xff\nDelivered-To: \xff@x\n";
        let found = delivered_to_addresses(junk);
        assert_eq!(found.len(), 1);
        assert!(delivered_to_addresses(b"").is_empty());
        assert!(delivered_to_addresses(b"\n\n").is_empty());
    }

    #[test]
    fn trace_headers_are_single_lines() {
        let h = trace_headers("evil\r\nX-Injected: 1", "a@b", "a@b");
        let text = String::from_utf8(h).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.starts_with("Return-Path: <evil??X-Injected: 1>\n"));
    }

    #[test]
    fn from_line_format() {
        let t = chrono::Utc.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        assert_eq!(from_line("a@b", t), "From a@b Tue Mar  5 07:08:09 2024\n");
        assert_eq!(
            from_line("", t),
            "From MAILER-DAEMON Tue Mar  5 07:08:09 2024\n"
        );
        assert_eq!(
            from_line("a b\n@c", t),
            "From a_b?@c Tue Mar  5 07:08:09 2024\n"
        );
    }
}
