//! The control socket `<queue_directory>/control.sock`: how `postqueue -f`, `sendmail -q` and
//! `newaliases` reach the running daemon. One line in (`flush`, `reload`, `ping`), one line
//! out (`ok ...` or `error ...`).
//!
//! Security stance: the socket is created mode 0600 by the queue owner; only that user (and
//! root) can ask for a flush or a reload. Beside it, `showq.sock` (mode 0666, like Postfix's
//! `public/showq`) lets any local user list the queue (`mailq`, `qshape`) and do nothing else.

use crate::cli::{EX_TEMPFAIL, EX_UNAVAILABLE};
use config::Config;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

pub fn socket_path(cfg: &Config) -> PathBuf {
    cfg.queue_directory.join("control.sock")
}

/// The public, list-only socket (see `serve/control_server.rs`).
pub fn public_socket_path(cfg: &Config) -> PathBuf {
    cfg.queue_directory.join("showq.sock")
}

/// Sends one command and returns the daemon's one-line answer.
pub fn request(cfg: &Config, command: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket_path(cfg))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\n").as_bytes())?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    Ok(line.trim_end().to_string())
}

/// `postqueue -f|-s site|-i id` / `sendmail -q|-qRsite|-qIid`: ask the daemon to retry
/// deferred mail now; `command` is `flush`, `flush-site SITE` or `flush-id ID`.
pub fn flush(cfg: &Config, program: &str, command: &str) -> u8 {
    match request(cfg, command) {
        Ok(answer) if answer.starts_with("ok") => 0,
        Ok(answer) => {
            eprintln!("{program}: fatal: the daemon refused the flush: {answer}");
            EX_TEMPFAIL
        }
        Err(_) => {
            // Postfix's wording, so scripts that grep for it keep working.
            eprintln!("{program}: fatal: Cannot flush mail queue - mail system is down");
            EX_UNAVAILABLE
        }
    }
}
