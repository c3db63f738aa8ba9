//! `mailroom-sendmail`: the same `sendmail` as `mailroom sendmail`, as a small binary of its
//! own. Cron jobs and scripts start one process per message, and most of that cost is loading
//! the program: this one carries only the submission code, not the daemon, the SMTP server
//! and the TLS stack. Install it (or symlink it) as `sendmail`. `-bp` and `-q` are handed to
//! the `mailroom` binary next to it, which owns the queue listing and the control socket.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::os::unix::process::CommandExt;

use config::Config;
use submit::sendmail::{Handled, SendmailIo};

fn main() {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let loader =
        Box::new(|path: Option<&std::path::Path>| Config::load(path).map_err(|e| e.to_string()));
    let mut io = SendmailIo::from_process(loader);
    let code = match submit::run_sendmail(&args, &mut io) {
        Handled::Exit(code) => code,
        Handled::ListQueue(_) | Handled::Flush(..) => hand_over(&args),
    };
    std::process::exit(i32::from(code));
}

/// Re-runs the same command line as `mailroom`'s `sendmail` (argv[0] dispatch), which lists
/// the queue or asks the daemon to flush. Returns only if that program cannot be started.
fn hand_over(args: &[OsString]) -> u8 {
    let mailroom = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("mailroom")))
        .filter(|path| path.exists())
        .unwrap_or_else(|| "mailroom".into());
    let err = std::process::Command::new(&mailroom)
        .arg0("sendmail")
        .args(args)
        .exec();
    eprintln!("sendmail: fatal: cannot run {}: {err}", mailroom.display());
    envelope::sysexits::EX_UNAVAILABLE
}
