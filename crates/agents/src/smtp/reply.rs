//! SMTP replies and EHLO capabilities, parsed from lines with no I/O.
//!
//! Inputs → outputs: reply lines as bytes (without CR LF) → a [`Reply`] (code, enhanced
//! status, the lines as printable text); an EHLO reply → [`Capabilities`].
//! Invariants: a reply never holds more than [`MAX_REPLY_LINES`] lines of at most
//! [`MAX_LINE`] bytes each; every kept character is printable ASCII, so server text can go
//! into log lines and DSNs without forging anything; no input panics.
//! Security stance: everything here comes from the remote server and is untrusted.

use std::fmt;

/// Longest reply line kept; the rest of a longer line is dropped (RFC 5321 allows 512).
pub(crate) const MAX_LINE: usize = 4096;
/// Most lines in one reply; more is a protocol error (a server trying to exhaust memory).
pub(crate) const MAX_REPLY_LINES: usize = 200;

/// One complete SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub code: u16,
    /// Each line as received (code and separator included), made printable.
    pub lines: Vec<String>,
}

/// Why a reply could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplyError {
    /// Not `NNN`, `NNN-text` or `NNN text` with NNN in 200..=599 (or 1xx/3xx).
    Malformed(String),
    TooManyLines,
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::Malformed(line) => write!(f, "malformed reply: {line}"),
            ReplyError::TooManyLines => write!(f, "reply longer than {MAX_REPLY_LINES} lines"),
        }
    }
}

/// Collects the lines of one reply until its last line.
#[derive(Default)]
pub(crate) struct ReplyParser {
    code: Option<u16>,
    lines: Vec<String>,
}

impl ReplyParser {
    /// Adds one line (CR LF already removed). Returns the reply when this was its last line.
    pub fn push(&mut self, line: &[u8]) -> Result<Option<Reply>, ReplyError> {
        let text = printable(line);
        let (code, last) = parse_line(line).ok_or_else(|| ReplyError::Malformed(text.clone()))?;
        if self.lines.len() >= MAX_REPLY_LINES {
            return Err(ReplyError::TooManyLines);
        }
        // RFC 5321 4.2.1: every line carries the same code; servers that differ are
        // tolerated, the first line's code wins.
        let code = *self.code.get_or_insert(code);
        self.lines.push(text);
        if !last {
            return Ok(None);
        }
        Ok(Some(Reply {
            code,
            lines: std::mem::take(&mut self.lines),
        }))
    }
}

/// `NNN-…` → (NNN, false); `NNN …` or `NNN` → (NNN, true).
fn parse_line(line: &[u8]) -> Option<(u16, bool)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'1'..=b'5').contains(&digits[0]) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match line.get(3) {
        None | Some(b' ') | Some(b'\t') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        _ => None,
    }
}

/// Bytes as printable ASCII: tabs become spaces, anything else outside 0x20..=0x7e is `?`.
pub(crate) fn printable(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(MAX_LINE)
        .map(|&b| match b {
            b'\t' => ' ',
            0x20..=0x7e => b as char,
            _ => '?',
        })
        .collect()
}

impl Reply {
    /// 2 for 2xx, and so on.
    pub fn class(&self) -> u16 {
        self.code / 100
    }

    pub fn is_positive(&self) -> bool {
        self.class() == 2
    }

    /// The RFC 3463 status: the reply's own enhanced code when it has one whose class
    /// matches the reply code, else derived from the code (`4.0.0`, `5.0.0`, `2.0.0`).
    pub fn dsn(&self) -> String {
        self.enhanced()
            .unwrap_or_else(|| format!("{}.0.0", self.class().clamp(2, 5)))
    }

    /// The enhanced status code at the start of the first line's text, if well formed.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?;
        let text = first.get(4..)?.trim_start();
        let candidate = text.split(' ').next()?;
        let mut parts = candidate.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        let ok = parts.next().is_none()
            && class.len() == 1
            && class.parse::<u16>().ok()? == self.class()
            && matches!(class, "2" | "4" | "5")
            && is_number(subject)
            && is_number(detail);
        ok.then(|| candidate.to_string())
    }

    /// The whole reply on one line, as Postfix logs it: lines joined by spaces.
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }

    /// Lines after the first, without their `NNN-` prefix (EHLO keywords).
    fn extension_lines(&self) -> impl Iterator<Item = &str> {
        self.lines
            .iter()
            .skip(1)
            .map(|line| line.get(4..).unwrap_or("").trim())
    }
}

fn is_number(s: &str) -> bool {
    (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit())
}

/// What the server offered in its EHLO reply (all false after HELO).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capabilities {
    pub pipelining: bool,
    /// `SIZE` offered; `Some(0)` or `None` inside means no announced limit.
    pub size: bool,
    pub size_limit: Option<u64>,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
    pub starttls: bool,
    /// The SASL mechanisms of `AUTH` (upper case, in the server's order; both lines merged
    /// when a server sends `AUTH` and `AUTH=`).
    pub auth: Vec<String>,
}

