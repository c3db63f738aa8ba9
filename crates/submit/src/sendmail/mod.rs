//! `sendmail`: the Postfix/Sendmail-compatible command that cron, scripts and mailers call.
//!
//! [`run_sendmail`] parses the command line ([`args`]), loads the configuration, and then
//! either queues a message from standard input, speaks SMTP on standard input/output (`-bs`),
//! or hands `-bp` / `-q` back to the binary, which owns the admin code ([`Handled`]).
//!
//! Everything it touches outside the file system comes in through [`SendmailIo`] (standard
//! streams, the caller's uid and name, the configuration loader), so tests run it without
//! touching the real process. On failure it prints exactly one line, `sendmail: fatal: ...`,
//! and returns a sysexits code (see [`envelope::sysexits`]).

pub mod args;
mod input;
pub(crate) mod smtp; // pub(crate): `crate::fuzzing` drives a session

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use config::Config;
use envelope::QueueId;

use crate::maildrop::MaildropFile;
use crate::submission::{submit, Submission, SubmitError, SubmitSettings};
pub use args::{parse_args, FlushScope, Invocation, Mode, SubmitOptions, UsageError};
use envelope::sysexits::{EX_CONFIG, EX_OK, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};

/// Loads the configuration; `Some(path)` is `-C path`. The binary passes
/// `|path| Config::load(path).map_err(|e| e.to_string())`.
pub type ConfigLoader = Box<dyn Fn(Option<&Path>) -> Result<Config, String>>;

/// The world as sendmail sees it.
pub struct SendmailIo {
    pub stdin: Box<dyn BufRead>,
    pub stdout: Box<dyn Write>,
    pub stderr: Box<dyn Write>,
    /// Real uid of the caller and its login name (`uid<N>` without a passwd entry).
    pub uid: u32,
    pub username: String,
    /// `$NAME`: the full name when `-F` is not given.
    pub name_env: Option<String>,
    pub load_config: ConfigLoader,
    /// True in the real binary: when `submit_timeout` expires the watchdog prints one line
    /// and exits the process with 75, whatever the main thread is stuck in. False in tests:
    /// the submission fails with 75 instead.
    pub exit_on_timeout: bool,
}

impl SendmailIo {
    /// The real process: its standard streams, real uid, `$NAME`.
    pub fn from_process(load_config: ConfigLoader) -> SendmailIo {
        let (uid, username) = crate::users::real_user();
        SendmailIo {
            stdin: Box::new(std::io::stdin().lock()),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
            uid,
            username,
            name_env: std::env::var("NAME").ok(),
            load_config,
            exit_on_timeout: true,
        }
    }

    fn fatal(&mut self, code: u8, reason: impl std::fmt::Display) -> Handled {
        let _ = writeln!(self.stderr, "sendmail: fatal: {reason}");
        let _ = self.stderr.flush();
        Handled::Exit(code)
    }
}

/// What the binary does after [`run_sendmail`].
#[derive(Debug)]
pub enum Handled {
    /// Everything is done: exit with this code.
    Exit(u8),
    /// `-bp`: print the queue as `mailq` does, with this configuration, and exit with its code.
    ListQueue(Config),
    /// `-q...`: ask the daemon to flush, as `postqueue -f` / `-s site` / `-i id` does.
    Flush(Config, FlushScope),
}

/// Runs sendmail with `args` (the arguments after the program name).
pub fn run_sendmail(args: &[OsString], io: &mut SendmailIo) -> Handled {
    let invocation = match parse_args(args) {
        Ok(invocation) => invocation,
        Err(UsageError::BadOption(complaint)) => {
            // Postfix: getopt's line, then its usage line; exit 75 like all of its fatal
            // errors (sendmail.c installs a cleanup handler that exits EX_TEMPFAIL).
            let _ = writeln!(io.stderr, "sendmail: {complaint}");
            return io.fatal(EX_TEMPFAIL, "usage: sendmail [options]");
        }
        Err(e) => return io.fatal(EX_USAGE, e),
    };
    let cfg = match (io.load_config)(invocation.config_path.as_deref()) {
        Ok(cfg) => cfg,
        Err(e) => return io.fatal(EX_CONFIG, e),
    };
    match invocation.mode {
        Mode::Submit => {
            submit_from_stdin(&SubmitSettings::from_config(&cfg), &invocation.submit, io)
        }
        Mode::SmtpOnStdio => smtp::serve(&SubmitSettings::from_config(&cfg), io),
        Mode::NewAliases | Mode::HostStatus => Handled::Exit(EX_OK),
        Mode::ListQueue => Handled::ListQueue(cfg),
        Mode::Flush(scope) => Handled::Flush(cfg, scope),
    }
}

fn submit_from_stdin(
    settings: &SubmitSettings,
    options: &SubmitOptions,
    io: &mut SendmailIo,
) -> Handled {
    let limit = settings.message_limit;
    let message = match input::read_message(&mut io.stdin, options.ignore_dots, limit) {
        Ok(message) => message,
        Err(input::InputError::TooBig) => {
            let reason = format!(
                "message file too big (message_size_limit {limit} bytes); message not queued"
            );
            return io.fatal(EX_UNAVAILABLE, reason);
        }
        Err(input::InputError::Io(e)) => {
            let reason = format!("cannot read standard input: {e}; message not queued");
            return io.fatal(EX_TEMPFAIL, reason);
        }
    };
    let (mut recipients, message) = match options.extract_recipients {
        true => input::extract_recipients(&message),
        false => (Vec::new(), message),
    };
    // Postfix 2.1 and later: with -t, command-line recipients are added, not subtracted.
    recipients.extend(options.recipients.iter().cloned());
    if recipients.is_empty() {
        let reason = match options.extract_recipients {
            true => "No recipient addresses found in message header",
            false => "no recipients specified",
        };
        return io.fatal(EX_USAGE, reason);
    }
    let drop = MaildropFile {
        id: QueueId::generate(),
        arrival_time: now(),
        uid: io.uid,
        username: io.username.clone(),
        fullname: full_name(options.fullname.as_deref().or(io.name_env.as_deref())),
        sender: options
            .sender
            .clone()
            .unwrap_or_else(|| io.username.clone()),
        recipients,
        dsn: options.dsn.clone(),
        message,
    };
    match submit(&submission(settings, io), &drop) {
        Ok(_) => Handled::Exit(EX_OK),
        Err(e) => report(io, e),
    }
}

fn submission(settings: &SubmitSettings, io: &SendmailIo) -> Submission<'static> {
    Submission {
        settings: settings.clone(),
        program: "sendmail",
        exit_on_timeout: io.exit_on_timeout,
        use_helper: true,
        create_layout: true,
    }
}

fn report(io: &mut SendmailIo, error: SubmitError) -> Handled {
    if io.exit_on_timeout && matches!(error, SubmitError::TimedOut(_)) {
        // The watchdog has printed the line and is exiting the process.
        return Handled::Exit(EX_TEMPFAIL);
    }
    io.fatal(error.exit_code(), error)
}

/// A full name fit for one header line: control characters become spaces.
fn full_name(raw: Option<&str>) -> Option<String> {
    let cleaned: String = raw?
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cleaned = cleaned.trim();
    (!cleaned.is_empty()).then(|| cleaned.to_string())
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
