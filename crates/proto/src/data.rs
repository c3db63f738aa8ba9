//! The message-content decoder for DATA (dot mode) and BDAT (chunk mode): wire bytes in,
//! the stored form out (LF line ends, dot-stuffing undone), with every limit checked while
//! reading so memory stays bounded by `message_size_limit`. No I/O.
//!
//! # SMTP smuggling (the invariant this file exists for)
//! Only `<CRLF>.<CRLF>` ends DATA: the dot must start a line that began after a real CRLF
//! (or the very start of the data) and be followed by CRLF. A line that began after a bare
//! LF or a bare CR can never end the data, in either smtpd policy. So `\n.\n`, `\n.\r\n`,
//! `\r.\r\n` and `\r\n.\n` are content (or errors), never the end.
//!
//! # Bare line ends (`smtpd_forbid_bare_newline`)
//! * `reject` (default): a bare LF or bare CR makes the message fail with
//!   `550 5.5.2 Error: bare <LF> received`; the rest of the data is read and discarded up to
//!   the real end, so the client stays in sync.
//! * `normalize` (and the legacy `no`): a bare LF or bare CR ends a line like CRLF would,
//!   so the stored message has only LF line ends and a later hop cannot misread it.
//! * `Local` (`sendmail -bs` only, never from the configuration): a local program's text
//!   read as Unix text, as `sendmail -bs` always has. LF ends a line by itself, so `.` LF
//!   ends the data too; a CR before the LF is dropped; any other CR, and NUL, is content.
//!   The smuggling rule above is about two MTAs reading one stream differently; here the
//!   stream is a pipe from a local user, read the way local mail tools write it.
//!
//! # Other checks
//! A NUL byte fails the message (550 5.6.0, not under `Local`); more than `message_size_limit` bytes fails it
//! (552 5.3.4) and stops storing. The first failure wins; decoding continues to the end
//! either way.
//!
//! # Long lines are content, not errors
//! A text line longer than RFC 5321's 1000 octets is kept whole, as Postfix keeps it:
//! real mail has them (HTML newsletters, base64 from broken clients), and refusing them
//! loses legitimate mail. Postfix's `line_length_limit` (2048) is not a limit on mail but
//! the size of its queue-file records (a long line is stored in pieces and delivered
//! rejoined); the decoder stores the message as one buffer, so memory is bounded by
//! `message_size_limit` whatever the line lengths, and mailroom has no such parameter.
//! Relaying folds lines over `smtp_line_length_limit` (the SMTP client's job).

use crate::reply::{fixed, Reply};

/// `smtpd_forbid_bare_newline`, reduced to what the decoder does, and `sendmail -bs`'s way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareNewline {
    Reject,
    Normalize,
    /// `sendmail -bs` (see the module doc).
    Local,
}

impl BareNewline {
    /// `reject` → Reject; `normalize` and `no` → Normalize (even `no` never lets a bare LF
    /// end DATA: that would be the smuggling hole).
    pub fn from_config(value: &str) -> BareNewline {
        match value {
            "reject" => BareNewline::Reject,
            _ => BareNewline::Normalize,
        }
    }
}

/// Why a message failed while being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataError {
    BareLf,
    BareCr,
    Nul,
    TooBig,
}

impl DataError {
    pub fn reply(self) -> Reply {
        match self {
            DataError::BareLf => fixed::bare_newline("LF"),
            DataError::BareCr => fixed::bare_newline("CR"),
            DataError::Nul => fixed::nul_in_message(),
            DataError::TooBig => fixed::message_too_big(),
        }
    }
}

/// DATA (dot-terminated) or BDAT (length-delimited chunks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Dot,
    Chunk,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the first byte of a line.
    LineStart,
    /// Dot mode: a `.` opened the line.
    Dot,
    /// Dot mode: `.` then CR opened the line.
    DotCr,
    InLine,
    /// A CR inside a line: CRLF if LF follows, else a bare CR.
    Cr,
    Done,
}

/// Streaming decoder; feed it every byte of the data in order.
#[derive(Debug)]
pub struct Decoder {
    mode: Mode,
    policy: BareNewline,
    state: State,
    /// The current line began after a CRLF (or at the start): only such a line may be `.`.
    clean_start: bool,
    size_limit: u64,
    error: Option<DataError>,
    out: Vec<u8>,
}

