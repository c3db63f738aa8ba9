//! The compact wire form of a listing [`Row`] on the control socket: one tab-separated line
//! instead of a JSON object, because a full `mailq` of a million messages is a million rows
//! and JSON encoding on one side and decoding on the other cost more than the listing.
//!
//! ```text
//! R\t<queue>\t<queue id>\t<arrival>\t<size>\t<forced 0|1>\t<next attempt>\t<attempts>\t<sender>
//!   then per open recipient: \t<address>\t<delay reason>        and \n at the end
//! ```
//! Text fields escape `\` as `\\`, tab as `\t`, newline as `\n` and carriage return as `\r`,
//! so a line holds no raw tab or newline but its separators. Rows in this form are sent only
//! to a client that asked for them ([`crate::protocol::Request::List`]'s `compact_rows`);
//! the line's first byte `R` cannot start a JSON event, so one reader accepts both.

use crate::row::{Row, RowRecipient, State};

/// How a compact row line starts.
pub const PREFIX: &[u8] = b"R\t";

/// Appends `row` as one line (with its newline) to `out`.
pub fn encode(row: &Row, out: &mut Vec<u8>) {
    out.extend_from_slice(PREFIX);
    out.extend_from_slice(row.queue_name.as_str().as_bytes());
    out.push(b'\t');
    out.extend_from_slice(row.queue_id.as_bytes());
    for n in [row.arrival_time, row.message_size] {
        out.push(b'\t');
        push_u64(out, n);
    }
    out.extend_from_slice(if row.forced_expire { b"\t1" } else { b"\t0" });
    for n in [row.next_attempt, u64::from(row.attempts)] {
        out.push(b'\t');
        push_u64(out, n);
    }
    out.push(b'\t');
    push_text(out, &row.sender);
    for r in &row.recipients {
        out.push(b'\t');
        push_text(out, &r.address);
        out.push(b'\t');
        push_text(out, &r.delay_reason);
    }
    out.push(b'\n');
}

/// Parses one line (with or without its newline); `None` if it is not a valid row.
pub fn decode(line: &[u8]) -> Option<Row> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut fields = line.strip_prefix(PREFIX)?.split(|&b| b == b'\t');
    let mut next = || fields.next();
    let queue_name = State::parse(std::str::from_utf8(next()?).ok()?)?;
    let queue_id = text(next()?)?;
    let arrival_time = number(next()?)?;
    let message_size = number(next()?)?;
    let forced_expire = next()? == b"1";
    let next_attempt = number(next()?)?;
    let attempts = u32::try_from(number(next()?)?).ok()?;
    let sender = text(next()?)?;
    let mut recipients = Vec::with_capacity(1);
    while let Some(address) = next() {
        recipients.push(RowRecipient {
            address: text(address)?,
            delay_reason: text(next()?)?,
        });
    }
    Some(Row {
        queue_name,
        queue_id,
        arrival_time,
        message_size,
        forced_expire,
        sender,
        recipients,
        next_attempt,
        attempts,
    })
}

/// Appends the decimal digits of `n`.
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_text(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|&b| matches!(b, b'\\' | b'\t' | b'\n' | b'\r'))
    {
        out.extend_from_slice(bytes);
        return;
    }
    for &b in bytes {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
}

fn text(field: &[u8]) -> Option<String> {
    if !field.contains(&b'\\') {
        return String::from_utf8(field.to_vec()).ok();
    }
    let mut out = Vec::with_capacity(field.len());
    let mut it = field.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match it.next()? {
            b't' => b'\t',
            b'n' => b'\n',
            b'r' => b'\r',
            other => *other,
        });
    }
    String::from_utf8(out).ok()
}

fn number(field: &[u8]) -> Option<u64> {
    std::str::from_utf8(field).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sender: &str, rcpts: &[(&str, &str)]) -> Row {
        Row {
            queue_name: State::Hold,
            queue_id: "0H5X9R3T6W2K4M8A".into(),
            arrival_time: 1_709_622_489,
            message_size: 1234,
            forced_expire: false,
            sender: sender.into(),
            recipients: rcpts
                .iter()
                .map(|(a, r)| RowRecipient {
                    address: a.to_string(),
                    delay_reason: r.to_string(),
                })
                .collect(),
            next_attempt: u64::MAX,
            attempts: 3,
        }
    }

    #[test]
    fn round_trip() {
        for r in [
            row("", &[]),
            row("a@b", &[("c@d", "")]),
            row(
                "jörg\\x@ü.example",
                &[
                    ("tab\there@x", "line\nbreak\r\\n and \\t literal"),
                    ("", "why ✓"),
                    ("e@f", ""),
                ],
            ),
        ] {
            let mut buf = Vec::new();
            encode(&r, &mut buf);
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(buf.ends_with(b"\n"));
            assert_eq!(decode(&buf), Some(r));
        }
    }

    #[test]
    fn bad_lines_are_refused() {
        let mut buf = Vec::new();
        encode(&row("a@b", &[("c@d", "x")]), &mut buf);
        assert_eq!(decode(b"{\"End\":{\"count\":1}}"), None);
        assert_eq!(
            decode(&buf[..buf.len() - 4]),
            None,
            "a recipient without its reason"
        );
        assert_eq!(decode(b"R\tnowhere\tX\t1\t2\t0\t0\t0\ts"), None);
        assert_eq!(decode(b"R\thold\tX\t1\t2\t0\t0\t0\ta\\"), None);
    }
}
