//! `mailroom start` (Postfix's `postfix start`): runs `mailroom serve` detached — a new
//! session, no terminal, standard input and output on /dev/null — and returns once the
//! daemon is ready, or with its error and exit code when it did not start.
//!
//! Ready means what it means to systemd: the daemon sends `READY=1` over the sd_notify
//! protocol once its listeners and control sockets are bound. `start` plays systemd's part
//! with a private datagram socket under `pid/`, so both ways of starting share one
//! readiness path. The daemon's standard error comes back through a pipe until then (a
//! fatal configuration error is printed here, as `postfix start` would); before `READY=1`
//! the daemon points its standard error at /dev/null (`MAILROOM_DETACHED`), so a write to
//! it can never fail on a closed pipe.

use crate::edge::load_config;
use admin::pidfile;
use config::Config;
use envelope::sysexits::{EX_SOFTWARE, EX_TEMPFAIL};
use std::io::Read;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The environment variable that tells `serve` it was detached by `start`.
pub const DETACHED_ENV: &str = "MAILROOM_DETACHED";

/// How long a start may take: opening a large queue store replays its index.
const START_WAIT: Duration = Duration::from_secs(300);
/// How long to wait for the last of the daemon's standard error once it is ready or gone.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// Start the mail system in the background (Postfix: postfix start).
#[derive(clap::Args)]
pub struct Args {}

pub fn run(config_path: Option<&Path>, _: Args) -> u8 {
    let cfg = match load_config(config_path, "mailroom") {
        Ok(cfg) => cfg,
        Err(code) => return code,
    };
    if let Ok(Some(pid)) = pidfile::running(&cfg.queue_directory) {
        eprintln!("mailroom: fatal: the mail system is already running, pid {pid}");
        return 1;
    }
    if cfg.maillog_file.is_empty() && cfg.syslog_socket.is_empty() {
        eprintln!("mailroom: warning: maillog_file and syslog_socket are empty: the detached daemon's log is discarded");
    }
    eprintln!("mailroom: starting the mail system");
    let (socket, socket_path) = match ready_socket(&cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("mailroom: fatal: {e}");
            return EX_TEMPFAIL;
        }
    };
    let code = match spawn(config_path, &socket_path) {
        Ok(child) => wait_ready(child, &socket),
        Err(e) => {
            eprintln!("mailroom: fatal: cannot run mailroom serve: {e}");
            EX_SOFTWARE
        }
    };
    let _ = std::fs::remove_file(&socket_path);
    code
}

/// Started by root, the daemon sends READY=1 after it has become `mail_owner` (privilege
/// separation), so the socket must be writable by `mail_owner`, and by nobody else.
fn give_to_mail_owner(path: &Path, cfg: &Config) -> Result<(), String> {
    if sys::effective_uid() != 0 {
        return Ok(());
    }
    match sys::user_by_name(&cfg.mail_owner) {
        Ok(Some(owner)) if owner.uid != 0 => std::os::unix::fs::lchown(path, Some(owner.uid), None)
            .map_err(|e| format!("cannot give {} to mail_owner: {e}", path.display())),
        // No such user: serve refuses to start and says so.
        _ => Ok(()),
    }
}

/// `pid/start.PID.sock`: where the daemon's `READY=1` arrives.
fn ready_socket(cfg: &Config) -> Result<(UnixDatagram, PathBuf), String> {
    let dir = pidfile::pid_directory(&cfg.queue_directory);
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let path = dir.join(format!("start.{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let socket =
        UnixDatagram::bind(&path).map_err(|e| format!("cannot bind {}: {e}", path.display()))?;
    give_to_mail_owner(&path, cfg)?;
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .map_err(|e| e.to_string())?;
    Ok((socket, path))
}

fn spawn(config_path: Option<&Path>, notify: &Path) -> std::io::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    if let Some(path) = config_path {
        command.arg("-c").arg(path);
    }
    command
        .arg("serve")
        .env("NOTIFY_SOCKET", notify)
        .env(DETACHED_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // A session leader without a controlling terminal: closing the terminal sends it no
    // SIGHUP (which would be a reload).
    sys::new_session_on_exec(&mut command);
    command.spawn()
}

/// Waits for `READY=1` or the child's exit; prints what the child wrote on standard error.
fn wait_ready(mut child: Child, socket: &UnixDatagram) -> u8 {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let (drained_tx, drained) = mpsc::channel::<()>();
    if let Some(mut stderr) = child.stderr.take() {
        let errors = errors.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                errors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend_from_slice(&buf[..n]);
            }
            let _ = drained_tx.send(());
        });
    }
    // The daemon lets go of the pipe before READY=1 or by exiting: then the pipe ends.
    let print = || {
        let _ = drained.recv_timeout(DRAIN_WAIT);
        print_errors(&errors);
    };
    let deadline = Instant::now() + START_WAIT;
    let mut buf = [0u8; 1024];
    loop {
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            if text.lines().any(|l| l == "READY=1") {
                print();
                return 0;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            print();
            return status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(1)
                .max(1);
        }
        if Instant::now() >= deadline {
            print_errors(&errors);
            eprintln!(
                "mailroom: fatal: the mail system (pid {}) is not ready after {} s",
                child.id(),
                START_WAIT.as_secs()
            );
            return EX_TEMPFAIL;
        }
    }
}

fn print_errors(errors: &Mutex<Vec<u8>>) {
    let errors = errors.lock().unwrap_or_else(|p| p.into_inner());
    if !errors.is_empty() {
        eprint!("{}", String::from_utf8_lossy(&errors));
    }
}

/// Points standard error at /dev/null (the daemon, detached by `start`, before READY=1):
/// the pipe `start` read it from is closed once `start` exits, and a write to a closed
/// pipe would fail.
pub fn release_standard_error() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // Nothing to report to if this fails: standard error is what would have said it.
    let _ = sys::redirect_standard_error(&null);
}
