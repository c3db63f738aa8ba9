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
use std::io::{self, Write};

const HEADING: [&str; 4] = [
    "----Queue ID-----",
    "--Size--",
    "---Arrival Time----",
    "--Sender/Recipient------",
];

/// What Postfix prints for the null sender (`empty_address_recipient`'s default).
pub const NULL_SENDER: &str = "MAILER-DAEMON";

/// Streams the text listing. Call [`TextWriter::row`] per message, then
/// [`TextWriter::finish`] for the summary line.
pub struct TextWriter<W: Write> {
    out: W,
    count: u64,
    bytes: u64,
    clock: AsciiClock,
}

impl<W: Write> TextWriter<W> {
    pub fn new(out: W) -> TextWriter<W> {
        TextWriter {
            out,
            count: 0,
            bytes: 0,
            clock: AsciiClock::default(),
        }
    }

    pub fn row(&mut self, row: &Row) -> io::Result<()> {
        if self.count == 0 {
            let [a, b, c, d] = HEADING;
            writeln!(self.out, "{a:<17} {b:>8} {c:<19} {d}")?;
        } else {
            writeln!(self.out)?;
        }
        self.count += 1;
        self.bytes += row.message_size;
        let mark = match row.queue_name {
            State::Active => "*",
            State::Hold => "!",
            _ => "",
        };
        let expire = if row.forced_expire { "#" } else { "" };
        let id = format!("{}{mark}{expire}", row.queue_id);
        let time = self.clock.asctime19(row.arrival_time);
        let sender = display_sender(&row.sender);
        writeln!(self.out, "{id:<17} {:>8} {time} {sender}", row.message_size)?;
        let mut previous = "";
        for r in &row.recipients {
            if r.delay_reason != previous {
                previous = &r.delay_reason;
                let shown = if previous.is_empty() {
                    "reason unavailable"
                } else {
                    previous
                };
                let padding = 76usize.saturating_sub(shown.len());
                writeln!(self.out, "{:padding$}({shown})", "")?;
            }
            writeln!(self.out, "{:<17} {:>8} {:<19} {}", "", "", "", r.address)?;
        }
        Ok(())
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

pub fn display_sender(sender: &str) -> &str {
    if sender.is_empty() {
        NULL_SENDER
    } else {
        sender
    }
}

/// One `postqueue -j` line, formatted exactly as Postfix's showq_json.c does.
pub fn write_json(out: &mut impl Write, row: &Row) -> io::Result<()> {
    let q = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    write!(
        out,
        "{{\"queue_name\": {}, \"queue_id\": {}, \"arrival_time\": {}, \"message_size\": {}, \"forced_expire\": {}, \"sender\": {}, \"recipients\": [",
        q(row.queue_name.as_str()),
        q(&row.queue_id),
        row.arrival_time,
        row.message_size,
        row.forced_expire,
        q(display_sender(&row.sender)),
    )?;
    for (i, r) in row.recipients.iter().enumerate() {
        if i > 0 {
            out.write_all(b", ")?;
        }
        write!(out, "{{\"address\": {}", q(&r.address))?;
        if !r.delay_reason.is_empty() {
            write!(out, ", \"delay_reason\": {}", q(&r.delay_reason))?;
        }
        out.write_all(b"}")?;
    }
    out.write_all(b"]}\n")
}

/// `asctime(localtime(t))` cut to 19 characters (`Tue Mar  5 07:08:09`), remembering the
/// last second formatted: a big queue lists many messages per arrival second.
#[derive(Default)]
pub struct AsciiClock {
    last: Option<(u64, String)>,
}

impl AsciiClock {
    pub fn asctime19(&mut self, unix: u64) -> &str {
        if self.last.as_ref().map(|(t, _)| *t) != Some(unix) {
            let text = chrono::DateTime::from_timestamp(unix as i64, 0)
                .map(|d| {
                    d.with_timezone(&chrono::Local)
                        .format("%a %b %e %H:%M:%S")
                        .to_string()
                })
                .unwrap_or_else(|| "Thu Jan  1 00:00:00".into());
            self.last = Some((unix, text));
        }
        self.last.as_ref().map(|(_, s)| s.as_str()).unwrap_or("")
    }
}

#[cfg(test)]
mod tests;
