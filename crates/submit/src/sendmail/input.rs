//! Reading the message sendmail is given on standard input, and `-t` recipient extraction.

use std::io::{self, BufRead, Read};

use crate::addresses::parse_address_list;
use crate::headers;

/// Why the input could not be taken.
#[derive(Debug)]
pub enum InputError {
    /// Over the size limit (Postfix: "message file too big").
    TooBig,
    Io(io::Error),
}

/// Reads the message: CRLF becomes LF; without `ignore_dots` a line holding only `.` ends it
/// (what Postfix and Sendmail do without `-i`), with no dot-unstuffing; an initial mbox
/// `From ` line is dropped, as Postfix does. Never holds more than `limit` bytes in memory.
pub fn read_message(
    input: &mut dyn BufRead,
    ignore_dots: bool,
    limit: u64,
) -> Result<Vec<u8>, InputError> {
    let mut message = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        // Room for the limit plus a CRLF that may shrink to LF: one byte past it is "too big".
        let budget = limit.saturating_sub(message.len() as u64).saturating_add(2);
        let read = (&mut *input)
            .take(budget)
            .read_until(b'\n', &mut line)
            .map_err(InputError::Io)?;
        if read == 0 {
            return Ok(message);
        }
        if line.ends_with(b"\r\n") {
            line.truncate(line.len() - 2);
            line.push(b'\n');
        }
        if !ignore_dots && (line == b".\n" || line == b".") {
            return Ok(message);
        }
        let mbox_from = first && line.starts_with(b"From ");
        first = false;
        if !mbox_from {
            message.extend_from_slice(&line);
        }
        if message.len() as u64 > limit {
            return Err(InputError::TooBig);
        }
    }
}

/// `-t`: the recipients named in the headers, and the message with its Bcc headers removed.
///
/// As in Sendmail and Postfix, when the message has `Resent-To/Cc/Bcc` headers (it is being
/// re-sent) only those count; otherwise `To`, `Cc` and `Bcc` do. `Bcc` and `Resent-Bcc` are
/// removed either way: their point is that the other recipients do not see them.
pub fn extract_recipients(message: &[u8]) -> (Vec<String>, Vec<u8>) {
    let split = headers::split(message);
    let resent = split
        .headers
        .iter()
        .any(|h| recipient_header(h) == Some(true));
    let recipients = split
        .headers
        .iter()
        .filter(|h| recipient_header(h) == Some(resent))
        .flat_map(|h| parse_address_list(&h.value()))
        .collect();
    let mut stripped = Vec::with_capacity(message.len());
    for header in &split.headers {
        if !(header.is("Bcc") || header.is("Resent-Bcc")) {
            stripped.extend_from_slice(header.raw);
        }
    }
    stripped.extend_from_slice(&message[split.headers_end..]);
    (recipients, stripped)
}

/// `Some(resent)` for the headers `-t` reads recipients from.
fn recipient_header(header: &headers::Header<'_>) -> Option<bool> {
    match header.name.to_ascii_lowercase().as_str() {
        "to" | "cc" | "bcc" => Some(false),
        "resent-to" | "resent-cc" | "resent-bcc" => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str, ignore_dots: bool, limit: u64) -> Result<Vec<u8>, InputError> {
        read_message(&mut input.as_bytes(), ignore_dots, limit)
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn dot_ends_input_without_dash_i() {
        let input = "Subject: x\r\n\r\na\r\n..\r\n.\r\nafter\n";
        assert_eq!(
            text(read(input, false, 1000).unwrap()),
            "Subject: x\n\na\n..\n"
        );
        assert_eq!(text(read("a\n.", false, 1000).unwrap()), "a\n");
    }

    #[test]
    fn dot_is_data_with_dash_i() {
        let input = "Subject: x\n\na\n.\nafter";
        assert_eq!(text(read(input, true, 1000).unwrap()), input);
    }

    #[test]
    fn mbox_from_line_dropped_only_first() {
        let input = "From alice Mon Jan  1 00:00:00 2024\nSubject: x\n\nFrom here\n";
        assert_eq!(
            text(read(input, true, 1000).unwrap()),
            "Subject: x\n\nFrom here\n"
        );
    }

    #[test]
    fn size_limit() {
        let input = "0123456789\n";
        assert_eq!(read(input, true, 11).unwrap().len(), 11);
        assert!(matches!(read(input, true, 10), Err(InputError::TooBig)));
        // CRLF that normalizes down to the limit is fine.
        assert_eq!(read("012345678\r\n", true, 10).unwrap().len(), 10);
        // A single huge line is stopped without reading it all.
        let huge = "x".repeat(100_000);
        assert!(matches!(read(&huge, true, 1000), Err(InputError::TooBig)));
    }

    #[test]
    fn extraction_with_folding_and_bcc_removed() {
        let message = b"From: a@x\nTo: Bob <bob@y>,\n\tcarol@z\nCc: dave@w\nBcc: eve@v,\n  frank@u\nSubject: hi\n\nTo: not@header\n";
        let (recipients, stripped) = extract_recipients(message);
        assert_eq!(
            recipients,
            ["bob@y", "carol@z", "dave@w", "eve@v", "frank@u"]
        );
        assert_eq!(
            text(stripped),
            "From: a@x\nTo: Bob <bob@y>,\n\tcarol@z\nCc: dave@w\nSubject: hi\n\nTo: not@header\n"
        );
    }

    #[test]
    fn resent_headers_take_precedence() {
        let message = b"To: old@x\nResent-To: new@y\nResent-Bcc: hidden@z\n\nbody\n";
        let (recipients, stripped) = extract_recipients(message);
        assert_eq!(recipients, ["new@y", "hidden@z"]);
        assert_eq!(text(stripped), "To: old@x\nResent-To: new@y\n\nbody\n");
    }

    #[test]
    fn no_headers_no_recipients() {
        let (recipients, stripped) = extract_recipients(b"just a body\n");
        assert!(recipients.is_empty());
        assert_eq!(stripped, b"just a body\n");
    }
}
