//! `mailroom import-postfix`: take over from a Postfix on the same host — its settings and
//! its queue — without losing or duplicating mail.
//!
//! # Job, inputs → outputs
//! * [`settings`]: `main.cf` (or `postconf -n` output) and `master.cf` → the mailroom
//!   parameters with the same meaning, each value checked by mailroom's own loader, merged
//!   into a mailroom.toml (values already there win), plus every parameter left out and why.
//! * [`queue_file`]: one Postfix queue file (the records `postcat` shows) → envelope,
//!   recipients still to deliver, content.
//! * [`postfix_queue`]: Postfix's `incoming`, `active`, `deferred` and `hold` → the mailroom
//!   store, file by file: durable copy first, then the Postfix file removed.
//! * [`postfix_running`]: whether a Postfix master still owns that queue.
//!
//! # Invariants
//! * Nothing is imported while Postfix runs: its queue manager would deliver the same files.
//! * A recipient Postfix marked done is never imported; one it had not is never dropped.
//! * A Postfix file is removed only after its copy is fsynced in the store; a re-run after a
//!   crash finds the copy by its derived queue ID and does not queue it twice.
//! * A file that cannot be used stays where it is and is named; the rest are imported.
//! * `--dry-run` writes nothing anywhere: it reads the store through a lock-free snapshot.
//!
//! # Security stance
//! Runs as root (it reads Postfix's private queue and writes the mailroom store). Queue
//! files are parsed as untrusted data: bounded, never followed as paths, never panicking;
//! symbolic links in the Postfix queue are not followed.

pub mod fuzzing;
pub mod master_cf;
pub mod postfix_queue;
pub mod queue_file;
pub mod settings;

use std::fs;
use std::io;
use std::path::Path;

/// `Some("Postfix is running (master pid N)")` when Postfix still works on this queue:
/// its `pid/master.pid` is locked (the master keeps an exclusive `flock` on it) or names a
/// live `master`, or some process still has the queue directory as its working directory
/// (every Postfix daemon `chdir`s there; a `qmgr` finishing after the master left could
/// still mark recipients done).
pub fn postfix_running(postfix_queue: &Path) -> io::Result<Option<String>> {
    let path = postfix_queue.join("pid").join("master.pid");
    let file = match fs::File::open(&path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let pid = fs::read_to_string(&path).unwrap_or_default();
    let pid = pid.trim();
    let locked = match file.map(|f| f.try_lock()) {
        None | Some(Ok(())) => false,
        Some(Err(fs::TryLockError::WouldBlock)) => true,
        Some(Err(fs::TryLockError::Error(e))) => return Err(e),
    };
    let master_alive = pid
        .parse::<u32>()
        .is_ok_and(|pid| live_command(pid).as_deref() == Some("master"));
    if locked || master_alive {
        return Ok(Some(match pid {
            "" => "Postfix is running".to_string(),
            pid => format!("Postfix is running (master pid {pid})"),
        }));
    }
    Ok(process_in(postfix_queue).map(|(pid, command)| {
        format!(
            "Postfix's {command} (pid {pid}) is still running in {}",
            postfix_queue.display()
        )
    }))
}

/// The command name of a live (not zombie) process.
fn live_command(pid: u32) -> Option<String> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ...`; comm may hold spaces and parentheses: split at the last `)`.
    let (head, tail) = stat.rsplit_once(')')?;
    let command = head.split_once('(')?.1.to_string();
    let state = tail.split_whitespace().next()?;
    (!matches!(state, "Z" | "X")).then_some(command)
}

/// Postfix's daemons, by command name (as `/proc` shows it, at most 15 characters).
const POSTFIX_DAEMONS: &[&str] = &[
    "anvil",
    "bounce",
    "cleanup",
    "discard",
    "dnsblog",
    "error",
    "flush",
    "lmtp",
    "local",
    "master",
    "oqmgr",
    "pickup",
    "pipe",
    "postlogd",
    "postscreen",
    "proxymap",
    "qmgr",
    "qmqpd",
    "scache",
    "showq",
    "smtp",
    "smtpd",
    "spawn",
    "tlsmgr",
    "tlsproxy",
    "trivial-rewrite",
    "verify",
    "virtual",
];

/// A live Postfix daemon whose working directory is the queue directory (an operator's
/// shell sitting there is not one: its program is not in Postfix's daemon directory).
fn process_in(postfix_queue: &Path) -> Option<(u32, String)> {
    let queue = fs::canonicalize(postfix_queue).ok()?;
    let me = std::process::id();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        if pid == me || fs::read_link(entry.path().join("cwd")).ok()? != queue {
            return None;
        }
        let command = live_command(pid)?;
        let program = fs::read_link(entry.path().join("exe")).unwrap_or_default();
        let postfix = program.to_string_lossy().contains("/postfix/")
            || POSTFIX_DAEMONS.contains(&command.as_str());
        postfix.then_some((pid, command))
    })
}
