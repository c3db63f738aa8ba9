//! `mailroom postqueue` and `postqueue`: Postfix's flags `-p` (list), `-j` (JSON), `-f`
//! (flush deferred mail now), `-s SITE`, `-i ID`; `-C FILE` (or Postfix's `-c`) names the
//! configuration. `-S DEST` / `-U DEST` suspend and resume deliveries to a destination
//! (mailroom's, after OpenSMTPD's pause; Postfix has none). The flush is also `sendmail -q`'s: both ask the daemon over the control
//! socket, with Postfix's messages and exit codes.

use crate::commands::{mailq, suspend};
use crate::daemon;
use crate::edge::load_config;
use admin::protocol::{Command, Reply};
use config::Config;
use envelope::sysexits::{EX_NOPERM, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use submit::sendmail::FlushScope;

/// Postfix's postqueue: -p (list), -j (JSON), -f (flush deferred mail now), -s SITE, -i ID;
/// -S DEST / -U DEST suspend / resume deliveries to a destination.
#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// What `postqueue` was asked to do.
enum Action {
    List { json: bool },
    Flush(FlushScope),
    Suspend(String),
    Resume(String),
}

const USAGE: &str =
    "postqueue: fatal: usage: postqueue -p | -j | -f | -s site | -i queue_id | -S destination | -U destination [-C config]";

pub fn run(config: Option<&Path>, args: Args) -> u8 {
    run_as_postqueue(config, args.args)
}

/// Postfix's postqueue flags: `-c DIR` is Postfix's config directory; ours is `-C FILE`.
pub fn run_as_postqueue(path: Option<&Path>, args: Vec<OsString>) -> u8 {
    let Some((config, action)) = parse(path, args) else {
        eprintln!("{USAGE}");
        return EX_USAGE;
    };
    match load_config(config.as_deref(), "postqueue") {
        Ok(cfg) => match action {
            Action::List { json } => mailq::list(&cfg, json),
            Action::Flush(scope) => flush(&cfg, "postqueue", &scope),
            Action::Suspend(dest) => {
                suspend::suspend_destination(&cfg, "postqueue", &dest, None, "", false)
            }
            Action::Resume(dest) => suspend::resume_destination(&cfg, "postqueue", &dest, false),
        },
        Err(code) => code,
    }
}

/// The configuration file and the action, or `None` for a usage error.
fn parse(path: Option<&Path>, args: Vec<OsString>) -> Option<(Option<PathBuf>, Action)> {
    let mut config = path.map(Path::to_path_buf);
    let mut action = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let next = |it: &mut std::vec::IntoIter<OsString>| {
            it.next().map(|v| v.to_string_lossy().into_owned())
        };
        action = match a.to_str() {
            Some("-p") => Some(Action::List { json: false }),
            Some("-j") => Some(Action::List { json: true }),
            Some("-f") => Some(Action::Flush(FlushScope::All)),
            Some("-s") => next(&mut it).map(|site| Action::Flush(FlushScope::Site(site))),
            Some("-i") => next(&mut it).map(|id| Action::Flush(FlushScope::QueueId(id))),
            Some("-S") => next(&mut it).map(Action::Suspend),
            Some("-U") => next(&mut it).map(Action::Resume),
            Some("-C") | Some("-c") => {
                config = it.next().map(PathBuf::from);
                action
            }
            Some("-v") => action,
            _ => None,
        };
        action.as_ref()?;
    }
    Some((config, action?))
}

/// `postqueue -f|-s site|-i id` / `sendmail -q|-qRsite|-qIid`: ask the daemon to retry
/// deferred mail now. Exit codes as Postfix's postqueue: 64 for a malformed queue ID
/// (`Invalid request`), 77 for a user who may not reach the control socket, 69 when the
/// daemon is down. A well-formed ID that is not deferred is no error (Postfix exits 0 too).
pub fn flush(cfg: &Config, program: &str, scope: &FlushScope) -> u8 {
    let command = match scope {
        FlushScope::All => Command::Flush,
        FlushScope::Site(site) => Command::FlushSite(site.clone()),
        FlushScope::QueueId(id) => match envelope::QueueId::parse(id) {
            Ok(id) => Command::FlushId(id),
            Err(_) => {
                eprintln!("{program}: fatal: Invalid request: \"{id}\"");
                return EX_USAGE;
            }
        },
    };
    match daemon::send(cfg, &command) {
        Ok(Reply::Ok(_)) => 0,
        Ok(answer) => {
            eprintln!("{program}: fatal: the daemon refused the flush: {answer}");
            EX_TEMPFAIL
        }
        // The control socket is the queue owner's (0600): anyone else is refused by the
        // kernel, which is not the daemon being down.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let (uid, name) = submit::users::real_user();
            eprintln!(
                "{program}: fatal: User {name}({uid}) is not allowed to flush the mail queue"
            );
            EX_NOPERM
        }
        Err(_) => {
            // Postfix's wording, so scripts that grep for it keep working.
            eprintln!("{program}: fatal: Cannot flush mail queue - mail system is down");
            EX_UNAVAILABLE
        }
    }
}
