//! The one mailroom binary: `mailroom <subcommand>`, or called through a symlink named
//! `sendmail`, `mailq`, `postqueue`, `postsuper`, `postcat`, `postmap`, `qshape`, `newaliases` or
//! `postfix` (start/stop/status/reload/...) or `postconf` so it is a drop-in for scripts and cron.
//!
//! Glue only; the work is in the library crates (`submit`, `admin`, `sched`, `smtpd`, …).
//! The shape, arrows pointing down:
//! * `main.rs`: argv[0] dispatch, to `cli` or straight to a Postfix-named front end;
//! * `cli.rs`: the clap command line, one variant per subcommand;
//! * `commands/`: one file per subcommand — its clap `Args` (the doc comment is its
//!   `--help`) and `run`; `commands/serve/` is the daemon and its control socket server;
//! * leaves: `edge.rs` (configuration loading, Postfix's `fatal:`/`usage:` lines, `-c`) and
//!   `daemon.rs` (the door to the running daemon). Exit codes are `envelope::sysexits`;
//!   every control request is an `admin::protocol::Command`.
//!
//! Settings per room are built here, at the edge, from the loaded `Config` (again on
//! SIGHUP): `sched::Settings`, `agents::{SmtpSettings, LocalSettings}`,
//! `smtpd::SmtpdSettings`, `submit::pickup::PickupSettings`, `admin::Settings`, each by its
//! `from_config`; no room that handles mail sees the whole `Config` (only admin's install
//! and import-postfix, whose subject is the configuration, take it). sendmail and postdrop,
//! programs of their own, load it themselves and take `submit::submission::SubmitSettings`.

#![forbid(unsafe_code)]

mod cli;
mod commands;
mod daemon;
mod edge;

use commands::{
    config, mailq, newaliases, postcat, postmap, postqueue, postsuper, qshape, sendmail, service,
};
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
    let rest = || args[1..].to_vec();
    let code = match name.as_str() {
        "sendmail" => sendmail::run_as_sendmail(rest()),
        "mailq" => mailq::run_as_mailq(rest()),
        "postqueue" => postqueue::run_as_postqueue(None, rest()),
        "newaliases" => newaliases::run_as_newaliases(None),
        "postsuper" => postsuper::run_as_postsuper(None, rest()),
        "postcat" => postcat::run_as_postcat(None, rest()),
        "postmap" => postmap::run_as_postmap(rest()),
        "qshape" => qshape::run_as_qshape(None, rest()),
        "postfix" => service::run_as_postfix(rest()),
        "postconf" => config::run_as_postconf(rest()),
        _ => cli::run(args),
    };
    ExitCode::from(code)
}
