//! `mailroom stop | status | reload | abort | flush | logrotate`: Postfix's `postfix`
//! command, minus `start` (see `start.rs`). Each finds the running daemon through its locked
//! pid file (`admin::pidfile`) and signals it:
//!
//! | command     | signal  | the daemon                                              |
//! |-------------|---------|---------------------------------------------------------|
//! | `stop`      | SIGTERM | stops taking work, finishes what is in flight, exits    |
//! | `abort`     | SIGQUIT | exits at once; deliveries in flight are retried later   |
//! | `reload`    | SIGHUP  | re-reads configuration, aliases, listeners, TLS         |
//! | `logrotate` | SIGUSR1 | reopens `maillog_file`                                  |
//!
//! `stop` and `abort` wait until the lock is released, so a `start` right after works.
//! Messages are Postfix's (`postfix/postfix-script: ...`), with `mailroom:` before them,
//! on standard error; "not running" exits 1, as `postfix stop`/`status` do.

use crate::commands::{postqueue, start};
use crate::edge::{load_config, strings, take_config, usage};
use admin::pidfile;
use config::Config;
use envelope::sysexits::EX_NOPERM;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;
use submit::sendmail::FlushScope;
use sys::Signal;

/// How long `stop` waits for the daemon to exit: its own grace for deliveries in flight
/// (30 s) plus that of the SMTP sessions finishing a message, plus a margin.
const STOP_WAIT: Duration = Duration::from_secs(75);
/// `abort` does not wait for work in flight; exiting takes a moment only.
const ABORT_WAIT: Duration = Duration::from_secs(15);

/// The service commands that only talk to a running daemon.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Stop,
    Status,
    Reload,
    Abort,
    Flush,
    Logrotate,
}

impl Service {
    /// The `postfix` command word (argv[0] `postfix`).
    pub fn from_word(word: &str) -> Option<Service> {
        Some(match word {
            "stop" => Service::Stop,
            "status" => Service::Status,
            "reload" => Service::Reload,
            "abort" => Service::Abort,
            "flush" => Service::Flush,
            "logrotate" => Service::Logrotate,
            _ => return None,
        })
    }
}

/// argv[0] `postfix`: `postfix [-c FILE] start|stop|abort|status|reload|flush|logrotate`,
/// so scripts and habits that call `postfix reload` keep working.
pub fn run_as_postfix(args: Vec<OsString>) -> u8 {
    let mut args = strings(args);
    let config = take_config(&mut args, None);
    let path = config.as_deref();
    match args.as_slice() {
        [word] if word == "start" => start::run(path, start::Args {}),
        [word] => match Service::from_word(word) {
            Some(service) => run(path, service),
            None => usage("postfix", POSTFIX_USAGE),
        },
        _ => usage("postfix", POSTFIX_USAGE),
    }
}

const POSTFIX_USAGE: &str =
    "postfix [-c config_file] start | stop | abort | status | reload | flush | logrotate";

pub fn run(config_path: Option<&Path>, service: Service) -> u8 {
    let cfg = match load_config(config_path, "mailroom") {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    let pid = match pidfile::running(&cfg.queue_directory) {
        Ok(Some(pid)) => pid,
        Ok(None) => return not_running(service),
        Err(e) => {
            let path = pidfile::pid_path(&cfg.queue_directory);
            eprintln!("mailroom: fatal: cannot read {}: {e}", path.display());
            return EX_NOPERM;
        }
    };
    match service {
        Service::Status => {
            eprintln!("mailroom: the mail system is running: PID: {pid}");
            0
        }
        Service::Stop => {
            eprintln!("mailroom: stopping the mail system");
            signal_and_wait(&cfg, pid, Signal::SIGTERM, STOP_WAIT)
        }
        Service::Abort => {
            eprintln!("mailroom: aborting the mail system");
            signal_and_wait(&cfg, pid, Signal::SIGQUIT, ABORT_WAIT)
        }
        Service::Reload => {
            eprintln!("mailroom: refreshing the mail system");
            signal(pid, Signal::SIGHUP)
        }
        Service::Logrotate => signal(pid, Signal::SIGUSR1),
        Service::Flush => postqueue::flush(&cfg, "mailroom", &FlushScope::All),
    }
}

/// Postfix: `the Postfix mail system is not running`, exit 1 (status is not an error, so
/// no `fatal:`).
fn not_running(service: Service) -> u8 {
    match service {
        Service::Status => eprintln!("mailroom: the mail system is not running"),
        _ => eprintln!("mailroom: fatal: the mail system is not running"),
    }
    1
}

fn signal(pid: u32, signal: Signal) -> u8 {
    if let Err(e) = sys::kill(pid, signal) {
        eprintln!("mailroom: fatal: cannot signal the mail system (pid {pid}): {e}");
        return match e.kind() {
            std::io::ErrorKind::PermissionDenied => EX_NOPERM,
            _ => 1,
        };
    }
    0
}

fn signal_and_wait(cfg: &Config, pid: u32, sig: Signal, wait: Duration) -> u8 {
    let code = signal(pid, sig);
    if code != 0 {
        return code;
    }
    if pidfile::wait_released(&cfg.queue_directory, wait) {
        return 0;
    }
    eprintln!(
        "mailroom: fatal: the mail system (pid {pid}) is still running after {} s",
        wait.as_secs()
    );
    1
}