impl Decoder {
    /// `size_limit` 0 means no limit (Postfix's `message_size_limit = 0`).
    pub fn new(mode: Mode, policy: BareNewline, size_limit: u64) -> Decoder {
        Decoder {
            mode,
            policy,
            state: State::LineStart,
            clean_start: true,
            size_limit,
            error: None,
            out: Vec::with_capacity(16 * 1024),
        }
    }

    /// Consumes bytes from `input`; returns how many were used and whether the end of data
    /// (`<CRLF>.<CRLF>`, dot mode only) was reached. Bytes after the end are not consumed.
    pub fn feed(&mut self, input: &[u8]) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::InLine {
                let rest = &input[i..];
                let run = memchr::memchr3(b'\r', b'\n', 0, rest).unwrap_or(rest.len());
                if run > 0 {
                    self.push_run(&rest[..run]);
                    i += run;
                    continue;
                }
            }
            self.step(input[i]);
            i += 1;
            if self.state == State::Done {
                return (i, true);
            }
        }
        (i, false)
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The first failure so far.
    pub fn error(&self) -> Option<DataError> {
        self.error
    }

    /// Bytes stored so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Ends the message: in chunk mode a last line without a line end gets one (a trailing
    /// bare CR counts as a bare CR). Returns the stored message or the first failure.
    pub fn finish(mut self) -> Result<Vec<u8>, DataError> {
        if matches!(self.state, State::Cr | State::DotCr) {
            self.lone_cr();
        }
        if matches!(self.state, State::InLine | State::Dot) {
            self.end_line(false);
        }
        match self.error {
            Some(error) => Err(error),
            None => Ok(self.out),
        }
    }

    fn step(&mut self, byte: u8) {
        match self.state {
            State::LineStart => {
                if self.mode == Mode::Dot && byte == b'.' {
                    self.state = State::Dot;
                } else {
                    self.state = State::InLine;
                    self.in_line(byte);
                }
            }
            State::Dot if byte == b'\r' => self.state = State::DotCr,
            State::Dot if byte == b'\n' && self.lf_ends_lines() && self.clean_start => {
                self.state = State::Done
            }
            // RFC 5321 section 4.5.2: drop the first dot of a line.
            State::Dot => {
                self.state = State::InLine;
                self.in_line(byte);
            }
            State::DotCr if byte == b'\n' && self.clean_start => self.state = State::Done,
            State::DotCr | State::Cr if byte == b'\n' => self.end_line(true),
            State::DotCr | State::Cr => {
                self.lone_cr();
                self.step(byte);
            }
            State::InLine => self.in_line(byte),
            State::Done => {}
        }
    }

    fn in_line(&mut self, byte: u8) {
        match byte {
            b'\r' => self.state = State::Cr,
            b'\n' if self.lf_ends_lines() => self.end_line(true),
            b'\n' => {
                self.bare(DataError::BareLf);
                self.end_line(false);
            }
            0 if self.policy == BareNewline::Local => self.push_run(&[0]),
            0 => self.fail(DataError::Nul),
            _ => self.push_run(&[byte]),
        }
    }

    /// Stores ordinary line bytes, however long the line (see the module doc).
    fn push_run(&mut self, run: &[u8]) {
        self.store(run);
    }

    fn end_line(&mut self, clean: bool) {
        self.store(b"\n");
        self.state = State::LineStart;
        self.clean_start = clean;
    }

    fn store(&mut self, bytes: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let new_len = (self.out.len() + bytes.len()) as u64;
        if self.size_limit > 0 && new_len > self.size_limit {
            self.fail(DataError::TooBig);
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Under `Local` a bare LF is a line end like CRLF, one a `.` line may follow.
    fn lf_ends_lines(&self) -> bool {
        self.policy == BareNewline::Local
    }

    /// A CR not followed by LF: content under `Local`, else a bare CR ending the line.
    fn lone_cr(&mut self) {
        if self.policy == BareNewline::Local {
            self.push_run(b"\r");
            self.state = State::InLine;
        } else {
            self.bare(DataError::BareCr);
            self.end_line(false);
        }
    }

    fn bare(&mut self, error: DataError) {
        if self.policy == BareNewline::Reject {
            self.fail(error);
        }
    }

    fn fail(&mut self, error: DataError) {
        if self.error.is_none() {
            self.error = Some(error);
            // Nothing stored will be used: give the memory back now.
            self.out = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests;
