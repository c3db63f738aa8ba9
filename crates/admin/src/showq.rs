//! `mailq` / `postqueue -p` and `postqueue -j` output, byte for byte Postfix's
//! (postqueue/showq_compat.c and showq_json.c), written one message at a time so the first
//! line is out as soon as the first message is known.
//!
//! Text layout: Postfix's layout for long queue IDs (`enable_long_queue_ids = yes`), whose
//! 17-character first column fits our 16-character IDs plus the status mark:
//! ```text
//! ----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------
//! 0H5X9R3T6W2K4M8A*     1234 Tue Mar  5 07:08:09 sender@example.org
//!                                            (connect to mx.example.net[192.0.2.1]:25: Connection refused)
//!                                                recipient@example.net
//!
//! -- 1 Kbytes in 1 Request.
//! ```
//! `*` marks a message being delivered (active), `!` one on hold. A `(reason)` line, right
//! aligned to column 78, precedes a recipient whose reason differs from the previous
//! recipient's. Sizes add up to `Kbytes` rounded down; an empty queue prints `Mail queue is
//! empty`. The null sender shows as `MAILER-DAEMON`, as Postfix's showq does.
//!
//! JSON: one object per line with Postfix's fields, order and spacing:
//! `{"queue_name": "deferred", "queue_id": "…", "arrival_time": 1709622489,
//! "message_size": 1234, "forced_expire": false, "sender": "…", "recipients": [{"address":
//! "…", "delay_reason": "…"}]}`.

use crate::row::{Row, State};
use crate::rowline::push_u64;
use std::collections::HashMap;
use std::io::{self, Write};

const HEADING: &[u8] = b"----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n";

/// What Postfix prints for the null sender (`empty_address_recipient`'s default).
pub const NULL_SENDER: &str = "MAILER-DAEMON";

/// Streams the text listing. Call [`TextWriter::row`] per message, then
/// [`TextWriter::finish`] for the summary line. Each message is formatted into one buffer
/// and written with one call.
pub struct TextWriter<W: Write> {
    out: W,
    count: u64,
    bytes: u64,
    clock: AsciiClock,
    buf: Vec<u8>,
    /// The heading is out already ([`TextWriter::heading`]).
    heading_out: bool,
}

impl<W: Write> TextWriter<W> {
    /// Writes the heading now, before the first message is known, and flushes it: for a
    /// caller that knows the queue is not empty while it is still reading it, so `mailq |
    /// head -1` is answered at once. The output stays byte for byte the same.
    pub fn heading(&mut self) -> io::Result<()> {
        if self.count == 0 && !self.heading_out {
            self.heading_out = true;
            self.out.write_all(HEADING)?;
            self.out.flush()?;
        }
        Ok(())
    }

    pub fn new(out: W) -> TextWriter<W> {
        TextWriter {
            out,
            count: 0,
            bytes: 0,
            clock: AsciiClock::default(),
            buf: Vec::with_capacity(1024),
            heading_out: false,
        }
    }

    pub fn row(&mut self, row: &Row) -> io::Result<()> {
        let b = &mut self.buf;
        b.clear();
        if self.count == 0 {
            if !self.heading_out {
                b.extend_from_slice(HEADING);
            }
        } else {
            b.push(b'\n');
        }
        self.count += 1;
        self.bytes += row.message_size;
        // "%-17s %8ld %19.19s %s\n"
        let start = b.len();
        b.extend_from_slice(row.queue_id.as_bytes());
        match row.queue_name {
            State::Active => b.push(b'*'),
            State::Hold => b.push(b'!'),
            _ => {}
        }
        if row.forced_expire {
            b.push(b'#');
        }
        pad_to(b, start + 17);
        b.push(b' ');
        let start = b.len();
        push_u64(b, row.message_size);
        right_align(b, start, 8);
        b.push(b' ');
        b.extend_from_slice(self.clock.asctime19(row.arrival_time).as_bytes());
        b.push(b' ');
        b.extend_from_slice(display_sender(&row.sender).as_bytes());
        b.push(b'\n');
        let mut previous = "";
        for r in &row.recipients {
            if r.delay_reason != previous {
                previous = &r.delay_reason;
                let shown = if previous.is_empty() {
                    "reason unavailable"
                } else {
                    previous
                };
                // "%*s(%s)\n", padded to 76 - strlen(reason)
                spaces(b, 76usize.saturating_sub(shown.len()));
                b.push(b'(');
                b.extend_from_slice(shown.as_bytes());
                b.extend_from_slice(b")\n");
            }
            // "%-17s %8s %-19s %s\n" with three empty fields
            spaces(b, 47);
            b.extend_from_slice(r.address.as_bytes());
            b.push(b'\n');
        }
        self.out.write_all(b)
    }

