//! `sendmail -bs`: a minimal SMTP server on standard input and output (RFC 5321), for the
//! programs that talk SMTP to a local sendmail instead of passing arguments. Each DATA
//! becomes one maildrop file, and 250 is sent only once that file is durable (invariant 1).
//!
//! Commands: HELO, EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; anything else is 500 5.5.2.
//! Framing, parsing, DATA decoding and the reply texts are the SMTP codec smtpd uses too
//! (the `proto` crate), in its lenient `SENDMAIL_BS` dialect, whose table in
//! `proto::dialect` says how it differs from smtpd's; this file holds only the session
//! rules and the two streams.

use std::io::{self, BufRead, Write};

use envelope::QueueId;
use proto::data::{BareNewline, Decoder, Mode};
use proto::line::{self, Frame};
use proto::{fixed, parse_with, Command, Dialect, Reply};

use super::{now, submission, Handled, SendmailIo};
use crate::maildrop::{DsnOptions, MaildropFile};
use crate::submission::{submit, SubmitSettings};
use envelope::sysexits::{EX_OK, EX_TEMPFAIL};

const DIALECT: Dialect = Dialect::SENDMAIL_BS;
/// Recipients per message (RFC 5321 section 4.5.3.1.8 asks for at least 100).
const MAX_RECIPIENTS: usize = 1000;

/// The envelope being collected.
#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<String>,
}

pub(super) fn serve(settings: &SubmitSettings, io: &mut SendmailIo) -> Handled {
    let how = submission(settings, io);
    let SendmailIo {
        stdin,
        stdout,
        uid,
        username,
        ..
    } = &mut *io;
    let mut submit = |drop: &MaildropFile| submit(&how, drop).map_err(|e| e.smtp_reply());
    let mut session = Session::new(
        settings,
        (*uid, username.as_str()),
        &mut **stdin,
        &mut **stdout,
        &mut submit,
    );
    match session.run() {
        Ok(()) => Handled::Exit(EX_OK),
        Err(e) => io.fatal(EX_TEMPFAIL, format!("-bs session: {e}")),
    }
}

/// A whole session over `input` with `submit` in place of the maildrop: the replies and how
/// the session ended. For the `sendmail_bs` fuzz target (`crate::fuzzing`).
pub(crate) fn session_with(
    settings: &SubmitSettings,
    input: &mut dyn BufRead,
    submit: Submit<'_>,
) -> (Vec<u8>, io::Result<()>) {
    let mut output = Vec::new();
    let ended = Session::new(settings, (1000, "fuzz"), input, &mut output, submit).run();
    (output, ended)
}

type Submit<'a> = &'a mut dyn FnMut(&MaildropFile) -> Result<QueueId, Reply>;

struct Session<'a> {
    settings: &'a SubmitSettings,
    uid: u32,
    username: &'a str,
    input: Input<'a>,
    output: &'a mut dyn Write,
    transaction: Transaction,
    submit: Submit<'a>,
}

impl<'a> Session<'a> {
    /// A session for the user `(uid, name)`.
    fn new(
        settings: &'a SubmitSettings,
        (uid, username): (u32, &'a str),
        input: &'a mut dyn BufRead,
        output: &'a mut dyn Write,
        submit: Submit<'a>,
    ) -> Session<'a> {
        Session {
            settings,
            uid,
            username,
            input: Input::new(input),
            output,
            transaction: Transaction::default(),
            submit,
        }
    }

    /// Until QUIT or end of input; an I/O error on the streams ends the session.
    fn run(&mut self) -> io::Result<()> {
        let greeting = format!("{} ESMTP mailroom", self.settings.myhostname);
        self.reply(&Reply::new(220, "", greeting))?;
        loop {
            let Some(line) = self.input.command_line()? else {
                return Ok(());
            };
            let reply = match line {
                Some(line) => match parse_with(&line, &DIALECT) {
                    Ok(Command::Quit) => return self.reply(&fixed::bye()),
                    Ok(Command::Data) => self.data()?,
                    Ok(command) => self.envelope(command),
                    Err(error) => error.reply,
                },
                None => fixed::line_too_long(),
            };
            self.reply(&reply)?;
        }
    }

    fn reply(&mut self, reply: &Reply) -> io::Result<()> {
        self.output.write_all(&reply.to_wire())?;
        self.output.flush()
    }

