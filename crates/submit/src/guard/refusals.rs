//! A count of refused submissions, so the daemon logs "N submissions refused in the last
//! interval" once instead of one line per refusal (DESIGN invariant 6: a cron job retrying
//! every second against a full disk must not also flood the log).
//!
//! The file `<queue_directory>/maildrop-refused` holds one line `<window start> <count>`,
//! changed only under flock(2). Recording is best effort: a submission's exit code never
//! depends on it. In a system install the daemon creates the file; `check --fix` should give
//! it group `setgid_group` and mode 0660 so that `mailroom-postdrop` can update it.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const REFUSAL_FILE: &str = "maildrop-refused";
const FILE_MODE: u32 = 0o660;

/// Adds one refusal to the counter under `queue_dir`.
pub fn record_refusal(queue_dir: &Path) -> io::Result<()> {
    let mut file = open_locked(queue_dir)?;
    let (start, count) = read_counter(&mut file)?.unwrap_or((now(), 0));
    write_counter(&mut file, start, count.saturating_add(1))
}

/// Returns the refusals recorded since the last call and starts a new window at zero.
/// A missing file means zero (and is created, so the setgid helper can update it later).
pub fn take_refusal_count(queue_dir: &Path) -> io::Result<u64> {
    let mut file = open_locked(queue_dir)?;
    let count = read_counter(&mut file)?.map_or(0, |(_, count)| count);
    write_counter(&mut file, now(), 0)?;
    Ok(count)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Opens (creating) the counter and takes an exclusive flock, giving up after about 200 ms
/// rather than letting a stuck holder make a submission hang (invariant 2).
fn open_locked(queue_dir: &Path) -> io::Result<File> {
    let path = queue::Layout::new(queue_dir).maildrop_refused();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)?;
    widen_mode(&file);
    for _ in 0..20 {
        // flock(2); the lock goes away when `file` is closed.
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(TryLockError::WouldBlock) => sleep(Duration::from_millis(10)),
            Err(TryLockError::Error(error)) => return Err(error),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!("{} stays locked", path.display()),
    ))
}

/// The umask may have narrowed a freshly created file; its owner restores group write.
fn widen_mode(file: &File) {
    let Ok(meta) = file.metadata() else { return };
    let owner = meta.uid() == sys::effective_uid();
    if owner && meta.mode() & 0o777 != FILE_MODE {
        let _ = file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE));
    }
}

/// `None` for an empty or unreadable counter: it starts over rather than failing.
fn read_counter(file: &mut File) -> io::Result<Option<(u64, u64)>> {
    let mut text = String::new();
    file.rewind()?;
    if file.take(64).read_to_string(&mut text).is_err() {
        return Ok(None);
    }
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    match (fields.next(), fields.next()) {
        (Some(Ok(start)), Some(Ok(count))) => Ok(Some((start, count))),
        _ => Ok(None),
    }
}

fn write_counter(file: &mut File, start: u64, count: u64) -> io::Result<()> {
    file.set_len(0)?;
    file.rewind()?;
    // No fsync: a statistic lost in a crash costs one log line, not a message.
    file.write_all(format!("{start} {count}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_then_take_resets() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(take_refusal_count(dir.path()).unwrap(), 0);
        for _ in 0..3 {
            record_refusal(dir.path()).unwrap();
        }
        assert_eq!(take_refusal_count(dir.path()).unwrap(), 3);
        assert_eq!(take_refusal_count(dir.path()).unwrap(), 0);
        let mode = std::fs::metadata(dir.path().join(REFUSAL_FILE))
            .unwrap()
            .mode();
        assert_eq!(mode & 0o777, FILE_MODE);
    }

    #[test]
    fn garbage_counter_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(REFUSAL_FILE), "not numbers at all\n").unwrap();
        record_refusal(dir.path()).unwrap();
        assert_eq!(take_refusal_count(dir.path()).unwrap(), 1);
    }

    #[test]
    fn concurrent_records_are_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        // Each record gives up after ~200 ms of lock waiting (invariant 2): on a loaded
        // machine one may, so the test counts the records that reported success.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let path = dir.path().to_path_buf();
                std::thread::spawn(move || {
                    let mut recorded = 0;
                    for _ in 0..10 {
                        match record_refusal(&path) {
                            Ok(()) => recorded += 1,
                            Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}"),
                        }
                    }
                    recorded
                })
            })
            .collect();
        let recorded: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert!(recorded > 0);
        assert_eq!(take_refusal_count(dir.path()).unwrap(), recorded);
    }
}
