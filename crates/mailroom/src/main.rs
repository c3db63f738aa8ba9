//! The one mailroom binary: `mailroom <subcommand>`, or called through a symlink named
//! `sendmail`, `mailq`, `postqueue`, `postsuper`, `postcat`, `qshape` or `newaliases` so it
//! is a drop-in for scripts and cron.
//! Glue only: every subcommand is a thin call into the crate that owns the job.

mod admin_cmd;
mod admin_health;
mod admin_super;
mod cli;
mod control;
mod mailq;
mod passwd_cmd;
mod serve;

use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let code = match name.as_str() {
        "sendmail" => cli::sendmail(args[1..].to_vec()),
        "mailq" => cli::mailq_alias(args[1..].to_vec()),
        "postqueue" => cli::postqueue(args[1..].to_vec()),
        "newaliases" => cli::newaliases(None),
        "postsuper" => admin_super::run(None, args[1..].to_vec()),
        "postcat" => admin_cmd::postcat(None, args[1..].to_vec()),
        "qshape" => admin_cmd::qshape(None, args[1..].to_vec()),
        _ => cli::mailroom(args),
    };
    ExitCode::from(code)
}
