//! Mailbox locking, the two kinds mail readers use, both with a bounded wait:
//!
//! * a dotlock `<mbox>.lock`, created with `O_EXCL`; one older than [`STALE_DOTLOCK`] was left
//!   by a crashed writer and is removed — unless it holds more than a lock ever does
//!   ([`MAX_DOTLOCK_BYTES`]): then it is somebody's data (an mbox named `alice.lock` from
//!   before mailbox names were checked), kept, and the delivery waits;
//! * an fcntl write lock on the whole file. We use Linux open-file-description locks
//!   (`F_OFD_SETLK`): they conflict with the classic POSIX locks MUAs take, but belong to our
//!   open file rather than to the process, so two delivery threads exclude each other and
//!   closing an unrelated descriptor cannot drop a lock (the classic POSIX-lock trap). On a
//!   kernel without them we fall back to `F_SETLK`.
//!
//! Order: dotlock first, then open, then fcntl; release is the reverse, by `Drop`, so every
//! path out of a delivery (error, early return, panic) releases both.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A dotlock untouched this long belongs to a writer that died; Postfix and procmail use
/// the same five minutes.
pub(crate) const STALE_DOTLOCK: Duration = Duration::from_secs(300);

/// A dotlock holds nothing or a pid (liblockfile, procmail, mutt, us): a few bytes. A bigger
/// file named like a lock is mail, and is never removed as stale.
pub(crate) const MAX_DOTLOCK_BYTES: u64 = 64;

/// True when a file named `<mailbox>.lock` is too big to be a lock: it is mail (kept, never
/// removed as stale) and the mailbox's deliveries wait until someone moves it away. `check`
/// reports such files.
pub fn holds_mail(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.len() > MAX_DOTLOCK_BYTES
}

/// How long to wait for a mailbox lock before deferring the delivery.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// A held dotlock; dropping it removes the lock file.
#[derive(Debug)]
pub struct DotLock {
    path: PathBuf,
}

impl DotLock {
    /// Creates `<target>.lock`, waiting until `deadline` while someone else holds it.
    pub fn acquire(target: &Path, deadline: Instant) -> io::Result<DotLock> {
        let mut name = target.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let mut warned = false;
        loop {
            match create_exclusive(&path) {
                Ok(()) => return Ok(DotLock { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            if remove_if_stale(&path, &mut warned) {
                continue;
            }
            wait_or_time_out(deadline, "dotlock held by another process")?;
        }
    }
}

impl Drop for DotLock {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            tracing::warn!("cannot remove dotlock {}: {e}", self.path.display());
        }
    }
}

fn create_exclusive(path: &Path) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    // The pid lets the next writer tell a dead holder's lock from a live one (liblockfile
    // does the same), and tells the administrator who holds a stuck lock.
    let _ = writeln!(file, "{}", std::process::id());
    Ok(())
}

/// True if the lock names a process that no longer exists (a writer killed by `kill -9`).
/// A lock naming a live process, or no readable pid, is not judged by this.
fn holder_is_dead(path: &Path) -> bool {
    let Ok(text) = fs::read_to_string(path) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    if pid <= 0 || pid == std::process::id() as i32 {
        return false;
    }
    !sys::process_exists(pid)
}

/// Removes the lock file if it is older than [`STALE_DOTLOCK`] or its holder is dead; true
/// if it did.
/// Two removers racing can at worst remove a lock created between their stat and unlink;
/// the fcntl lock taken next still keeps the writers apart.
/// A file too big to be a lock is kept, with one warning per wait (`warned`).
fn remove_if_stale(path: &Path, warned: &mut bool) -> bool {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return true; // gone already: retry at once
    };
    if holds_mail(&meta) {
        if !std::mem::replace(warned, true) {
            tracing::warn!(
                "{} is not a lock file ({} bytes): not removed; move it away to unblock the mailbox",
                path.display(),
                meta.len()
            );
        }
        return false;
    }
    let age = meta
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok());
    if age.is_none_or(|age| age <= STALE_DOTLOCK) && !holder_is_dead(path) {
        return false;
    }
    match fs::remove_file(path) {
        Ok(()) => {
            tracing::warn!("removed stale dotlock {}", path.display());
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(_) => false,
    }
}

