//! Framing of command lines: where the next line ends in the input buffer, with a hard bound
//! (the dialect's `max_line`) so a client can never make us buffer more of one line.
//!
//! RFC 5321 section 4.5.3.1.4 allows 512 octets for a command line and section 4.5.3.1.6
//! 1000 for a text line; smtpd accepts up to [`MAX_LINE`] octets including the CRLF for both
//! (ESMTP parameters lengthen commands). A longer line is answered
//! `500 5.5.2 Error: line too long` once, after the reader has skipped to its end.
//!
//! A line ends at LF. Whether that LF was preceded by CR, and whether the line holds another
//! CR or a NUL, is reported, not judged: the session applies `smtpd_forbid_bare_newline`.

/// smtpd's longest command line, line end included.
pub const MAX_LINE: usize = 1000;

/// What the buffer holds at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A complete line: `content` bytes before the line end, `consumed` bytes including it.
    Line {
        content: usize,
        consumed: usize,
        /// The line ended with a bare LF rather than CRLF.
        bare_lf: bool,
        /// A CR appears inside the line (not as part of its CRLF).
        bare_cr: bool,
        nul: bool,
    },
    /// No line end yet, and fewer than `max_line` bytes: read more.
    Incomplete,
    /// No line end within `max_line` bytes: drop the buffer and [`skip_line`] to its end.
    TooLong,
}

/// Finds the first line in `buf`, which may be at most `max_line` bytes long with its end.
pub fn frame(buf: &[u8], max_line: usize) -> Frame {
    let window = &buf[..buf.len().min(max_line)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= max_line {
            Frame::TooLong
        } else {
            Frame::Incomplete
        };
    };
    let crlf = lf > 0 && buf[lf - 1] == b'\r';
    let content = if crlf { lf - 1 } else { lf };
    let line = &buf[..content];
    Frame::Line {
        content,
        consumed: lf + 1,
        bare_lf: !crlf,
        bare_cr: line.contains(&b'\r'),
        nul: line.contains(&0),
    }
}

/// While skipping the rest of an over-long line: the bytes of `buf` to drop and whether the
/// line end was among them.
pub fn skip_line(buf: &[u8]) -> (usize, bool) {
    match buf.iter().position(|&b| b == b'\n') {
        Some(lf) => (lf + 1, true),
        None => (buf.len(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(content: usize, consumed: usize, bare_lf: bool, bare_cr: bool, nul: bool) -> Frame {
        Frame::Line {
            content,
            consumed,
            bare_lf,
            bare_cr,
            nul,
        }
    }

    #[test]
    fn frames() {
        let long = vec![b'a'; MAX_LINE];
        let mut just_fits = vec![b'a'; MAX_LINE - 2];
        just_fits.extend_from_slice(b"\r\n");
        let table: Vec<(&[u8], Frame)> = vec![
            (b"", Frame::Incomplete),
            (b"NOOP", Frame::Incomplete),
            (b"NOOP\r", Frame::Incomplete),
            (b"NOOP\r\n", line(4, 6, false, false, false)),
            (b"NOOP\r\nQUIT\r\n", line(4, 6, false, false, false)),
            (b"NOOP\n", line(4, 5, true, false, false)),
            (b"\r\n", line(0, 2, false, false, false)),
            (b"\n", line(0, 1, true, false, false)),
            (b"NO\rOP\r\n", line(5, 7, false, true, false)),
            (b"NO\0OP\r\n", line(5, 7, false, false, true)),
            (b"NOOP\r\r\n", line(5, 7, false, true, false)),
            (&long, Frame::TooLong),
            (
                &just_fits,
                line(MAX_LINE - 2, MAX_LINE, false, false, false),
            ),
        ];
        for (input, expected) in table {
            assert_eq!(
                frame(input, MAX_LINE),
                expected,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_line_of_1001_bytes_is_too_long() {
        let mut over = vec![b'a'; MAX_LINE - 1];
        over.extend_from_slice(b"\r\n");
        assert_eq!(frame(&over, MAX_LINE), Frame::TooLong);
    }

    #[test]
    fn the_bound_is_the_callers() {
        let mut line = vec![b'a'; 1500];
        line.push(b'\n');
        assert_eq!(frame(&line, MAX_LINE), Frame::TooLong);
        assert_eq!(frame(&line, 2048), line_of(1500, 1501));
        assert_eq!(frame(&line[..1500], 2048), Frame::Incomplete);
    }

    fn line_of(content: usize, consumed: usize) -> Frame {
        line(content, consumed, true, false, false)
    }

    #[test]
    fn skipping() {
        assert_eq!(skip_line(b"aaaa"), (4, false));
        assert_eq!(skip_line(b"aa\nNOOP\r\n"), (3, true));
    }
}
