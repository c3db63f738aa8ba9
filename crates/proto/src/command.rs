//! The SMTP command parser: one command line (without its line end) in, one typed
//! [`Command`] or the error [`Reply`] out. No I/O, no state, no allocation beyond the result;
//! fuzzed (`fuzz/` at the repository root) and table-tested (`command/tests.rs`).
//!
//! Strictness ([`Dialect::SMTPD`]): the verb is case-insensitive and followed by exactly one
//! space when it has arguments (a tab or several spaces are tolerated only where RFC 5321
//! implementations commonly send them: after `FROM:` / `TO:`); paths need angle brackets;
//! every byte must be printable ASCII or UTF-8 (no control characters: a CR, LF or NUL
//! inside a line is refused here even though the line reader already stops at them).
//! [`Dialect::SENDMAIL_BS`] relaxes this as `dialect.rs` tabulates, with the same verbs,
//! the same [`Command`]s and the same reply texts.

use std::borrow::Cow;

use crate::address::{parse_path, PathError};
use crate::dialect::Dialect;
use crate::lenient;
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

/// Parses one command line in smtpd's dialect. `line` excludes the CRLF.
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    parse_with(line, &Dialect::SMTPD)
}

/// Parses one command line in `dialect`. `line` excludes the CRLF.
pub fn parse_with(line: &[u8], dialect: &Dialect) -> Result<Command, ParseError> {
    let text = decode(line, dialect)?;
    let (verb, rest) = split_verb(&text, dialect);
    let d = dialect;
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => hello(rest, "ehlo", d).map(Command::Ehlo),
        "HELO" => hello(rest, "helo", d).map(Command::Helo),
        "MAIL" => mail(rest, d),
        "RCPT" => rcpt(rest, d),
        "DATA" => no_argument(rest, "data", "DATA", Command::Data, d),
        "RSET" => no_argument(rest, "rset", "RSET", Command::Rset, d),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_argument(rest, "quit", "QUIT", Command::Quit, d),
        verb if d.extensions => extension(verb, rest, d),
        _ => Err(unknown()),
    }
}

/// The verbs beyond the basic set.
fn extension(verb: &str, rest: Option<&str>, d: &Dialect) -> Result<Command, ParseError> {
    match verb {
        "BDAT" => bdat(rest),
        "VRFY" => vrfy(rest),
        "HELP" => Ok(Command::Help),
        "STARTTLS" => no_argument(rest, "starttls", "STARTTLS", Command::StartTls, d),
        "AUTH" => auth(rest),
        "EXPN" => Ok(Command::NotImplemented("expn")),
        "ETRN" => Ok(Command::NotImplemented("etrn")),
        "TURN" => Ok(Command::NotImplemented("turn")),
        _ => Err(unknown()),
    }
}

/// The line as text. Strict: UTF-8 without control characters but tab. Lenient: invalid
/// UTF-8 becomes U+FFFD and trailing CRs and LFs are dropped.
fn decode<'a>(line: &'a [u8], dialect: &Dialect) -> Result<Cow<'a, str>, ParseError> {
    if !dialect.strict {
        let end = line
            .iter()
            .rposition(|&b| !matches!(b, b'\r' | b'\n'))
            .map_or(0, |last| last + 1);
        return Ok(String::from_utf8_lossy(&line[..end]));
    }
    let text = std::str::from_utf8(line).map_err(|_| unknown())?;
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(unknown());
    }
    Ok(Cow::Borrowed(text))
}

/// The verb and what follows its first space. Lenient: the arguments trimmed, `None` when
/// nothing is left.
fn split_verb<'a>(text: &'a str, dialect: &Dialect) -> (&'a str, Option<&'a str>) {
    let (verb, rest) = match text.split_once(' ') {
        Some((verb, rest)) => (verb, Some(rest)),
        None => (text, None),
    };
    match dialect.strict {
        true => (verb, rest),
        false => (verb, rest.map(str::trim).filter(|rest| !rest.is_empty())),
    }
}

fn unknown() -> ParseError {
    ParseError {
        verb: "unknown",
        reply: fixed::unknown_command(),
    }
}

/// A verb without arguments; the lenient dialect ignores any.
fn no_argument(
    rest: Option<&str>,
    verb: &'static str,
    name: &str,
    command: Command,
    dialect: &Dialect,
) -> Result<Command, ParseError> {
    match rest {
        Some(_) if dialect.strict => Err(fail(verb, 501, "5.5.4", &format!("Syntax: {name}"))),
        _ => Ok(command),
    }
}

/// EHLO/HELO take one domain or address literal. Postfix accepts anything printable here
/// (clients send NetBIOS names with underscores), so only spaces and emptiness are refused.
/// The lenient dialect takes any non-empty text, and has always named EHLO in its usage.
fn hello(rest: Option<&str>, verb: &'static str, dialect: &Dialect) -> Result<String, ParseError> {
    let name = rest.map(str::trim).unwrap_or("");
    if !dialect.strict && !name.is_empty() {
        return Ok(name.to_string());
    }
    if name.is_empty() || name.contains([' ', '\t']) || name.len() > 255 {
        let shown = if dialect.strict { verb } else { "ehlo" };
        let usage = format!("Syntax: {} hostname", shown.to_ascii_uppercase());
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

fn mail(rest: Option<&str>, dialect: &Dialect) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: MAIL FROM:<address>";
    if !dialect.strict {
        let (sender, params) = lenient_path(rest, "FROM:", "mail", USAGE)?;
        let size = lenient::size_parameter(params);
        let params = MailParams {
            size,
            ..MailParams::default()
        };
        return Ok(Command::Mail { sender, params });
    }
    let (sender, params) = keyword_path(rest, "FROM:", "mail", USAGE)?;
    let params = parse_mail_params(params).map_err(|reply| ParseError {
        verb: "mail",
        reply,
    })?;
    Ok(Command::Mail { sender, params })
}

fn rcpt(rest: Option<&str>, dialect: &Dialect) -> Result<Command, ParseError> {
    const USAGE: &str = "Syntax: RCPT TO:<address>";
    if !dialect.strict {
        let (recipient, _) = lenient_path(rest, "TO:", "rcpt", USAGE)?;
        if recipient.is_empty() {
            return Err(fail("rcpt", 501, "5.5.4", USAGE));
        }
        let params = RcptParams::default();
        return Ok(Command::Rcpt { recipient, params });
    }
    let (recipient, params) = keyword_path(rest, "TO:", "rcpt", USAGE)?;
    if recipient.is_empty() {
        return Err(fail("rcpt", 501, "5.1.3", "Bad recipient address syntax"));
    }
    let params = parse_rcpt_params(params).map_err(|reply| ParseError {
        verb: "rcpt",
        reply,
    })?;
    Ok(Command::Rcpt { recipient, params })
}

/// [`lenient::path_argument`], refused with the usage reply (the lenient dialect tells no
/// syntax error from another).
fn lenient_path<'a>(
    rest: Option<&'a str>,
    keyword: &str,
    verb: &'static str,
    usage: &str,
) -> Result<(String, &'a str), ParseError> {
    rest.and_then(|rest| lenient::path_argument(rest, keyword))
        .ok_or_else(|| fail(verb, 501, "5.5.4", usage))
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
