//! The sendmail command line, parsed the way Postfix's sendmail(1) reads it: getopt clusters
//! (`-ti`, `-oi`, `-fuser`, `-f user`) over Postfix's exact option list, options end at `--`
//! or at the first argument that is not an option (Postfix uses `+` getopt), the rest are
//! recipients.
//!
//! Only the letters Postfix's sendmail knows are options ([`WITH_VALUE`], [`FLAGS`]); any other
//! letter is refused as Postfix refuses it (`sendmail: invalid option -- 's'`, then
//! `fatal: usage: sendmail [options]`, exit 75), because a mistaken flag's value would
//! otherwise become a recipient (`sendmail -s "disk full" root` mailing `diskfull`).
//! Letters Postfix accepts and ignores are ignored here too: `-A x`, `-c`, `-e x`, `-G`,
//! `-h n`, `-L x`, `-m`, `-O x`, `-p x`, `-U`, `-x`, `-XV` (VERP: mailroom has none), and
//! `-o x` other than `-oi` (`-oA` needs a path, as in Postfix). Values Postfix refuses are
//! refused: `-B` other than `8BITMIME`/`7BIT`, `-X` other than `-XV…`, and `-n` (Postfix's
//! manual says "ignored", its code says "-n option not supported").

use std::ffi::OsString;
use std::path::PathBuf;

use crate::addresses::parse_address_list;
use crate::maildrop::DsnOptions;

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub mode: Mode,
    /// `-C path`: the configuration file.
    pub config_path: Option<PathBuf>,
    pub submit: SubmitOptions,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `-bm` (the default): read a message from standard input and queue it.
    Submit,
    /// `-bp`: list the queue, like `mailq`.
    ListQueue,
    /// `-q`, `-qR site`, `-qI id`: ask the daemon to deliver now.
    Flush(FlushScope),
    /// `-bs`: speak SMTP on standard input and output.
    SmtpOnStdio,
    /// `-bi`, `-I`: rebuild aliases. mailroom reads alias files as text, so there is nothing to
    /// rebuild; accepted so that scripts calling `newaliases` succeed.
    NewAliases,
    /// `-bh`, `-bH`: print or flush host status. Postfix keeps none and does nothing.
    HostStatus,
}

/// Which mail a flush applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlushScope {
    /// `-q` (also `-q<interval>`, which only means something to a daemon that has a loop).
    All,
    /// `-qR<site>` or `-qS<site>`: mail for one destination.
    Site(String),
    /// `-qI<queue id>`: one message.
    QueueId(String),
}

/// Options for [`Mode::Submit`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubmitOptions {
    /// `-t`: take recipients from To/Cc/Bcc too, and remove Bcc.
    pub extract_recipients: bool,
    /// `-i`, `-oi`: a line with a single `.` is data, not the end of input.
    pub ignore_dots: bool,
    /// `-f`, `-r`: the envelope sender; `Some("")` is the null sender.
    pub sender: Option<String>,
    /// `-F`: full name for a `From:` header cleanup adds.
    pub fullname: Option<String>,
    /// `-N`, `-R`, `-V`.
    pub dsn: DsnOptions,
    /// Command-line recipients, address lists already split.
    pub recipients: Vec<String>,
}

/// A command line that cannot be obeyed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    /// What getopt refuses, an unknown letter or a missing value: Postfix prints getopt's
    /// complaint (this text) and then `fatal: usage: sendmail [options]`, and exits 75.
    #[error("{0}")]
    BadOption(String),
    /// An option or an argument with a value that cannot be obeyed (exit 64).
    #[error("{0}")]
    Invalid(String),
}

fn usage(text: impl Into<String>) -> UsageError {
    UsageError::Invalid(text.into())
}

/// Postfix's option letters that take a value, attached (`-fuser`) or as the next argument
/// (the letters followed by `:` in sendmail.c's `GETOPT_LIST`).
pub const WITH_VALUE: &str = "ABCFLNORVXbefhopqr";
/// Postfix's option letters without a value.
pub const FLAGS: &str = "GIUcimntvx";