/// Sleeps a short, jittered while, or fails with `TimedOut` once `deadline` has passed.
fn wait_or_time_out(deadline: Instant, what: &str) -> io::Result<()> {
    let now = Instant::now();
    if now >= deadline {
        return Err(io::Error::new(io::ErrorKind::TimedOut, what.to_string()));
    }
    // Jitter keeps many waiters from retrying in lock step.
    let pause = Duration::from_millis(fastrand::u64(5..25));
    std::thread::sleep(pause.min(deadline - now));
    Ok(())
}

/// Takes an exclusive fcntl lock on the whole file, waiting until `deadline`.
/// The lock is released when the file is closed.
pub fn lock_exclusive(file: &File, deadline: Instant) -> io::Result<()> {
    let mut use_ofd = true;
    loop {
        match sys::try_lock_record(file, use_ofd) {
            Ok(()) => return Ok(()),
            Err(e) if use_ofd && e.raw_os_error() == Some(libc::EINVAL) => use_ofd = false,
            Err(e) if is_contended(&e) => {
                wait_or_time_out(deadline, "mailbox locked by another process")?
            }
            Err(e) => return Err(e),
        }
    }
}

fn is_contended(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EACCES) | Some(libc::EINTR)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deadline(ms: u64) -> Instant {
        Instant::now() + Duration::from_millis(ms)
    }

    #[test]
    fn dotlock_excludes_and_releases() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("alice");
        let held = DotLock::acquire(&mbox, deadline(100)).unwrap();
        assert!(dir.path().join("alice.lock").exists());
        let err = DotLock::acquire(&mbox, deadline(100)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(held);
        assert!(!dir.path().join("alice.lock").exists());
        DotLock::acquire(&mbox, deadline(100)).unwrap();
    }

    #[test]
    fn stale_dotlock_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("bob");
        let lock_path = dir.path().join("bob.lock");
        let file = File::create(&lock_path).unwrap();
        let old = SystemTime::now() - STALE_DOTLOCK - Duration::from_secs(60);
        file.set_modified(old).unwrap();
        let _held = DotLock::acquire(&mbox, deadline(100)).unwrap();
        let age = fs::metadata(&lock_path).unwrap().modified().unwrap();
        assert!(age > old, "a fresh lock replaced the stale one");
    }

    /// Issue 8 defect 3: an old `alice.lock` that is an mbox (mail accepted before mailbox
    /// names were checked) is kept, not deleted as a stale lock; alice's delivery waits.
    #[test]
    fn an_old_file_named_like_a_lock_that_holds_mail_is_never_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("alice");
        let impostor = dir.path().join("alice.lock");
        let mail = b"From someone@example.org Mon Jan  1 00:00:00 2024\nSubject: kept\n\nbody\n";
        fs::write(&impostor, mail).unwrap();
        let old = SystemTime::now() - STALE_DOTLOCK - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&impostor)
            .unwrap()
            .set_modified(old)
            .unwrap();
        let err = DotLock::acquire(&mbox, deadline(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(fs::read(&impostor).unwrap(), mail);
    }

    #[test]
    fn fresh_dotlock_is_respected() {
        let dir = tempfile::tempdir().unwrap();
        let mbox = dir.path().join("carol");
        File::create(dir.path().join("carol.lock")).unwrap();
        let err = DotLock::acquire(&mbox, deadline(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(dir.path().join("carol.lock").exists());
    }

    #[test]
    fn fcntl_lock_excludes_other_open_files_even_in_one_process() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        let a = File::create(&path).unwrap();
        let b = OpenOptions::new().write(true).open(&path).unwrap();
        lock_exclusive(&a, deadline(100)).unwrap();
        let err = lock_exclusive(&b, deadline(50)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(a);
        lock_exclusive(&b, deadline(100)).unwrap();
    }
}
