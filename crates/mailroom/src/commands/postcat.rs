//! `mailroom postcat` and `postcat`: one message as Postfix's postcat prints it, by queue ID
//! (`-q`, from the queue or from `maildrop/`) or a file named on the command line; `-e`
//! envelope, `-h` header, `-b` body, `-v` our extra envelope facts. A message that is not
//! there exits 1 with Postfix's words; a failure on the way exits 75.

use crate::daemon::execute;
use crate::edge::{load_config, strings, take_config, usage};
use admin::protocol::{Event, Request};
use config::Config;
use envelope::sysexits::EX_TEMPFAIL;
use std::ffi::OsString;
use std::io;
use std::path::Path;

/// Postfix's postcat: -q ID (or a file), -e envelope, -h header, -b body, -v more.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    run_as_postcat(config, args.args)
}

/// `postcat [-e] [-h] [-b] [-v] -q ID...` or `postcat [-ehbv] FILE...`.
pub fn run_as_postcat(config: Option<&Path>, args: Vec<OsString>) -> u8 {
    let mut args = strings(args);
    let config = take_config(&mut args, config);
    let Some((sections, by_id, names)) = parse(args) else {
        return usage("postcat", "postcat [-ehbv] [-q] [-c config] id-or-file ...");
    };
    let cfg = match load_config(config.as_deref(), "postcat") {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut code = 0;
    for name in names {
        let shown = if by_id {
            cat_id(&cfg, &name, sections)
        } else {
            cat_file(&name, sections).map_err(CatError::Failed)
        };
        match shown {
            Ok(()) => {}
            // Postfix's words and exit status: a missing message is not "try again later".
            Err(CatError::Missing) => {
                eprintln!("postcat: fatal: open queue file {name}: No such file or directory");
                return EX_NOT_FOUND;
            }
            Err(CatError::Failed(why)) => {
                eprintln!("postcat: warning: {why}");
                code = EX_TEMPFAIL;
            }
        }
    }
    code
}

/// The sections asked for, whether names are queue IDs (`-q`), and the names; `None` for a
/// usage error (an unknown flag, or no name).
fn parse(args: Vec<String>) -> Option<(admin::postcat::Sections, bool, Vec<String>)> {
    let mut sections = admin::postcat::Sections::default();
    let (mut by_id, mut names) = (false, Vec::new());
    for a in args {
        match a.strip_prefix('-') {
            Some(flags) if !flags.is_empty() => {
                for f in flags.chars() {
                    match f {
                        'e' => sections.envelope = true,
                        'h' => sections.header = true,
                        'b' => sections.body = true,
                        'v' => sections.verbose = true,
                        'q' => by_id = true,
                        'o' | 's' | 'd' | 'r' => {} // offsets, dumps: Postfix record details we do not have
                        _ => return None,
                    }
                }
            }
            _ => names.push(a),
        }
    }
    (!names.is_empty()).then_some((sections, by_id, names))
}

/// postcat's exit status for a message that is not in the queue (Postfix's `msg_fatal`).
const EX_NOT_FOUND: u8 = 1;

enum CatError {
    /// No message with that ID in the queue or in maildrop.
    Missing,
    /// Something failed on the way (the daemon, the store): worth trying again.
    Failed(String),
}

fn cat_id(cfg: &Config, id: &str, sections: admin::postcat::Sections) -> Result<(), CatError> {
    let mut envelope = None;
    let mut body = Vec::new();
    execute(cfg, &Request::Cat { id: id.to_string() }, None, |e| {
        match e {
            Event::Envelope(env) => envelope = Some(*env),
            Event::Body { text, hex } => body = Event::body_bytes(&text, &hex),
            _ => {}
        }
        Ok(())
    })
    .map_err(CatError::Failed)?;
    let env = envelope.ok_or(CatError::Missing)?;
    let mut out = io::stdout().lock();
    admin::postcat::write(&mut out, &env, &body, sections)
        .map_err(|e| CatError::Failed(e.to_string()))
}

/// A file: a maildrop file (envelope and message), else shown as a plain message.
fn cat_file(name: &str, sections: admin::postcat::Sections) -> Result<(), String> {
    let (env, body) = admin::postcat::read_file(name)?;
    let mut out = io::stdout().lock();
    admin::postcat::write(&mut out, &env, &body, sections).map_err(|e| e.to_string())
}
