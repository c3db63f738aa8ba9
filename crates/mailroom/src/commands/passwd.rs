//! `mailroom passwd add|del|list`: manage the SMTP AUTH users in `smtpd_sasl_password_file`.
//!
//! `add NAME` reads the password from standard input: the first line, without its line end
//! (spaces are part of the password). Piped input is read as is; on a terminal it prompts on
//! standard error, twice, with echo turned off. The file is rewritten atomically with mode
//! 0600; a running daemon reads it again on its next AUTH (or reload).
//!
//! Exit status: 0 done; 64 bad usage, user name or empty password; 67 `del` of a user that
//! does not exist; 73 the file cannot be written; 74 it cannot be read; 78 the configuration
//! or the password file itself is wrong (a malformed line, a too-open mode).

use clap::Subcommand;
use config::Config;
use envelope::sysexits::{EX_CANTCREAT, EX_CONFIG, EX_IOERR, EX_NOUSER, EX_SOFTWARE, EX_USAGE};
use security::passwd::{PasswdError, PasswordFile};
use std::io::{BufRead, IsTerminal, Write};

/// Manage SMTP AUTH users (smtpd_sasl_password_file): add NAME (password on stdin), del NAME, list.
#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

/// What to do with the password file.
#[derive(Subcommand)]
enum Action {
    /// Add NAME, or set a new password for them; the password is the first line of stdin.
    Add { name: String },
    /// Remove NAME (exit 67 if there is no such user).
    Del { name: String },
    /// Print the user names, one a line.
    List,
}

pub fn run(config: Option<&std::path::Path>, args: Args) -> u8 {
    crate::edge::with_config(config, |cfg| manage(cfg, args.action))
}

fn manage(cfg: &Config, action: Action) -> u8 {
    let path = cfg.smtpd_sasl_password_file.as_path();
    let result = match action {
        Action::Add { name } => add(path, &name),
        Action::Del { name } => match PasswordFile::delete(path, &name) {
            Ok(true) => Ok(()),
            Ok(false) => {
                eprintln!("mailroom: passwd: no such user: {name}");
                return EX_NOUSER;
            }
            Err(e) => Err(e),
        },
        Action::List => PasswordFile::load(path).map(|file| {
            for user in file.users() {
                println!("{user}");
            }
        }),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mailroom: passwd: {e}");
            exit_code(&e)
        }
    }
}

fn add(path: &std::path::Path, name: &str) -> Result<(), PasswdError> {
    // Check the name before asking for a password the user would then type for nothing.
    security::passwd::check_name(name)?;
    let password = read_password().map_err(|source| PasswdError::Read {
        path: "standard input".into(),
        source,
    })?;
    PasswordFile::add(path, name, &password)
}

fn exit_code(error: &PasswdError) -> u8 {
    match error {
        PasswdError::BadName { .. } | PasswdError::EmptyPassword => EX_USAGE,
        PasswdError::Read { .. } => EX_IOERR,
        PasswdError::Write { .. } => EX_CANTCREAT,
        PasswdError::Malformed { .. } | PasswdError::Permissions { .. } => EX_CONFIG,
        PasswdError::Hash(_) => EX_SOFTWARE,
    }
}

/// The first line of stdin; on a terminal, prompted twice with echo off.
fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return read_line(&mut stdin.lock());
    }
    let first = prompt_without_echo("Password: ")?;
    let second = prompt_without_echo("Retype password: ")?;
    if first != second {
        return Err(std::io::Error::other("the two passwords differ"));
    }
    Ok(first)
}

fn read_line(input: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_string())
}

fn prompt_without_echo(prompt: &str) -> std::io::Result<String> {
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    // Echo comes back when this is dropped, on the error path too.
    let _echo = sys::EchoOff::new()?;
    let line = read_line(&mut std::io::stdin().lock());
    eprintln!();
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_the_first_line_without_its_line_end() {
        let read = |input: &str| read_line(&mut input.as_bytes()).unwrap();
        assert_eq!(read("s3cret word \nsecond line\n"), "s3cret word ");
        assert_eq!(read("dos\r\n"), "dos");
        assert_eq!(read("no newline"), "no newline");
        assert_eq!(read(""), "");
    }
}