impl Capabilities {
    /// Reads the keywords of an EHLO reply (RFC 5321 4.1.1.1); unknown ones are ignored.
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        for line in reply.extension_lines() {
            // Some servers write `AUTH=LOGIN` (an old draft): split on '=' too.
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "PIPELINING" => caps.pipelining = true,
                "8BITMIME" => caps.eight_bit_mime = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "DSN" => caps.dsn = true,
                "STARTTLS" => caps.starttls = true,
                "AUTH" => {
                    for mechanism in words.by_ref() {
                        let mechanism = mechanism.to_ascii_uppercase();
                        if !caps.auth.contains(&mechanism) {
                            caps.auth.push(mechanism);
                        }
                    }
                }
                "SIZE" => {
                    caps.size = true;
                    caps.size_limit = words.next().and_then(|w| w.parse().ok());
                }
                _ => {}
            }
        }
        caps
    }

    /// The server's size limit when it announced a non-zero one.
    pub fn max_size(&self) -> Option<u64> {
        self.size_limit.filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Result<Reply, ReplyError> {
        let mut parser = ReplyParser::default();
        for (i, line) in lines.iter().enumerate() {
            if let Some(reply) = parser.push(line.as_bytes())? {
                assert_eq!(i, lines.len() - 1, "reply ended early");
                return Ok(reply);
            }
        }
        panic!("reply did not end");
    }

    #[test]
    fn single_and_multi_line() {
        let r = parse(&["250 2.0.0 Ok: queued as ABC"]).unwrap();
        assert_eq!((r.code, r.dsn()), (250, "2.0.0".to_string()));
        assert_eq!(r.text(), "250 2.0.0 Ok: queued as ABC");
        let r = parse(&["550-5.1.1 first", "550 5.1.1 second"]).unwrap();
        assert_eq!(r.text(), "550-5.1.1 first 550 5.1.1 second");
        assert_eq!(r.dsn(), "5.1.1");
        let r = parse(&["250"]).unwrap();
        assert_eq!((r.code, r.dsn()), (250, "2.0.0".to_string()));
    }

    #[test]
    fn enhanced_code_must_match_class() {
        let cases = [
            ("450 4.2.0 busy", "4.2.0"),
            ("450 5.2.0 wrong class", "4.0.0"),
            ("550 no code here", "5.0.0"),
            ("550 5.1 short", "5.0.0"),
            ("550 5.1.1234 long", "5.0.0"),
            ("421 4.4.2 bye", "4.4.2"),
            ("354 go ahead", "3.0.0"),
        ];
        for (line, dsn) in cases {
            let mut p = ReplyParser::default();
            let r = p.push(line.as_bytes()).unwrap().unwrap();
            assert_eq!(r.dsn(), dsn, "{line}");
        }
    }

    #[test]
    fn malformed_lines() {
        for bad in ["", "25", "abc def", "2500 x", "650 x", "250x", "099 x"] {
            let mut p = ReplyParser::default();
            assert!(p.push(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_and_long_lines_are_tamed() {
        let mut p = ReplyParser::default();
        let mut line = b"250 ok\x1b[31m\xff".to_vec();
        line.extend(std::iter::repeat_n(b'x', 10_000));
        let r = p.push(&line).unwrap().unwrap();
        assert!(r.text().starts_with("250 ok?[31m?x"));
        assert_eq!(r.text().len(), MAX_LINE);
    }

    #[test]
    fn too_many_lines() {
        let mut p = ReplyParser::default();
        for _ in 0..MAX_REPLY_LINES {
            assert_eq!(p.push(b"250-x"), Ok(None));
        }
        assert_eq!(p.push(b"250-x"), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn random_lines_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"0123456789 -.\r\n\t\xffSIZE=PIPELINING";
        for _ in 0..5000 {
            let mut parser = ReplyParser::default();
            for _ in 0..rng.usize(1..6) {
                let line: Vec<u8> = (0..rng.usize(0..12))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect();
                match parser.push(&line) {
                    Ok(Some(reply)) => {
                        let _ = (reply.dsn(), reply.text(), Capabilities::from_ehlo(&reply));
                        break;
                    }
                    Ok(None) => {}
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn ehlo_capabilities() {
        let r = parse(&[
            "250-mx.example Hello",
            "250-PIPELINING",
            "250-SIZE 10240000",
            "250-8bitmime",
            "250-AUTH=LOGIN PLAIN",
            "250-DSN",
            "250-STARTTLS",
            "250 SMTPUTF8",
        ])
        .unwrap();
        let caps = Capabilities::from_ehlo(&r);
        assert!(caps.pipelining && caps.eight_bit_mime && caps.dsn && caps.starttls);
        assert!(caps.smtputf8 && caps.size);
        assert_eq!(caps.auth, ["LOGIN", "PLAIN"]);
        assert_eq!(caps.max_size(), Some(10_240_000));
        let plain = Capabilities::from_ehlo(&parse(&["250 mx.example"]).unwrap());
        assert_eq!(plain, Capabilities::default());
        let unlimited = Capabilities::from_ehlo(&parse(&["250-x", "250 SIZE"]).unwrap());
        assert!(unlimited.size && unlimited.max_size().is_none());
    }
}