    fn envelope(&mut self, command: Command) -> Reply {
        let limit = self.settings.message_limit;
        let transaction = &mut self.transaction;
        match command {
            Command::Helo(_) => Reply::new(250, "", self.settings.myhostname.clone()),
            Command::Ehlo(_) => Reply::multi(
                250,
                vec![
                    self.settings.myhostname.clone(),
                    format!("SIZE {limit}"),
                    "8BITMIME".into(),
                    "ENHANCEDSTATUSCODES".into(),
                ],
            ),
            Command::Mail { .. } if transaction.sender.is_some() => fixed::nested_mail(),
            Command::Mail { params, .. } if params.size.is_some_and(|size| size > limit) => {
                fixed::size_exceeded()
            }
            Command::Mail { sender, .. } => {
                transaction.sender = Some(sender);
                fixed::sender_ok()
            }
            Command::Rcpt { .. } if transaction.sender.is_none() => fixed::need_mail(),
            Command::Rcpt { .. } if transaction.recipients.len() >= MAX_RECIPIENTS => {
                fixed::too_many_recipients()
            }
            Command::Rcpt { recipient, .. } => {
                transaction.recipients.push(recipient);
                fixed::recipient_ok()
            }
            Command::Rset => {
                *transaction = Transaction::default();
                fixed::ok()
            }
            Command::Noop => fixed::ok(),
            // The dialect has no other verbs; QUIT and DATA are handled by `run`.
            _ => fixed::unknown_command(),
        }
    }

    /// DATA: collect the message, write it, and answer only when it is durable.
    fn data(&mut self) -> io::Result<Reply> {
        if self.transaction.recipients.is_empty() {
            return Ok(fixed::need_rcpt());
        }
        self.reply(&fixed::start_data())?;
        let transaction = std::mem::take(&mut self.transaction);
        let Some(message) = self.input.message(self.settings.message_limit)? else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        let Some(message) = message else {
            return Ok(fixed::message_too_big());
        };
        let drop = MaildropFile {
            id: QueueId::generate(),
            arrival_time: now(),
            uid: self.uid,
            username: self.username.to_string(),
            fullname: None,
            sender: transaction.sender.unwrap_or_default(),
            recipients: transaction.recipients,
            dsn: DsnOptions::default(),
            message,
        };
        Ok(match (self.submit)(&drop) {
            Ok(id) => fixed::queued(&id.to_string()),
            Err(reply) => reply,
        })
    }
}

/// The input stream as the codec wants it: `pending` holds the bytes read but not used yet,
/// from which command lines are framed and DATA is decoded.
struct Input<'a> {
    reader: &'a mut dyn BufRead,
    pending: Vec<u8>,
}

impl<'a> Input<'a> {
    fn new(reader: &'a mut dyn BufRead) -> Input<'a> {
        Input {
            reader,
            pending: Vec::new(),
        }
    }

    /// Moves what the reader has next into `pending`; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        let chunk = loop {
            match self.reader.fill_buf() {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?.len(),
            }
        };
        self.pending
            .extend_from_slice(&self.reader.fill_buf()?[..chunk]);
        self.reader.consume(chunk);
        Ok(chunk > 0)
    }

    /// The next command line without its line end: `None` at end of input, `Some(None)`
    /// when it was too long (the rest of it has been skipped). A last line without LF
    /// counts as a line.
    fn command_line(&mut self) -> io::Result<Option<Option<Vec<u8>>>> {
        loop {
            match line::frame(&self.pending, DIALECT.max_line) {
                Frame::Line {
                    content, consumed, ..
                } => {
                    let text = self.pending[..content].to_vec();
                    self.pending.drain(..consumed);
                    return Ok(Some(Some(text)));
                }
                Frame::TooLong => {
                    self.skip_line()?;
                    return Ok(Some(None));
                }
                Frame::Incomplete => {
                    if !self.fill()? {
                        let last = std::mem::take(&mut self.pending);
                        return Ok((!last.is_empty()).then_some(Some(last)));
                    }
                }
            }
        }
    }

    /// Drops input up to and including the next LF (or to the end).
    fn skip_line(&mut self) -> io::Result<()> {
        loop {
            let (used, found) = line::skip_line(&self.pending);
            self.pending.drain(..used);
            if found || !self.fill()? {
                return Ok(());
            }
        }
    }

    /// DATA up to the lone `.` line, decoded the `sendmail -bs` way (`BareNewline::Local`:
    /// dot-unstuffing, CRLF to LF). `None` at end of input; `Some(None)` when over `limit`
    /// (the rest was read and dropped).
    fn message(&mut self, limit: u64) -> io::Result<Option<Option<Vec<u8>>>> {
        let mut decoder = Decoder::new(Mode::Dot, BareNewline::Local, limit);
        loop {
            let (used, done) = decoder.feed(&self.pending);
            self.pending.drain(..used);
            if done {
                return Ok(Some(decoder.finish().ok()));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }
}

#[cfg(test)]
mod tests;