    /// Writes the summary (or `Mail queue is empty`) and flushes.
    pub fn finish(mut self) -> io::Result<W> {
        if self.count == 0 {
            writeln!(self.out, "Mail queue is empty")?;
        } else {
            let s = if self.count == 1 { "" } else { "s" };
            writeln!(
                self.out,
                "\n-- {} Kbytes in {} Request{s}.",
                self.bytes / 1024,
                self.count
            )?;
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

const SPACES: [u8; 80] = [b' '; 80];

fn spaces(b: &mut Vec<u8>, mut n: usize) {
    while n > 0 {
        let k = n.min(SPACES.len());
        b.extend_from_slice(&SPACES[..k]);
        n -= k;
    }
}

/// Pads with spaces up to length `to` (nothing if already there).
fn pad_to(b: &mut Vec<u8>, to: usize) {
    spaces(b, to.saturating_sub(b.len()));
}

/// Right-aligns what was written since `start` in a field of `width`.
fn right_align(b: &mut Vec<u8>, start: usize, width: usize) {
    let len = b.len() - start;
    if len < width {
        b.splice(start..start, SPACES[..width - len].iter().copied());
    }
}

pub fn display_sender(sender: &str) -> &str {
    if sender.is_empty() {
        NULL_SENDER
    } else {
        sender
    }
}

/// One `postqueue -j` line, formatted exactly as Postfix's showq_json.c does.
pub fn write_json(out: &mut impl Write, row: &Row) -> io::Result<()> {
    let mut b = Vec::with_capacity(512);
    json_line(&mut b, row);
    out.write_all(&b)
}

/// Streams `postqueue -j` lines through one reused buffer.
pub struct JsonWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
}

impl<W: Write> JsonWriter<W> {
    pub fn new(out: W) -> JsonWriter<W> {
        JsonWriter {
            out,
            buf: Vec::with_capacity(1024),
        }
    }

    pub fn row(&mut self, row: &Row) -> io::Result<()> {
        self.buf.clear();
        json_line(&mut self.buf, row);
        self.out.write_all(&self.buf)
    }

    /// Flushes and returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn json_line(b: &mut Vec<u8>, row: &Row) {
    b.extend_from_slice(b"{\"queue_name\": ");
    json_str(b, row.queue_name.as_str());
    b.extend_from_slice(b", \"queue_id\": ");
    json_str(b, &row.queue_id);
    b.extend_from_slice(b", \"arrival_time\": ");
    push_u64(b, row.arrival_time);
    b.extend_from_slice(b", \"message_size\": ");
    push_u64(b, row.message_size);
    b.extend_from_slice(b", \"forced_expire\": ");
    b.extend_from_slice(if row.forced_expire { b"true" } else { b"false" });
    b.extend_from_slice(b", \"sender\": ");
    json_str(b, display_sender(&row.sender));
    b.extend_from_slice(b", \"recipients\": [");
    for (i, r) in row.recipients.iter().enumerate() {
        if i > 0 {
            b.extend_from_slice(b", ");
        }
        b.extend_from_slice(b"{\"address\": ");
        json_str(b, &r.address);
        if !r.delay_reason.is_empty() {
            b.extend_from_slice(b", \"delay_reason\": ");
            json_str(b, &r.delay_reason);
        }
        b.push(b'}');
    }
    b.extend_from_slice(b"]}\n");
}

/// A JSON string, escaped as serde_json escapes it (non-ASCII passes through).
fn json_str(b: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    b.push(b'"');
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let escape: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 0xf) as usize],
            ],
            _ => continue,
        };
        b.extend_from_slice(&bytes[from..i]);
        b.extend_from_slice(escape);
        from = i + 1;
    }
    b.extend_from_slice(&bytes[from..]);
    b.push(b'"');
}

