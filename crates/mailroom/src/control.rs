//! The control socket `<queue_directory>/control.sock`: how `postqueue -f`, `sendmail -q` and
//! `newaliases` reach the running daemon. One line in (`flush`, `reload`, `ping`), one line
//! out (`ok ...` or `error ...`).
//!
//! Security stance: the socket is created mode 0600 by the queue owner; only that user (and
//! root) can ask for a flush or a reload. Beside it, `showq.sock` (mode 0666, like Postfix's
//! `public/showq`) lets any local user list the queue (`mailq`, `qshape`) and do nothing else.

use admin::protocol::{self, Command, Reply};
use config::Config;
use envelope::sysexits::{EX_NOPERM, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE};
use std::path::PathBuf;
use submit::sendmail::FlushScope;

pub fn socket_path(cfg: &Config) -> PathBuf {
    protocol::socket_path(&cfg.queue_directory)
}

/// The public, list-only socket (see `serve/control_server.rs`).
pub fn public_socket_path(cfg: &Config) -> PathBuf {
    protocol::public_socket_path(&cfg.queue_directory)
}

/// Sends one command and returns the daemon's one-line answer.
pub fn request(cfg: &Config, command: &Command) -> std::io::Result<Reply> {
    protocol::send(&socket_path(cfg), command)
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
    match request(cfg, &command) {
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
