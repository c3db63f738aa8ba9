//! The header block of a message (RFC 5322 section 2.2), as bytes: split into logical headers
//! with their continuation lines, never assuming UTF-8, never panicking on odd input.
//!
//! The block ends at the first empty line, or at the first line that is neither a header nor a
//! continuation (a message with no headers at all has an empty block); `body_start` tells
//! which, so a writer can put the missing blank line back.

/// One logical header: its name and its raw bytes (first line, continuation lines, line ends).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    pub raw: &'a [u8],
}

impl Header<'_> {
    /// Case-insensitive name match (header names are ASCII).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The value unfolded (line breaks removed) and trimmed; invalid UTF-8 becomes U+FFFD.
    pub fn value(&self) -> String {
        let after_colon = &self.raw[self.name.len() + 1..];
        let text = String::from_utf8_lossy(after_colon);
        text.replace(['\r', '\n'], "").trim().to_string()
    }
}

/// A message cut into its header block and the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split<'a> {
    pub headers: Vec<Header<'a>>,
    /// Offset where the header block ends (the blank line, if any, starts here).
    pub headers_end: usize,
    /// True when an empty line separated headers and body (it spans `headers_end..body_start`).
    pub has_separator: bool,
    /// Offset of the first body byte.
    pub body_start: usize,
}

/// Splits `message` (LF or CRLF line ends) into headers and body.
pub fn split(message: &[u8]) -> Split<'_> {
    let mut headers: Vec<Header<'_>> = Vec::new();
    let mut current: Option<(usize, usize)> = None; // (start, name length) of the open header
    let mut pos = 0;
    while pos < message.len() {
        let end = line_end(message, pos);
        let line = &message[pos..end];
        if is_blank(line) {
            close(&mut headers, &mut current, message, pos);
            return Split {
                headers,
                headers_end: pos,
                has_separator: true,
                body_start: end,
            };
        }
        if matches!(line[0], b' ' | b'\t') && current.is_some() {
            pos = end;
            continue;
        }
        close(&mut headers, &mut current, message, pos);
        match field_name_length(line) {
            Some(name_len) => current = Some((pos, name_len)),
            None => break,
        }
        pos = end;
    }
    close(&mut headers, &mut current, message, pos);
    Split {
        headers,
        headers_end: pos,
        has_separator: false,
        body_start: pos,
    }
}

/// Index just past the `\n` ending the line that starts at `start` (or the end of input).
fn line_end(message: &[u8], start: usize) -> usize {
    message[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(message.len(), |i| start + i + 1)
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

fn close<'a>(
    headers: &mut Vec<Header<'a>>,
    current: &mut Option<(usize, usize)>,
    message: &'a [u8],
    end: usize,
) {
    if let Some((start, name_len)) = current.take() {
        // The name was checked to be printable ASCII, so from_utf8 cannot fail.
        let name = std::str::from_utf8(&message[start..start + name_len]).unwrap_or("");
        headers.push(Header {
            name,
            raw: &message[start..end],
        });
    }
}

/// Length of the field name when `line` starts a header: printable ASCII up to a colon.
fn field_name_length(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    let printable = name.iter().all(|&b| (33..=126).contains(&b));
    (colon > 0 && printable).then_some(colon)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_headers_and_body() {
        let message = b"To: a@b,\n  c@d\nSubject: x\n\nbody\nNot: a header\n";
        let split = split(message);
        let names: Vec<&str> = split.headers.iter().map(|h| h.name).collect();
        assert_eq!(names, ["To", "Subject"]);
        assert_eq!(split.headers[0].value(), "a@b,  c@d");
        assert!(split.has_separator);
        assert_eq!(&message[split.body_start..], b"body\nNot: a header\n");
        assert_eq!(
            &message[..split.headers_end],
            b"To: a@b,\n  c@d\nSubject: x\n"
        );
    }

    #[test]
    fn no_headers_and_no_separator() {
        let split_text = split(b"just text\nmore: text\n");
        assert!(split_text.headers.is_empty());
        assert_eq!(split_text.body_start, 0);
        assert!(!split_text.has_separator);

        let message = b"Subject: x\nthis line ends the block\n";
        let split_odd = split(message);
        assert_eq!(split_odd.headers.len(), 1);
        assert!(!split_odd.has_separator);
        assert_eq!(
            &message[split_odd.body_start..],
            b"this line ends the block\n"
        );
    }

    #[test]
    fn odd_input_does_not_panic() {
        for input in [
            &b""[..],
            b"\n",
            b":",
            b" leading space\n",
            b"X: \xff\xfe\n\tfold\r\n\r\nbody",
            b"Subject: no newline",
        ] {
            let split = split(input);
            for header in &split.headers {
                let _ = header.value();
            }
            assert!(split.body_start <= input.len());
        }
        let split = split(b"X: \xff\n\n");
        assert_eq!(split.headers[0].value(), "\u{fffd}");
    }
}