/// Parses the arguments after the program name.
pub fn parse_args(args: &[OsString]) -> Result<Invocation, UsageError> {
    let mut invocation = Invocation {
        mode: Mode::Submit,
        config_path: None,
        submit: SubmitOptions::default(),
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let arg = utf8(arg)?;
        match arg {
            "--" => break,
            // Not getopt compatible in Postfix either: a bare -q takes no value.
            "-q" => invocation.mode = Mode::Flush(FlushScope::All),
            _ => match arg.strip_prefix('-').filter(|c| !c.is_empty()) {
                Some(cluster) => parse_cluster(cluster, &mut rest, &mut invocation)?,
                None => {
                    invocation.submit.recipients.extend(recipients(arg)?);
                    break;
                }
            },
        }
    }
    for arg in rest {
        invocation.submit.recipients.extend(recipients(utf8(arg)?)?);
    }
    Ok(invocation)
}

fn utf8(arg: &OsString) -> Result<&str, UsageError> {
    arg.to_str()
        .ok_or_else(|| usage(format!("argument is not valid UTF-8: {arg:?}")))
}

/// One `-xyz` argument: flags until a letter that takes a value, which swallows the rest of
/// the cluster or, when nothing is left, the next argument.
fn parse_cluster<'a>(
    cluster: &'a str,
    rest: &mut impl Iterator<Item = &'a OsString>,
    invocation: &mut Invocation,
) -> Result<(), UsageError> {
    for (at, letter) in cluster.char_indices() {
        if FLAGS.contains(letter) {
            apply_flag(letter, invocation)?;
            continue;
        }
        if !WITH_VALUE.contains(letter) {
            return Err(UsageError::BadOption(format!(
                "invalid option -- '{letter}'"
            )));
        }
        let value = match &cluster[at + letter.len_utf8()..] {
            "" => utf8(rest.next().ok_or_else(|| {
                UsageError::BadOption(format!("option requires an argument -- '{letter}'"))
            })?)?,
            attached => attached,
        };
        return apply_value(letter, value, invocation);
    }
    Ok(())
}

fn apply_flag(letter: char, invocation: &mut Invocation) -> Result<(), UsageError> {
    match letter {
        't' => invocation.submit.extract_recipients = true,
        'i' => invocation.submit.ignore_dots = true,
        'I' => invocation.mode = Mode::NewAliases,
        'n' => return Err(usage("-n option not supported")),
        // -v (verbose) and -c -G -m -U -x, which Postfix ignores.
        _ => {}
    }
    Ok(())
}

fn apply_value(letter: char, value: &str, invocation: &mut Invocation) -> Result<(), UsageError> {
    let submit = &mut invocation.submit;
    match letter {
        'f' | 'r' => submit.sender = Some(sender(value)?),
        'F' => submit.fullname = Some(value.to_string()),
        'C' => invocation.config_path = Some(PathBuf::from(value)),
        'b' => invocation.mode = mode(value)?,
        'q' => invocation.mode = Mode::Flush(flush_scope(value)?),
        'o' => submit.ignore_dots |= legacy_option(value)?,
        'B' => body_type(value)?,
        'X' => verp(value)?,
        'N' => submit.dsn.notify = Some(notify(value)?),
        'R' => submit.dsn.ret = Some(ret(value)?),
        'V' => submit.dsn.envid = Some(envid(value)?),
        // -A, -L, -O, -e, -h, -p: accepted and ignored, as in Postfix.
        _ => {}
    }
    Ok(())
}

/// `-o x`: Sendmail's option letters. Postfix honours `-oi` and `-oA<aliases>` and ignores
/// the rest (`-oem`, `-odb`, `-om`, `-o7`, `-o8`…); true for `-oi`.
fn legacy_option(value: &str) -> Result<bool, UsageError> {
    match value.chars().next() {
        Some('i') => Ok(true),
        Some('A') if value.len() == 1 => Err(usage("-oA requires pathname")),
        _ => Ok(false),
    }
}

