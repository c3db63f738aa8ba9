//! Reads one Postfix queue file (the format `postcat` shows) into what mailroom needs: the
//! envelope, the recipients still to deliver, and the message content.
//!
//! A queue file is a stream of records: one type byte, the data length in 7-bit groups
//! (low group first, high bit set while more follow), then the data. Three segments follow
//! each other: the envelope (`C` sizes, `T` arrival time, `S` sender, `R` recipients with
//! their `O`/`o`/`n` companions, `A` named attributes, ...), the content after `M` (`N` a
//! line, `L` part of a line continued by the next record, `w` padding) and the extracted
//! segment after `X` (recipients from headers), ended by `E`. `p` records are pointers:
//! cleanup edits a file in place by jumping to records appended at its end and back, so the
//! reader follows them (with a bound, so a pointer loop cannot hang it).
//!
//! Done-marks: when a recipient is finished (delivered or bounced) the queue manager
//! rewrites the type byte of its `R` record to `D`; a `/` record is a recipient cleanup
//! cancelled. Neither is imported, so nothing is delivered twice. A file without its `E`
//! record, or with a record that does not belong where it is, is refused whole: importing
//! part of a message could lose recipients.

use std::fmt;

/// A parsed queue file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueueFile {
    /// Arrival time (`T`): seconds and microseconds since the epoch.
    pub arrival: (u64, u32),
    /// Envelope sender (`S`); empty is the null sender.
    pub sender: String,
    /// Recipients not yet done, in file order.
    pub recipients: Vec<PostfixRecipient>,
    /// Recipients already done (`D`) or cancelled (`/`): reported, never imported.
    pub done: Vec<String>,
    /// The message, headers and body, with LF line ends.
    pub content: Vec<u8>,
    /// RFC 3461 ENVID (`i`).
    pub envid: Option<String>,
    /// RFC 3461 RET as a word (`FULL`/`HDRS`).
    pub ret: Option<String>,
    /// A content filter recorded at arrival (`L` in the envelope segment).
    pub content_filter: Option<String>,
    /// A redirect target (`>`): every recipient goes there instead.
    pub redirect: Option<String>,
    /// The "mail delayed" warning was sent (`W` rewritten to -1 by the queue manager).
    pub delay_warned: bool,
    /// An address verification request (`trace_flags` with Postfix's MTA or user probe
    /// bit: `verify(8)` or `sendmail -bv`): recipients are only probed, never sent mail.
    pub verify_only: bool,
}

/// One recipient still to deliver.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PostfixRecipient {
    pub address: String,
    /// RFC 3461 ORCPT (`o`), e.g. `rfc822;user@example.com`.
    pub orcpt: Option<String>,
    /// RFC 3461 NOTIFY as words (`NEVER` or `SUCCESS,FAILURE,DELAY`).
    pub notify: Option<String>,
}

/// Why a file was not understood; names the byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Bounds pointer jumps; Postfix itself allows 10000 reverse jumps.
const MAX_JUMPS: usize = 100_000;

/// Record types allowed in each segment (Postfix's `REC_TYPE_ENVELOPE`, `_CONTENT`,
/// `_EXTRACT`, plus `p` pointers and `E` where a segment may end).
const ENVELOPE_TYPES: &[u8] = b"MCTcFILSDRO/WVA>K<ionfdmp";
const CONTENT_TYPES: &[u8] = b"XLNwp";
const EXTRACT_TYPES: &[u8] = b"EDRO/PreAFIL>Konp";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Segment {
    Envelope,
    Content,
    Extract,
}

/// One raw record: its type, data, and where it starts.
struct Record<'a> {
    kind: u8,
    data: &'a [u8],
    offset: usize,
}

