//! The SMTP command parser: one command line (without its line end) in, one typed
//! [`Command`] or the error [`Reply`] out. No I/O, no state, no allocation beyond the result;
//! fuzzed (`fuzz/` at the repository root) and table-tested (`command/tests.rs`).
//!
//! Strictness: the verb is case-insensitive and followed by exactly one space when it has
//! arguments (a tab or several spaces are tolerated only where RFC 5321 implementations
//! commonly send them: after `FROM:` / `TO:`); paths need angle brackets; every byte must be
//! printable ASCII or UTF-8 (no control characters: a CR, LF or NUL inside a line is refused
//! here even though the line reader already stops at them).

use crate::address::{parse_path, PathError};
use crate::params::{parse_mail_params, parse_rcpt_params, MailParams, RcptParams};
use crate::reply::{fixed, Reply};

/// One parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail {
        sender: String,
        params: MailParams,
    },
    Rcpt {
        recipient: String,
        params: RcptParams,
    },
    Data,
    /// RFC 3030 BDAT: the chunk of `size` octets follows the command line.
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Help,
    StartTls,
    /// RFC 4954: mechanism (upper case) and the optional initial response (base64 or `=`).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A verb we know and refuse on purpose (EXPN, ETRN, TURN): 502.
    NotImplemented(&'static str),
}

impl Command {
    /// The verb as counted in the `disconnect from` log line.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "ehlo",
            Command::Helo(_) => "helo",
            Command::Mail { .. } => "mail",
            Command::Rcpt { .. } => "rcpt",
            Command::Data => "data",
            Command::Bdat { .. } => "bdat",
            Command::Rset => "rset",
            Command::Noop => "noop",
            Command::Quit => "quit",
            Command::Vrfy(_) => "vrfy",
            Command::Help => "help",
            Command::StartTls => "starttls",
            Command::Auth { .. } => "auth",
            Command::NotImplemented(verb) => verb,
        }
    }
}

/// A parse failure: the verb it concerned (`unknown` if none) and the reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub verb: &'static str,
    pub reply: Reply,
}

fn fail(verb: &'static str, code: u16, status: &'static str, text: &str) -> ParseError {
    ParseError {
        verb,
        reply: Reply::new(code, status, text),
    }
}

/// Parses one command line. `line` excludes the CRLF.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| unknown())?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(unknown());
    }
    let (verb, rest) = match text.split_once(' ') {
        Some((verb, rest)) => (verb, Some(rest)),
        None => (text, None),
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => hello(rest, "ehlo").map(Command::Ehlo),
        "HELO" => hello(rest, "helo").map(Command::Helo),
        "MAIL" => mail(rest),
        "RCPT" => rcpt(rest),
        "DATA" => no_argument(rest, "data", "DATA", Command::Data),
        "BDAT" => bdat(rest),
        "RSET" => no_argument(rest, "rset", "RSET", Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_argument(rest, "quit", "QUIT", Command::Quit),
        "VRFY" => vrfy(rest),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_argument(rest, "starttls", "STARTTLS", Command::StartTls),
        "AUTH" => auth(rest),
        "EXPN" => Ok(Command::NotImplemented("expn")),
        "ETRN" => Ok(Command::NotImplemented("etrn")),
        "TURN" => Ok(Command::NotImplemented("turn")),
        _ => Err(unknown()),
    }
}

fn unknown() -> ParseError {
    ParseError {
        verb: "unknown",
        reply: fixed::unknown_command(),
    }
}

fn no_argument(
    rest: Option<&str>,
    verb: &'static str,
    name: &str,
    command: Command,
) -> Result<Command, ParseError> {
    match rest {
        None => Ok(command),
        Some(_) => Err(fail(verb, 501, "5.5.4", &format!("Syntax: {name}"))),
    }
}