/// `-B`: RFC 1652 body type. mailroom passes 8-bit data through either way.
fn body_type(value: &str) -> Result<(), UsageError> {
    match value {
        "8BITMIME" | "7BIT" => Ok(()),
        _ => Err(usage("-B option needs 8BITMIME or 7BIT")),
    }
}

/// `-X`: Postfix knows only `-XV` and `-XVxy` (VERP), which mailroom accepts and ignores: it
/// has no VERP, and delivering with the plain sender beats refusing a mailing list's mail.
fn verp(value: &str) -> Result<(), UsageError> {
    match value.chars().next() {
        Some('V') => Ok(()),
        first => Err(usage(format!("unsupported: -X{}", first.unwrap_or(' ')))),
    }
}

/// `-b x`: like Postfix, only the first letter counts.
fn mode(value: &str) -> Result<Mode, UsageError> {
    match value.chars().next() {
        Some('m') => Ok(Mode::Submit),
        Some('p') => Ok(Mode::ListQueue),
        Some('s') => Ok(Mode::SmtpOnStdio),
        Some('i') => Ok(Mode::NewAliases),
        Some('h') | Some('H') => Ok(Mode::HostStatus),
        first => Err(usage(format!("unsupported: -b{}", first.unwrap_or(' ')))),
    }
}

/// `-q<value>`: an interval (ignored: there is no daemon loop to set), `R<site>` or `I<id>`.
fn flush_scope(value: &str) -> Result<FlushScope, UsageError> {
    let named = |kind: &str, name: &str| match name {
        "" => Err(usage(format!("specify: -q{kind}<name>"))),
        name => Ok(name.to_string()),
    };
    match value.chars().next() {
        None => Ok(FlushScope::All),
        Some(c) if c.is_ascii_digit() => Ok(FlushScope::All),
        Some('R') => Ok(FlushScope::Site(named("R", &value[1..])?)),
        Some('I') => Ok(FlushScope::QueueId(named("I", &value[1..])?)),
        Some(other) => Err(usage(format!("-q{other} is not implemented"))),
    }
}

/// `-f` value: `<>`, `''` and `<>`-wrapped forms are accepted; line breaks are not.
fn sender(value: &str) -> Result<String, UsageError> {
    let trimmed = value.trim();
    let address = trimmed
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(trimmed);
    if address.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(usage(format!("bad sender address: {value:?}")));
    }
    Ok(address.to_string())
}

/// A command-line recipient may be an address list (`"a, Bob <b@x>"`), as in Postfix.
fn recipients(arg: &str) -> Result<Vec<String>, UsageError> {
    if arg.chars().any(char::is_control) {
        return Err(usage(format!("bad recipient address: {arg:?}")));
    }
    Ok(parse_address_list(arg))
}

/// RFC 3461 NOTIFY: `never`, or a comma list of `success`, `failure`, `delay`.
fn notify(value: &str) -> Result<String, UsageError> {
    let upper = value.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(',').map(str::trim).collect();
    let valid = match words.as_slice() {
        ["NEVER"] => true,
        words => words
            .iter()
            .all(|w| matches!(*w, "SUCCESS" | "FAILURE" | "DELAY")),
    };
    match valid {
        true => Ok(words.join(",")),
        false => Err(usage(format!("bad -N option value: {value}"))),
    }
}

/// RFC 3461 RET: `full` or `hdrs`.
fn ret(value: &str) -> Result<String, UsageError> {
    match value.to_ascii_uppercase().as_str() {
        upper @ ("FULL" | "HDRS") => Ok(upper.to_string()),
        _ => Err(usage(format!("bad -R option value: {value}"))),
    }
}

/// RFC 3461 ENVID: up to 100 printable ASCII characters.
fn envid(value: &str) -> Result<String, UsageError> {
    let printable = value.bytes().all(|b| (33..=126).contains(&b));
    match printable && !value.is_empty() && value.len() <= 100 {
        true => Ok(value.to_string()),
        false => Err(usage(format!("bad -V option value: {value}"))),
    }
}

#[cfg(test)]
mod tests;