/// `asctime(localtime(t))` cut to 19 characters (`Tue Mar  5 07:08:09`), computed by hand:
/// the local UTC offset is asked of the time zone database once per hour of UTC time (an
/// hour with a transition is resolved second by second), the calendar is arithmetic. A
/// million rows would otherwise spend most of their time in strftime.
#[derive(Default)]
pub struct AsciiClock {
    last: Option<(u64, [u8; 19])>,
    /// UTC offset by UTC hour, for hours without a transition.
    offsets: HashMap<u64, i32>,
}

/// The last second the calendar arithmetic handles (year 9999); later ones use chrono.
const LAST_SECOND: u64 = 253_402_300_799;

impl AsciiClock {
    pub fn asctime19(&mut self, unix: u64) -> &str {
        if self.last.map(|(t, _)| t) != Some(unix) {
            let text = self.format(unix);
            self.last = Some((unix, text));
        }
        self.last
            .as_ref()
            .and_then(|(_, t)| std::str::from_utf8(t).ok())
            .unwrap_or(EPOCH)
    }

    fn format(&mut self, unix: u64) -> [u8; 19] {
        if unix > LAST_SECOND {
            return chrono_asctime19(unix);
        }
        let offset = self.offset(unix);
        asctime19_local(unix as i64 + i64::from(offset))
    }

    fn offset(&mut self, unix: u64) -> i32 {
        let hour = unix / 3600;
        if let Some(&o) = self.offsets.get(&hour) {
            return o;
        }
        let (first, last) = (local_offset(hour * 3600), local_offset(hour * 3600 + 3599));
        if first != last {
            return local_offset(unix);
        }
        if self.offsets.len() >= 1 << 16 {
            self.offsets.clear();
        }
        self.offsets.insert(hour, first);
        first
    }
}

const EPOCH: &str = "Thu Jan  1 00:00:00";

/// The local time zone's offset from UTC at `unix`, in seconds.
fn local_offset(unix: u64) -> i32 {
    use chrono::{Offset, TimeZone};
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|d| {
            chrono::Local
                .offset_from_utc_datetime(&d.naive_utc())
                .fix()
                .local_minus_utc()
        })
        .unwrap_or(0)
}

fn chrono_asctime19(unix: u64) -> [u8; 19] {
    let text = chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|d| {
            d.with_timezone(&chrono::Local)
                .format("%a %b %e %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default();
    text.as_bytes()
        .try_into()
        .unwrap_or(*b"Thu Jan  1 00:00:00")
}

/// `%a %b %e %H:%M:%S` of a local time given as seconds since 1970-01-01 00:00 local.
fn asctime19_local(local: i64) -> [u8; 19] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (_, month, day) = queue::suspend::civil_from_days(days);
    let mut out = *b"Thu Jan  1 00:00:00";
    out[..3].copy_from_slice(DAYS[(days + 4).rem_euclid(7) as usize]);
    out[4..7].copy_from_slice(MONTHS[(month - 1) as usize]);
    out[8] = if day >= 10 {
        b'0' + (day / 10) as u8
    } else {
        b' '
    };
    out[9] = b'0' + (day % 10) as u8;
    for (at, n) in [(11, secs / 3600), (14, secs / 60 % 60), (17, secs % 60)] {
        out[at] = b'0' + (n / 10) as u8;
        out[at + 1] = b'0' + (n % 10) as u8;
    }
    out
}

#[cfg(test)]
mod tests;
