//! The sendmail command line, parsed by hand the way Postfix's sendmail(1) reads it: getopt
//! style clusters (`-ti`, `-oi`, `-fuser`, `-f user`), options end at `--` or at the first
//! argument that is not an option (Postfix uses `+` getopt), the rest are recipients.
//!
//! Flags Postfix accepts and ignores (`-7 -8 -A -c -G -m -n -U -x`, `-e x`, `-h n`, `-L x`,
//! `-O x`, `-p x`, `-X x`, `-B type`, `-o x` other than `-oi`) are ignored here too, and so is
//! any other unknown letter: scripts written for some sendmail must not break on a flag.

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

/// A command line that cannot be obeyed (exit 64).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(text: impl Into<String>) -> UsageError {
    UsageError(text.into())
}

/// Letters whose option takes a value, attached (`-fuser`) or as the next argument.
const TAKES_VALUE: &str = "BCFLNORVXbefhopr";

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
        if arg == "--" {
            break;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            invocation.submit.recipients.extend(recipients(arg)?);
            break;
        };
        parse_cluster(cluster, &mut rest, &mut invocation)?;
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
        let attached = &cluster[at + letter.len_utf8()..];
        if letter == 'q' {
            invocation.mode = Mode::Flush(flush_scope(attached)?);
            return Ok(());
        }
        if !TAKES_VALUE.contains(letter) {
            apply_flag(letter, invocation);
            continue;
        }
        let value = match attached {
            "" => utf8(
                rest.next()
                    .ok_or_else(|| usage(format!("option requires an argument -- '{letter}'")))?,
            )?,
            attached => attached,
        };
        return apply_value(letter, value, invocation);
    }
    Ok(())
}

fn apply_flag(letter: char, invocation: &mut Invocation) {
    match letter {
        't' => invocation.submit.extract_recipients = true,
        'i' => invocation.submit.ignore_dots = true,
        'I' => invocation.mode = Mode::NewAliases,
        // -v (verbose) and everything Postfix ignores or does not know.
        _ => {}
    }
}

fn apply_value(letter: char, value: &str, invocation: &mut Invocation) -> Result<(), UsageError> {
    let submit = &mut invocation.submit;
    match letter {
        'f' | 'r' => submit.sender = Some(sender(value)?),
        'F' => submit.fullname = Some(value.to_string()),
        'C' => invocation.config_path = Some(PathBuf::from(value)),
        'b' => invocation.mode = mode(value)?,
        'o' if value == "i" => submit.ignore_dots = true,
        'N' => submit.dsn.notify = Some(notify(value)?),
        'R' => submit.dsn.ret = Some(ret(value)?),
        'V' => submit.dsn.envid = Some(envid(value)?),
        // -B, -L, -O, -X, -e, -h, -p and other -o: accepted and ignored, as in Postfix.
        _ => {}
    }
    Ok(())
}

fn mode(value: &str) -> Result<Mode, UsageError> {
    match value {
        "m" => Ok(Mode::Submit),
        "p" => Ok(Mode::ListQueue),
        "s" => Ok(Mode::SmtpOnStdio),
        "i" => Ok(Mode::NewAliases),
        other => Err(usage(format!("unsupported: -b{other}"))),
    }
}

fn flush_scope(attached: &str) -> Result<FlushScope, UsageError> {
    let named = |kind: &str, name: &str| match name {
        "" => Err(usage(format!("specify: -q{kind}<name>"))),
        name => Ok(name.to_string()),
    };
    match attached.chars().next() {
        None => Ok(FlushScope::All),
        Some(c) if c.is_ascii_digit() => Ok(FlushScope::All),
        Some('R') | Some('S') => Ok(FlushScope::Site(named("R", &attached[1..])?)),
        Some('I') => Ok(FlushScope::QueueId(named("I", &attached[1..])?)),
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