/// Walks the record stream, following pointer records.
struct Reader<'a> {
    bytes: &'a [u8],
    position: usize,
    jumps: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, offset: usize, message: impl Into<String>) -> ParseError {
        ParseError {
            offset,
            message: message.into(),
        }
    }

    /// The next record, or an error at a truncated one. Pointers are followed here.
    fn next(&mut self) -> Result<Record<'a>, ParseError> {
        loop {
            let record = self.raw()?;
            if record.kind != b'p' {
                return Ok(record);
            }
            let target = text(record.data).trim();
            let target: usize = target
                .parse()
                .map_err(|_| self.error(record.offset, "malformed pointer record"))?;
            if target == 0 {
                continue; // a dummy pointer, kept for later in-place edits
            }
            self.jumps += 1;
            if self.jumps > MAX_JUMPS || target >= self.bytes.len() {
                return Err(self.error(record.offset, "pointer record out of bounds or looping"));
            }
            self.position = target;
        }
    }

    fn raw(&mut self) -> Result<Record<'a>, ParseError> {
        let offset = self.position;
        let kind = *self
            .bytes
            .get(offset)
            .ok_or_else(|| self.error(offset, "missing end record"))?;
        let mut length: usize = 0;
        let mut at = offset + 1;
        for shift in (0..).step_by(7) {
            if shift > 28 {
                return Err(self.error(offset, "too many length bits"));
            }
            let byte = *self
                .bytes
                .get(at)
                .ok_or_else(|| self.error(offset, "truncated record length"))?;
            at += 1;
            length |= ((byte & 0x7f) as usize) << shift;
            if byte & 0x80 == 0 {
                break;
            }
        }
        let data = self
            .bytes
            .get(at..at + length)
            .ok_or_else(|| self.error(offset, "truncated record data"))?;
        self.position = at + length;
        Ok(Record { kind, data, offset })
    }
}

fn text(data: &[u8]) -> &str {
    std::str::from_utf8(data).unwrap_or("")
}

/// Parses a whole queue file. Never panics, on any input.
pub fn parse(bytes: &[u8]) -> Result<QueueFile, ParseError> {
    let mut reader = Reader {
        bytes,
        position: 0,
        jumps: 0,
    };
    let mut state = State::default();
    let mut segment = Segment::Envelope;
    loop {
        let record = reader.next()?;
        let allowed = match segment {
            Segment::Envelope => ENVELOPE_TYPES,
            Segment::Content => CONTENT_TYPES,
            Segment::Extract => EXTRACT_TYPES,
        };
        if !allowed.contains(&record.kind) {
            return Err(reader.error(
                record.offset,
                format!("unexpected record type '{}'", record.kind.escape_ascii()),
            ));
        }
        match (segment, record.kind) {
            (Segment::Envelope, b'M') => segment = Segment::Content,
            (Segment::Content, b'X') => segment = Segment::Extract,
            (Segment::Content, kind) => state.content(kind, record.data),
            (Segment::Extract, b'E') => return state.finish(&reader),
            (_, kind) => state
                .envelope(kind, record.data)
                .map_err(|message| reader.error(record.offset, message))?,
        }
    }
}

/// What has been read so far.
#[derive(Default)]
struct State {
    file: QueueFile,
    seen_time: bool,
    seen_sender: bool,
    /// `o` and `n` records apply to the `R` (or `D`) that follows them.
    orcpt: Option<String>,
    notify: Option<String>,
}

impl State {
    fn content(&mut self, kind: u8, data: &[u8]) {
        match kind {
            b'N' => {
                self.file.content.extend_from_slice(data);
                self.file.content.push(b'\n');
            }
            b'L' => self.file.content.extend_from_slice(data),
            _ => {} // `w` padding
        }
    }

