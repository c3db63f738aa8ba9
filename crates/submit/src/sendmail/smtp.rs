//! `sendmail -bs`: a minimal SMTP server on standard input and output (RFC 5321), for the
//! programs that talk SMTP to a local sendmail instead of passing arguments. Each DATA
//! becomes one maildrop file, and 250 is sent only once that file is durable (invariant 1).
//!
//! Commands: HELO, EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; anything else is 500 5.5.2.
//! The command parser is pure (a line in, a [`Command`] out) and table-tested.

use std::io::{self, BufRead, Read, Write};

use config::Config;
use envelope::QueueId;

use super::{now, submission, Handled, SendmailIo};
use crate::maildrop::{DsnOptions, MaildropFile};
use crate::submission::{message_limit, submit};
use envelope::sysexits::{EX_OK, EX_TEMPFAIL};

/// Longest command line accepted (RFC 5321 section 4.5.3.1.4 asks for at least 512).
const MAX_COMMAND_LINE: u64 = 2048;
/// Recipients per message (RFC 5321 section 4.5.3.1.8 asks for at least 100).
const MAX_RECIPIENTS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Helo(String),
    Ehlo(String),
    Mail {
        sender: String,
        size: Option<u64>,
    },
    Rcpt(String),
    Data,
    Rset,
    Noop,
    Quit,
    Unknown,
    /// A known verb with bad arguments: the reply to send.
    Syntax(&'static str),
}

fn parse_command(line: &str) -> Command {
    let line = line.trim_end_matches(['\r', '\n']);
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match verb.to_ascii_uppercase().as_str() {
        "HELO" | "EHLO" if rest.is_empty() => Command::Syntax("501 5.5.4 Syntax: EHLO hostname"),
        "HELO" => Command::Helo(rest.to_string()),
        "EHLO" => Command::Ehlo(rest.to_string()),
        "MAIL" => match path_argument(rest, "FROM:") {
            Some((sender, params)) => Command::Mail {
                sender,
                size: size_parameter(params),
            },
            None => Command::Syntax("501 5.5.4 Syntax: MAIL FROM:<address>"),
        },
        "RCPT" => match path_argument(rest, "TO:") {
            Some((recipient, _)) if !recipient.is_empty() => Command::Rcpt(recipient),
            _ => Command::Syntax("501 5.5.4 Syntax: RCPT TO:<address>"),
        },
        "DATA" => Command::Data,
        "RSET" => Command::Rset,
        "NOOP" => Command::Noop,
        "QUIT" => Command::Quit,
        _ => Command::Unknown,
    }
}

/// `FROM:<a@b> SIZE=10` → (`a@b`, `SIZE=10`); also tolerates a bare address and spaces.
fn path_argument<'a>(rest: &'a str, keyword: &str) -> Option<(String, &'a str)> {
    let head = rest.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = rest[keyword.len()..].trim_start();
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => inner.split_once('>')?,
        None => rest.split_once(' ').unwrap_or((rest, "")),
    };
    // Drop an obsolete source route (`@relay:user@host`).
    let address = match path.strip_prefix('@') {
        Some(route) => route.split_once(':')?.1,
        None => path,
    };
    let clean = !address.chars().any(|c| c.is_control() || c.is_whitespace());
    clean.then(|| (address.to_string(), params))
}

fn size_parameter(params: &str) -> Option<u64> {
    params.split_whitespace().find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.eq_ignore_ascii_case("SIZE")
            .then(|| value.parse().ok())?
    })
}

/// The envelope being collected.
#[derive(Default)]
struct Transaction {
    sender: Option<String>,
    recipients: Vec<String>,
}

pub(super) fn serve(cfg: &Config, io: &mut SendmailIo) -> Handled {
    let how = submission(cfg, io);
    let SendmailIo {
        stdin,
        stdout,
        uid,
        username,
        ..
    } = &mut *io;
    let mut session = Session {
        cfg,
        uid: *uid,
        username,
        input: stdin,
        output: stdout,
        transaction: Transaction::default(),
        submit: &mut |drop: &MaildropFile| submit(&how, drop).map_err(|e| e.smtp_reply()),
    };
    match session.run() {
        Ok(()) => Handled::Exit(EX_OK),
        Err(e) => io.fatal(EX_TEMPFAIL, format!("-bs session: {e}")),
    }
}

/// A whole session over `input` with `submit` in place of the maildrop: the replies and how
/// the session ended. For the `sendmail_bs` fuzz target (`crate::fuzzing`).
pub(crate) fn session_with(
    cfg: &Config,
    input: &mut dyn BufRead,
    submit: Submit<'_>,
) -> (Vec<u8>, io::Result<()>) {
    let mut output = Vec::new();
    let mut session = Session {
        cfg,
        uid: 1000,
        username: "fuzz",
        input,
        output: &mut output,
        transaction: Transaction::default(),
        submit,
    };
    let ended = session.run();
    (output, ended)
}

type Submit<'a> = &'a mut dyn FnMut(&MaildropFile) -> Result<QueueId, &'static str>;

struct Session<'a> {
    cfg: &'a Config,
    uid: u32,
    username: &'a str,
    input: &'a mut dyn BufRead,
    output: &'a mut dyn Write,
    transaction: Transaction,
    submit: Submit<'a>,
}

