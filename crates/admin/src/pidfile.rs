//! The daemon's pid file, Postfix's `pid/master.pid` under the queue directory: the running
//! daemon holds an exclusive `flock` on it for its whole life and has written its pid into
//! it. `mailroom start`, `stop`, `status`, `reload`, `abort` and `logrotate` read it.
//!
//! Why a lock and not just the number: a pid file left by a daemon that died (kill -9, a
//! crash, a power cut) names a pid the kernel may since have given to another process.
//! The lock dies with its holder, so "the file is locked" means "the daemon is alive", and
//! only then is the number in it trusted (Postfix's `master -t` makes the same test).
//!
//! The lock belongs to the process that opened the file, not to a uid: a privilege-separated
//! daemon takes it as root in its master process before anything else starts, and the admin
//! commands need only read access (the directory is 0755, the file 0644, as Postfix's).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Mode of the pid directory and the pid file: readable by all, as Postfix's.
pub const PID_DIRECTORY_MODE: u32 = 0o755;
const PID_FILE_MODE: u32 = 0o644;

/// How long a reader waits for a daemon that has just taken the lock to write its pid.
const WRITE_WAIT: Duration = Duration::from_secs(2);

/// `QUEUE/pid` ([`queue::Layout::pid_directory`]).
pub fn pid_directory(queue_directory: &Path) -> PathBuf {
    queue::Layout::new(queue_directory).pid_directory()
}

/// `QUEUE/pid/master.pid` ([`queue::Layout::master_pid`]).
pub fn pid_path(queue_directory: &Path) -> PathBuf {
    queue::Layout::new(queue_directory).master_pid()
}

/// The locked pid file of the running daemon; dropping it (or the process ending) releases
/// the lock. The file itself is left in place, as Postfix leaves `master.pid`: a stale file
/// is harmless because nobody holds its lock.
#[derive(Debug)]
pub struct PidFile {
    _file: File,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    /// Another daemon holds the lock; its pid (0 if it has not written it yet).
    #[error("the mail system is already running, pid {0}")]
    Running(u32),
    #[error("cannot lock {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl PidFile {
    /// Takes the lock and writes this process's pid, or says who holds it.
    pub fn acquire(queue_directory: &Path) -> Result<PidFile, PidFileError> {
        let path = pid_path(queue_directory);
        let error = |source| PidFileError::Io {
            path: path.clone(),
            source,
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(PID_DIRECTORY_MODE)
            .create(pid_directory(queue_directory))
            .map_err(error)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(PID_FILE_MODE)
            .open(&path)
            .map_err(error)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(PidFileError::Running(wait_for_pid(&mut file).unwrap_or(0)))
            }
            Err(TryLockError::Error(e)) => return Err(error(e)),
        }
        // Postfix's layout: the pid right-aligned in 10 columns, then a newline.
        let text = format!("{:>10}\n", std::process::id());
        let written = file
            .set_len(0)
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.sync_data());
        written.map_err(error)?;
        Ok(PidFile { _file: file, path })
    }
}

/// The pid of the running daemon, or `None` when none runs (no file, or nobody holds its
/// lock). An error only when the file exists but cannot be opened (permissions).
pub fn running(queue_directory: &Path) -> io::Result<Option<u32>> {
    let mut file = match File::open(pid_path(queue_directory)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        // Nobody holds it: a stale file from a daemon that is gone.
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(wait_for_pid(&mut file).unwrap_or(0))),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// Waits until the daemon that holds the lock, or the next, has written its pid or let go
/// of the lock; `true` when it let go within `limit`.
pub fn wait_released(queue_directory: &Path, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        match running(queue_directory) {
            Ok(None) => return true,
            _ if Instant::now() >= deadline => return false,
            _ => thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// The pid in a locked file; the holder writes it right after locking, so an empty file is
/// read again for a moment.
fn wait_for_pid(file: &mut File) -> Option<u32> {
    let deadline = Instant::now() + WRITE_WAIT;
    loop {
        let mut text = String::new();
        let read = file
            .rewind()
            .and_then(|()| file.read_to_string(&mut text).map(|_| ()));
        if let (Ok(()), Ok(pid)) = (read, text.trim().parse::<u32>()) {
            return Some(pid);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_acquire_names_the_holder_and_a_released_file_is_not_running() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(running(dir.path()).unwrap(), None, "no file yet");
        let held = PidFile::acquire(dir.path()).unwrap();
        let me = std::process::id();
        assert_eq!(running(dir.path()).unwrap(), Some(me));
        match PidFile::acquire(dir.path()) {
            Err(PidFileError::Running(pid)) => assert_eq!(pid, me),
            other => panic!("second acquire: {other:?}"),
        }
        drop(held);
        // The stale file stays, but nobody holds it. Another test of this process may fork
        // while the lock is held: the child holds the (close-on-exec) descriptor, and so
        // the lock, until its exec; hence the wait before the check.
        assert!(pid_path(dir.path()).exists());
        assert!(wait_released(dir.path(), Duration::from_secs(5)));
        assert_eq!(running(dir.path()).unwrap(), None);
    }
}