    fn envelope(&mut self, kind: u8, data: &[u8]) -> Result<(), String> {
        let value = std::str::from_utf8(data)
            .map_err(|_| format!("record '{}' is not UTF-8", kind as char))?;
        match kind {
            b'T' => self.time(value)?,
            b'S' => {
                self.file.sender = value.to_string();
                self.seen_sender = true;
            }
            b'R' => self.recipient(value),
            b'D' | b'/' => {
                self.file.done.push(value.to_string());
                self.orcpt = None;
                self.notify = None;
            }
            b'A' => self.attribute(value)?,
            b'o' => self.orcpt = Some(value.to_string()),
            b'n' => self.notify = Some(notify_words(value)?),
            b'i' => self.file.envid = Some(value.to_string()),
            b'<' => self.file.ret = Some(ret_word(value)?),
            b'L' => self.file.content_filter = Some(value.to_string()),
            b'>' => self.file.redirect = Some(value.to_string()),
            b'W' => self.file.delay_warned = value.trim().parse::<i64>().is_ok_and(|t| t < 0),
            // Sizes, create time, full name, inspector, VERP, flags, delay,
            // milter count, killed records, priority, return-receipt, errors-to, `O`
            // (the pre-alias address, kept by Postfix only for its logs): nothing mailroom
            // delivers differently because of them.
            _ => {}
        }
        Ok(())
    }

    fn time(&mut self, value: &str) -> Result<(), String> {
        let mut words = value.split_whitespace();
        let seconds = words.next().and_then(|w| w.parse().ok());
        let micros = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let seconds = seconds.ok_or_else(|| format!("malformed arrival time {value:?}"))?;
        self.file.arrival = (seconds, micros.min(999_999));
        self.seen_time = true;
        Ok(())
    }

    fn recipient(&mut self, address: &str) {
        self.file.recipients.push(PostfixRecipient {
            address: address.to_string(),
            orcpt: self.orcpt.take(),
            notify: self.notify.take(),
        });
    }

    /// Named attributes; the DSN ones are the same as their records (`rec_attr_map`).
    fn attribute(&mut self, value: &str) -> Result<(), String> {
        let (name, value) = value
            .split_once('=')
            .ok_or_else(|| format!("malformed attribute {value:?}"))?;
        let kind = match name.trim() {
            "trace_flags" => {
                // DEL_REQ_FLAG_MTA_VRFY (1 << 8) and DEL_REQ_FLAG_USR_VRFY (1 << 9).
                let flags = value.trim().parse::<u32>().unwrap_or(0);
                self.file.verify_only = flags & (1 << 8 | 1 << 9) != 0;
                return Ok(());
            }
            "dsn_orig_rcpt" => b'o',
            "notify_flags" => b'n',
            "envelope_id" => b'i',
            "ret_flags" => b'<',
            _ => return Ok(()),
        };
        self.envelope(kind, value.as_bytes())
    }

    fn finish(mut self, reader: &Reader) -> Result<QueueFile, ParseError> {
        if !self.seen_time || !self.seen_sender {
            let missing = if self.seen_time {
                "sender"
            } else {
                "arrival time"
            };
            return Err(reader.error(reader.position, format!("no {missing} record")));
        }
        if let Some(target) = self.file.redirect.clone() {
            for recipient in &mut self.file.recipients {
                recipient.address = target.clone();
            }
        }
        Ok(self.file)
    }
}

/// Postfix's DSN NOTIFY bit mask as RFC 3461 words.
fn notify_words(value: &str) -> Result<String, String> {
    let mask: u32 = value
        .trim()
        .parse()
        .map_err(|_| format!("malformed DSN notify flags {value:?}"))?;
    if mask & 1 != 0 {
        return Ok("NEVER".to_string());
    }
    let words: Vec<&str> = [(2, "SUCCESS"), (4, "FAILURE"), (8, "DELAY")]
        .iter()
        .filter(|(bit, _)| mask & bit != 0)
        .map(|(_, word)| *word)
        .collect();
    if words.is_empty() {
        return Err(format!("malformed DSN notify flags {value:?}"));
    }
    Ok(words.join(","))
}

/// Postfix's DSN RET value (1 full, 2 headers) as the RFC 3461 word.
fn ret_word(value: &str) -> Result<String, String> {
    match value.trim() {
        "1" => Ok("FULL".to_string()),
        "2" => Ok("HDRS".to_string()),
        other => Err(format!("malformed DSN return flags {other:?}")),
    }
}

#[cfg(test)]
#[path = "queue_file_tests.rs"]
mod tests;
