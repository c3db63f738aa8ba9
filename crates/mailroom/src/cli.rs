//! `mailroom <subcommand>`: the clap command line. Each subcommand's flags and `--help` live
//! in its own file under `commands/`; this file only lists them and hands each its `Args`.

use crate::commands::{
    check, config, dkim, doctor, fleet, import_postfix, install, mailbox, mailq, man, newaliases,
    passwd, postcat, postmap, postqueue, postsuper, qshape, sendmail, serve,
    service::{self, Service},
    start, suspend,
};
use clap::{CommandFactory, Parser, Subcommand};
use envelope::sysexits::EX_USAGE;
use std::ffi::OsString;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "mailroom",
    version,
    about = "A mail transfer agent with a queue you can trust"
)]
struct Cli {
    /// Configuration file (else $MAILROOM_CONFIG, else /etc/mailroom/mailroom.toml, else
    /// the embedded default under $MAILROOM_DATA or ~/.local/share/mailroom).
    #[arg(short = 'c', long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Serve(serve::Args),
    Sendmail(sendmail::Args),
    Mailq(mailq::Args),
    Postqueue(postqueue::Args),
    Config(config::Args),
    Newaliases(newaliases::Args),
    Passwd(passwd::Args),
    Dkim(dkim::Args),
    Postsuper(postsuper::Args),
    Postcat(postcat::Args),
    Postmap(postmap::Args),
    Qshape(qshape::Args),
    Check(check::Args),
    Doctor(doctor::Args),
    Mailbox(mailbox::Args),
    Start(start::Args),
    Install(install::Args),
    Uninstall(install::UninstallArgs),
    /// Stop the mail system cleanly: finish work in flight, then exit (Postfix: postfix stop).
    Stop,
    /// Stop the mail system at once; unfinished deliveries are retried at the next start.
    Abort,
    /// Say whether the mail system is running; exit 0 if it is, 1 if not.
    Status,
    /// Re-read configuration, aliases, listeners and TLS certificates (SIGHUP).
    Reload,
    /// Deliver deferred mail now (postqueue -f).
    Flush,
    /// Reopen maillog_file after it was rotated (SIGUSR1).
    Logrotate,
    Suspend(suspend::Args),
    Fleet(fleet::Args),
    Resume(suspend::ResumeArgs),
    Man(man::Args),
    ImportPostfix(import_postfix::Args),
    #[command(hide = true)]
    LocalHelper(serve::local_helper::Args),
}

/// `mailroom ARGS`; a usage error exits 64 (`--help` and `--version` exit 0).
pub fn run(args: Vec<OsString>) -> u8 {
    if let Some(args) = sendmail::split_from_mailroom(&args) {
        return sendmail::run_as_sendmail(args);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EX_USAGE } else { 0 };
        }
    };
    let path = cli.config.as_deref();
    match cli.command {
        Command::Serve(a) => serve::run(path, a),
        Command::Sendmail(a) => sendmail::run(path, a),
        Command::Mailq(a) => mailq::run(path, a),
        Command::Postqueue(a) => postqueue::run(path, a),
        Command::Config(a) => config::run(path, a),
        Command::Newaliases(a) => newaliases::run(path, a),
        Command::Passwd(a) => passwd::run(path, a),
        Command::Dkim(a) => dkim::run(path, a),
        Command::Postsuper(a) => postsuper::run(path, a),
        Command::Postcat(a) => postcat::run(path, a),
        Command::Postmap(a) => postmap::run(a),
        Command::Qshape(a) => qshape::run(path, a),
        Command::Check(a) => check::run(path, a),
        Command::Doctor(a) => doctor::run(path, a),
        Command::Mailbox(a) => mailbox::run(path, a),
        Command::Start(a) => start::run(path, a),
        Command::Install(a) => install::run(path, a),
        Command::Uninstall(a) => install::run_uninstall(path, a),
        Command::Stop => service::run(path, Service::Stop),
        Command::Abort => service::run(path, Service::Abort),
        Command::Status => service::run(path, Service::Status),
        Command::Reload => service::run(path, Service::Reload),
        Command::Flush => service::run(path, Service::Flush),
        Command::Logrotate => service::run(path, Service::Logrotate),
        Command::Suspend(a) => suspend::run(path, a),
        Command::Fleet(a) => fleet::run(path, a),
        Command::Resume(a) => suspend::run_resume(path, a),
        Command::Man(a) => man::run(Cli::command(), a),
        Command::ImportPostfix(a) => import_postfix::run(path, a),
        Command::LocalHelper(a) => serve::local_helper::run(path, a),
    }
}
