//! The address headers of a message rewritten in place (Postfix's cleanup header address
//! rewriting, and smtp_generic_maps in the SMTP client): each address of `From:`, `To:`,
//! `Cc:` ... is replaced; display names, comments, groups and folding stay as they were.
//!
//! Which headers, as Postfix's header_opts lists them: sender class `From`, `Sender`,
//! `Reply-To`, `Errors-To`, `Return-Path`, `Return-Receipt-To`, `Resent-From`,
//! `Resent-Sender`, `Disposition-Notification-To`, `Mail-Followup-To`; recipient class
//! `To`, `Cc`, `Bcc`, `Apparently-To`, `Resent-To`, `Resent-Cc`, `Resent-Bcc`,
//! `Resent-Reply-To`. A header that is not UTF-8 is left alone.

use std::ops::Range;

use crate::Class;

const SENDER: [&str; 10] = [
    "From",
    "Sender",
    "Reply-To",
    "Errors-To",
    "Return-Path",
    "Return-Receipt-To",
    "Resent-From",
    "Resent-Sender",
    "Disposition-Notification-To",
    "Mail-Followup-To",
];
const RECIPIENT: [&str; 8] = [
    "To",
    "Cc",
    "Bcc",
    "Apparently-To",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
    "Resent-Reply-To",
];

fn class_of(name: &str) -> Option<Class> {
    let is = |list: &[&str]| list.iter().any(|n| n.eq_ignore_ascii_case(name));
    if is(&SENDER) {
        Some(Class::HeaderSender)
    } else if is(&RECIPIENT) {
        Some(Class::HeaderRecipient)
    } else {
        None
    }
}

/// `message` (LF or CRLF line ends) with each header address replaced by `rewrite(address,
/// class)`; `None` when nothing changed.
pub fn rewrite_headers(message: &[u8], rewrite: &dyn Fn(&str, Class) -> String) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(message.len() + 64);
    let mut changed = false;
    let mut pos = 0;
    while pos < message.len() {
        let end = header_end(message, pos);
        if end == pos {
            break; // the blank line, or a line that is not a header: the body starts here
        }
        let raw = &message[pos..end];
        match rewrite_one(raw, rewrite) {
            Some(new) => {
                out.extend_from_slice(new.as_bytes());
                changed = true;
            }
            None => out.extend_from_slice(raw),
        }
        pos = end;
    }
    out.extend_from_slice(&message[pos..]);
    changed.then_some(out)
}

/// Where the logical header starting at `pos` ends (after its continuation lines); `pos`
/// itself when the line there is not a header.
fn header_end(message: &[u8], pos: usize) -> usize {
    let line_end = |from: usize| {
        message[from..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(message.len(), |i| from + i + 1)
    };
    let first = line_end(pos);
    let line = &message[pos..first];
    let is_header = line
        .iter()
        .position(|&b| b == b':')
        .is_some_and(|colon| colon > 0 && line[..colon].iter().all(|b| b.is_ascii_graphic()));
    if !is_header {
        return pos;
    }
    let mut end = first;
    while end < message.len() && matches!(message[end], b' ' | b'\t') {
        end = line_end(end);
    }
    end
}

fn rewrite_one(raw: &[u8], rewrite: &dyn Fn(&str, Class) -> String) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    let colon = text.find(':')?;
    let class = class_of(&text[..colon])?;
    let value = &text[colon + 1..];
    let mut new_value = value.to_string();
    let mut changed = false;
    for span in address_spans(value).into_iter().rev() {
        let old = &value[span.clone()];
        let new = rewrite(old, class);
        if new != old {
            new_value.replace_range(span, &new);
            changed = true;
        }
    }
    changed.then(|| format!("{}:{new_value}", &text[..colon]))
}

/// The byte ranges of the addresses in an RFC 5322 address list: the inside of each
/// `<...>`, or a bare addr-spec; display names, comments, group names and `<>` are skipped.
pub(crate) fn address_spans(value: &str) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut scan = Scan::default();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_quoted(bytes, i, &mut scan),
            b'(' => {
                i = skip_comment(bytes, i);
                scan.gap = true;
                continue;
            }
            b'<' => {
                let close = bytes[i..].iter().position(|&b| b == b'>').map(|p| i + p);
                let Some(close) = close else { break };
                if close > i + 1 {
                    scan.angle = Some(i + 1..close);
                }
                i = close;
            }
            b':' if scan.angle.is_none() => scan = Scan::default(), // a group's name
            b',' | b';' => scan.finish(&mut spans),
            b if b.is_ascii_whitespace() => scan.gap = scan.bare.is_some(),
            _ => scan.bare_char(i),
        }
        i += 1;
    }
    scan.finish(&mut spans);
    spans
}

/// The mailbox being scanned.
#[derive(Default)]
struct Scan {
    angle: Option<Range<usize>>,
    /// The bare text so far; `None` once it is not one addr-spec (words with gaps).
    bare: Option<Range<usize>>,
    gap: bool,
    phrase: bool,
}

impl Scan {
    fn bare_char(&mut self, i: usize) {
        match (&mut self.bare, self.gap) {
            (None, _) if !self.phrase => self.bare = Some(i..i + 1),
            (Some(r), false) => r.end = i + 1,
            _ => {
                self.bare = None;
                self.phrase = true;
            }
        }
        self.gap = false;
    }

    fn finish(&mut self, spans: &mut Vec<Range<usize>>) {
        if let Some(angle) = self.angle.take() {
            spans.push(angle);
        } else if let Some(bare) = self.bare.take().filter(|_| !self.phrase) {
            spans.push(bare);
        }
        *self = Scan::default();
    }
}

/// Past a quoted string starting at `i` (part of a local part or a display name).
fn skip_quoted(bytes: &[u8], start: usize, scan: &mut Scan) -> usize {
    let mut i = start + 1;
    while i < bytes.len() && bytes[i] != b'"' {
        i += if bytes[i] == b'\\' { 2 } else { 1 };
    }
    let end = i.min(bytes.len() - 1);
    scan.bare_char(start);
    if let Some(r) = &mut scan.bare {
        r.end = end + 1;
    }
    end
}

/// The index after the comment starting at `i` (comments nest).
fn skip_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}