/// EHLO/HELO take one domain or address literal. Postfix accepts anything printable here
/// (clients send NetBIOS names with underscores), so only spaces and emptiness are refused.
fn hello(rest: Option<&str>, verb: &'static str) -> Result<String, ParseError> {
    let name = rest.map(str::trim).unwrap_or("");
    if name.is_empty() || name.contains([' ', '\t']) || name.len() > 255 {
        let usage = format!("Syntax: {} hostname", verb.to_ascii_uppercase());
        return Err(fail(verb, 501, "5.5.4", &usage));
    }
    Ok(name.to_string())
}

/// `FROM:<path> params`, tolerating spaces after the colon (Postfix does too).
fn keyword_path<'a>(
    rest: Option<&'a str>,
    keyword: &str,
    verb: &'static str,
    usage: &str,
) -> Result<(String, &'a str), ParseError> {
    let usage_error = || fail(verb, 501, "5.5.4", usage);
    let rest = rest.ok_or_else(usage_error)?;
    let head = rest.get(..keyword.len()).ok_or_else(usage_error)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(usage_error());
    }
    let path = rest[keyword.len()..].trim_start_matches([' ', '\t']);
    let bad_address =
        |status, what: &str| fail(verb, 501, status, &format!("Bad {what} address syntax"));
    let (status, what) = if verb == "mail" {
        ("5.1.7", "sender")
    } else {
        ("5.1.3", "recipient")
    };
    match parse_path(path) {
        Ok((address, params)) if params.is_empty() || params.starts_with(' ') => {
            Ok((address, params))
        }
        Ok(_) | Err(PathError::Brackets) => Err(usage_error()),
        Err(PathError::Syntax) | Err(PathError::TooLong) => Err(bad_address(status, what)),
    }
}

fn mail(rest: Option<&str>) -> Result<Command, ParseError> {
    let (sender, params) = keyword_path(rest, "FROM:", "mail", "Syntax: MAIL FROM:<address>")?;
    let params = parse_mail_params(params).map_err(|reply| ParseError {
        verb: "mail",
        reply,
    })?;
    Ok(Command::Mail { sender, params })
}

fn rcpt(rest: Option<&str>) -> Result<Command, ParseError> {
    let (recipient, params) = keyword_path(rest, "TO:", "rcpt", "Syntax: RCPT TO:<address>")?;
    if recipient.is_empty() {
        return Err(fail("rcpt", 501, "5.1.3", "Bad recipient address syntax"));
    }
    let params = parse_rcpt_params(params).map_err(|reply| ParseError {
        verb: "rcpt",
        reply,
    })?;
    Ok(Command::Rcpt { recipient, params })
}

fn bdat(rest: Option<&str>) -> Result<Command, ParseError> {
    let usage = || fail("bdat", 501, "5.5.4", "Syntax: BDAT size [LAST]");
    let mut words = rest.ok_or_else(usage)?.split(' ');
    let size = words.next().ok_or_else(usage)?;
    if size.is_empty() || size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(usage());
    }
    let size: u64 = size.parse().map_err(|_| usage())?;
    let last = match (words.next(), words.next()) {
        (None, _) => false,
        (Some(word), None) if word.eq_ignore_ascii_case("LAST") => true,
        _ => return Err(usage()),
    };
    Ok(Command::Bdat { size, last })
}

fn vrfy(rest: Option<&str>) -> Result<Command, ParseError> {
    match rest.map(str::trim) {
        Some(arg) if !arg.is_empty() => Ok(Command::Vrfy(arg.to_string())),
        _ => Err(fail("vrfy", 501, "5.5.4", "Syntax: VRFY address")),
    }
}

fn auth(rest: Option<&str>) -> Result<Command, ParseError> {
    let usage = || {
        fail(
            "auth",
            501,
            "5.5.4",
            "Syntax: AUTH mechanism [initial-response]",
        )
    };
    let mut words = rest.ok_or_else(usage)?.split(' ');
    let mechanism = words.next().filter(|m| !m.is_empty()).ok_or_else(usage)?;
    let initial = words.next();
    if words.next().is_some() || initial == Some("") {
        return Err(usage());
    }
    Ok(Command::Auth {
        mechanism: mechanism.to_ascii_uppercase(),
        initial: initial.map(str::to_string),
    })
}

#[cfg(test)]
mod tests;