impl Session<'_> {
    /// Until QUIT or end of input; an I/O error on the streams ends the session.
    fn run(&mut self) -> io::Result<()> {
        self.reply(&format!("220 {} ESMTP mailroom", self.cfg.myhostname))?;
        loop {
            let Some(line) = self.command_line()? else {
                return Ok(());
            };
            let reply = match line {
                Some(line) => match parse_command(&line) {
                    Command::Quit => return self.reply("221 2.0.0 Bye"),
                    Command::Data => self.data()?,
                    command => self.envelope(command),
                },
                None => "500 5.5.2 Error: line too long".to_string(),
            };
            self.reply(&reply)?;
        }
    }

    fn reply(&mut self, text: &str) -> io::Result<()> {
        write!(self.output, "{text}\r\n")?;
        self.output.flush()
    }

    /// The next command line: `None` at end of input, `Some(None)` when it was too long
    /// (the rest of it has been skipped).
    fn command_line(&mut self) -> io::Result<Option<Option<String>>> {
        let mut line = Vec::new();
        let read = (&mut *self.input)
            .take(MAX_COMMAND_LINE)
            .read_until(b'\n', &mut line)?;
        if read == 0 {
            return Ok(None);
        }
        if !line.ends_with(b"\n") && read as u64 == MAX_COMMAND_LINE {
            let mut rest = Vec::new();
            self.input.read_until(b'\n', &mut rest)?;
            return Ok(Some(None));
        }
        Ok(Some(Some(String::from_utf8_lossy(&line).into_owned())))
    }

    fn envelope(&mut self, command: Command) -> String {
        let limit = message_limit(self.cfg);
        let transaction = &mut self.transaction;
        match command {
            Command::Helo(_) => format!("250 {}", self.cfg.myhostname),
            Command::Ehlo(_) => format!(
                "250-{}\r\n250-SIZE {limit}\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES",
                self.cfg.myhostname
            ),
            Command::Mail { .. } if transaction.sender.is_some() => {
                "503 5.5.1 Error: nested MAIL command".into()
            }
            Command::Mail {
                size: Some(size), ..
            } if size > limit => "552 5.3.4 Message size exceeds fixed limit".into(),
            Command::Mail { sender, .. } => {
                transaction.sender = Some(sender);
                "250 2.1.0 Ok".into()
            }
            Command::Rcpt(_) if transaction.sender.is_none() => {
                "503 5.5.1 Error: need MAIL command".into()
            }
            Command::Rcpt(_) if transaction.recipients.len() >= MAX_RECIPIENTS => {
                "452 4.5.3 Error: too many recipients".into()
            }
            Command::Rcpt(recipient) => {
                transaction.recipients.push(recipient);
                "250 2.1.5 Ok".into()
            }
            Command::Rset => {
                *transaction = Transaction::default();
                "250 2.0.0 Ok".into()
            }
            Command::Noop => "250 2.0.0 Ok".into(),
            Command::Syntax(reply) => reply.into(),
            Command::Unknown | Command::Quit | Command::Data => {
                "500 5.5.2 Error: command not recognized".into()
            }
        }
    }

    /// DATA: collect the message, write it, and answer only when it is durable.
    fn data(&mut self) -> io::Result<String> {
        if self.transaction.recipients.is_empty() {
            return Ok("503 5.5.1 Error: need RCPT command".into());
        }
        self.reply("354 End data with <CR><LF>.<CR><LF>")?;
        let transaction = std::mem::take(&mut self.transaction);
        let Some(message) = read_data(self.input, message_limit(self.cfg))? else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        let Some(message) = message else {
            return Ok("552 5.3.4 Error: message file too big".into());
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
            Ok(id) => format!("250 2.0.0 Ok: queued as {id}"),
            Err(reply) => reply.to_string(),
        })
    }
}

/// Reads DATA up to the lone `.` line: dot-unstuffing (RFC 5321 section 4.5.2), CRLF to LF.
/// `None` at end of input; `Some(None)` when over `limit` (the rest was read and dropped).
fn read_data(input: &mut dyn BufRead, limit: u64) -> io::Result<Option<Option<Vec<u8>>>> {
    let mut message = Vec::new();
    let mut too_big = false;
    let mut at_line_start = true;
    let mut chunk = Vec::new();
    loop {
        chunk.clear();
        let budget = match too_big {
            true => 64 * 1024,
            false => limit.saturating_sub(message.len() as u64).saturating_add(3),
        };
        if (&mut *input).take(budget).read_until(b'\n', &mut chunk)? == 0 {
            return Ok(None);
        }
        let starts_line = at_line_start;
        at_line_start = chunk.ends_with(b"\n");
        if starts_line && (chunk == b".\r\n" || chunk == b".\n") {
            return Ok(Some((!too_big).then_some(message)));
        }
        if too_big {
            continue;
        }
        let unstuffed = match starts_line && chunk.starts_with(b".") {
            true => &chunk[1..],
            false => &chunk[..],
        };
        message.extend_from_slice(unstuffed);
        if message.ends_with(b"\r\n") {
            message.truncate(message.len() - 2);
            message.push(b'\n');
        }
        if message.len() as u64 > limit {
            too_big = true;
            message = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests;
