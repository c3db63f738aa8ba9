//! Appending one message to an mbox file (the spool mailbox, `$HOME/<home_mailbox>`, or a
//! `/file` alias target), in the mboxrd dialect every mail reader understands:
//!
//! ```text
//! From sender@example.org Tue Mar  5 07:08:09 2024      <- separator, asctime, UTC
//! Return-Path: <sender@example.org>                      <- trace headers
//! X-Original-To: alice@localhost
//! Delivered-To: alice@localhost
//! <the message, every line matching /^>*From / gets one more '>'>
//!                                                         <- one empty line ends it
//! ```
//!
//! Invariants: the file never holds half a message — on any failure it is truncated back to
//! the length it had when we locked it; a delivery is reported only after fsync; both locks
//! (dotlock and fcntl) are always released.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use super::fsutil::{describe, fsync_dir, write_error_verdict};
use super::lock::{lock_exclusive, DotLock};
use super::Verdict;

/// The message as one mbox record: separator line, trace headers, the quoted message, a
/// final newline if it lacked one, and the empty line that ends every mbox message.
pub(crate) fn format_record(from_line: &str, trace: &[u8], message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(from_line.len() + trace.len() + message.len() + 64);
    out.extend_from_slice(from_line.as_bytes());
    out.extend_from_slice(trace);
    quote_from_lines(message, &mut out);
    if !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// mboxrd quoting: a line matching `^>*From ` gets one more `>`, so reading it back (remove
/// one `>`) restores the message exactly and no line can pass for a separator.
fn quote_from_lines(message: &[u8], out: &mut Vec<u8>) {
    for (i, line) in message.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let unquoted = line.iter().position(|&b| b != b'>').unwrap_or(line.len());
        if line[unquoted..].starts_with(b"From ") {
            out.push(b'>');
        }
        out.extend_from_slice(line);
    }
}

/// Where and how to append.
#[derive(Debug)]
pub(crate) struct MboxTarget<'a> {
    pub path: &'a Path,
    /// The start of every failure text, Postfix style:
    /// `cannot update mailbox /var/mail/bob for user bob`.
    pub what: String,
    /// mailbox_size_limit: the file may not grow past it (0 = no limit).
    pub size_limit: u64,
    pub lock_timeout: Duration,
    /// `Some((uid, gid))`: the mailbox must belong to them (root writing the spool): a new
    /// file is chowned to them, an existing one with another owner is repaired.
    pub owner: Option<(u32, u32)>,
    /// Opened with more rights than the user's (root in the spool): refuse symbolic and hard
    /// links, the classic ways to make a privileged writer append to someone else's file.
    pub strict: bool,
    /// A `/file` target: the directory may not let us create a dotlock; fcntl alone is then
    /// enough, as in Postfix.
    pub dotlock_optional: bool,
    /// Take a dotlock at all (`virtual_mailbox_lock` without `dotlock`: fcntl alone).
    pub dotlock: bool,
}

/// Appends `record` (from [`format_record`]) under both locks; `Err` is the failure verdict.
pub(crate) fn append(target: &MboxTarget<'_>, record: &[u8]) -> Result<(), Verdict> {
    let deadline = Instant::now() + target.lock_timeout;
    let _dotlock = take_dotlock(target, deadline)?;
    let file = open_checked(target)?;
    lock_exclusive(&file, deadline).map_err(|e| lock_failure(target, &e))?;
    let original_len = file
        .metadata()
        .map_err(|e| Verdict::deferred("4.3.0", format!("{}: {}", target.what, describe(&e))))?
        .len();
    let separator = missing_separator(&file, original_len);
    let new_len = original_len + (separator.len() + record.len()) as u64;
    if target.size_limit > 0 && new_len > target.size_limit {
        let e = io::Error::from_raw_os_error(libc::EFBIG);
        return Err(write_error_verdict(&target.what, &e));
    }
    write_and_sync(&file, separator, record).map_err(|e| {
        roll_back(&file, target.path, original_len);
        write_error_verdict(&target.what, &e)
    })
    // `file` closes here, dropping the fcntl lock, then `_dotlock` removes the dotlock.
}

fn take_dotlock(target: &MboxTarget<'_>, deadline: Instant) -> Result<Option<DotLock>, Verdict> {
    if !target.dotlock {
        return Ok(None);
    }
    match DotLock::acquire(target.path, deadline) {
        Ok(lock) => Ok(Some(lock)),
        Err(e) if target.dotlock_optional && is_permission_error(&e) => Ok(None),
        Err(e) => Err(lock_failure(target, &e)),
    }
}

fn is_permission_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
    )
}

fn lock_failure(target: &MboxTarget<'_>, e: &io::Error) -> Verdict {
    Verdict::deferred(
        "4.2.0",
        format!("{}. unable to lock mailbox: {}", target.what, describe(e)),
    )
}

/// Opens (creating with mode 0600 if needed) and checks the file; fixes its owner if asked.
fn open_checked(target: &MboxTarget<'_>) -> Result<File, Verdict> {
    let open_error =
        |e: &io::Error| Verdict::deferred("4.2.0", format!("{}: {}", target.what, describe(e)));
    let (file, created) = open_append(target.path, target.strict).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            Verdict::bounced(
                "5.2.0",
                format!("{}. the mailbox is a symbolic link", target.what),
            )
        } else {
            open_error(&e)
        }
    })?;
    let meta = file.metadata().map_err(|e| open_error(&e))?;
    if !meta.file_type().is_file() {
        return Err(Verdict::bounced(
            "5.2.0",
            format!("{}. not a regular file", target.what),
        ));
    }
    if target.strict && meta.nlink() > 1 {
        let text = format!(
            "{}. the mailbox has {} hard links",
            target.what,
            meta.nlink()
        );
        return Err(Verdict::bounced("5.2.0", text));
    }
    if let Some((uid, gid)) = target.owner {
        if !created && meta.uid() != uid && meta.uid() != 0 {
            // Someone else's file under this user's name: repairing it would hand them the
            // user's mail through a descriptor they may already hold. An administrator decides.
            let text = format!(
                "{}. the mailbox is owned by uid {}",
                target.what,
                meta.uid()
            );
            return Err(Verdict::deferred("4.2.0", text));
        }
        if created || meta.uid() != uid {
            set_owner(&file, target.path, uid, gid, created).map_err(|e| open_error(&e))?;
        }
    }
    if created {
        // The new directory entry must be durable before the message in it is reported.
        if let Some(parent) = target.path.parent() {
            fsync_dir(parent).map_err(|e| open_error(&e))?;
        }
    }
    Ok(file)
}

/// Opens for reading and appending; creates the file (0600) if missing. The read access is
/// only used to look at the last two bytes; a write-only file is opened write-only.
fn open_append(path: &Path, no_follow: bool) -> io::Result<(File, bool)> {
    let flags = libc::O_CLOEXEC | if no_follow { libc::O_NOFOLLOW } else { 0 };
    let open = |read: bool, create: bool| {
        OpenOptions::new()
            .read(read)
            .append(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(flags)
            .open(path)
    };
    for _ in 0..3 {
        match open(true, true) {
            Ok(file) => return Ok((file, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        match open(true, false).or_else(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => open(false, false),
            _ => Err(e),
        }) {
            Ok(file) => return Ok((file, false)),
            // Removed between the two opens (a mail reader emptied it): create it again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("mailbox keeps disappearing"))
}

/// Gives the mailbox to its user. An existing root-owned mailbox is what an administrator's
/// `touch` as root after emptying the spool leaves behind (seed 002): the user's mail reader
/// could no longer open it, so it is repaired (owner, mode 0600), with a warning.
fn set_owner(file: &File, path: &Path, uid: u32, gid: u32, created: bool) -> io::Result<()> {
    if !created {
        tracing::warn!(
            "mailbox {} was owned by root: given to uid {uid}, mode set to 0600",
            path.display()
        );
    }
    std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
    if !created {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

/// What must precede our `From ` line for it to start a message: a file written by a
/// careless program may lack the final newline or the empty line after the last message.
fn missing_separator(file: &File, len: u64) -> &'static [u8] {
    if len == 0 {
        return b"";
    }
    let mut tail = [0u8; 2];
    let start = len.saturating_sub(2);
    let want = (len - start) as usize;
    match file.read_exact_at(&mut tail[..want], start) {
        Ok(()) if want == 2 && tail == *b"\n\n" => b"",
        Ok(()) if tail[want - 1] == b'\n' => b"\n",
        Ok(()) => b"\n\n",
        Err(_) => b"", // write-only file: cannot tell, trust it
    }
}

fn write_and_sync(mut file: &File, separator: &[u8], record: &[u8]) -> io::Result<()> {
    file.write_all(separator)?;
    file.write_all(record)?;
    // Durability: the scheduler marks this recipient sent for good once we report it; if the
    // appended bytes were still only in the page cache a crash would lose the message.
    // fdatasync covers the new file length too (it is needed to read the data back).
    file.sync_data()
}

/// Cuts the file back to where it was, so readers never see a partial message.
fn roll_back(file: &File, path: &Path, original_len: u64) {
    let result = file.set_len(original_len).and_then(|()| file.sync_data());
    if let Err(e) = result {
        tracing::error!(
            "cannot truncate {} back to {original_len} bytes after a failed delivery: {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn target(path: &Path) -> MboxTarget<'_> {
        MboxTarget {
            path,
            what: format!("cannot update mailbox {} for user u", path.display()),
            size_limit: 0,
            lock_timeout: Duration::from_secs(10),
            owner: None,
            strict: true,
            dotlock_optional: false,
            dotlock: true,
        }
    }

    #[test]
    fn record_quotes_from_lines_and_ends_with_blank_line() {
        let record = format_record(
            "From a@b X\n",
            b"H: 1\n",
            b"S: x\n\nFrom here\n>From there\nok",
        );
        let text = String::from_utf8(record).unwrap();
        assert_eq!(
            text,
            "From a@b X\nH: 1\nS: x\n\n>From here\n>>From there\nok\n\n"
        );
    }

    #[test]
    fn empty_message_still_makes_a_record() {
        let record = format_record("From a@b X\n", b"", b"");
        assert_eq!(record, b"From a@b X\n\n");
    }

    #[test]
    fn append_twice_and_repair_missing_separator() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(&path, "From x Y\nSubject: old\n\nno final newline").unwrap();
        let t = target(&path);
        append(&t, b"From a@b Z\n\nbody\n\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with("no final newline\n\nFrom a@b Z\n\nbody\n\n"),
            "{text:?}"
        );
        assert!(!dir.path().join("mbox.lock").exists());
    }

    #[test]
    fn size_limit_bounces_and_leaves_the_file_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(&path, vec![b'x'; 90]).unwrap();
        let mut t = target(&path);
        t.size_limit = 100;
        let v = append(&t, &[b'y'; 20]).unwrap_err();
        assert_eq!(
            (v.dsn.as_str(), v.kind),
            ("5.2.2", envelope::OutcomeKind::Bounced)
        );
        assert!(v.text.ends_with("error writing message: File too large"));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 90);
    }

    #[test]
    fn symlink_and_hard_link_are_refused_in_strict_mode() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let v = append(&target(&link), b"x\n").unwrap_err();
        assert_eq!(v.dsn, "5.2.0");
        let hard = dir.path().join("hard");
        std::fs::hard_link(&real, &hard).unwrap();
        let v = append(&target(&hard), b"x\n").unwrap_err();
        assert!(v.text.contains("hard links"), "{}", v.text);
        assert_eq!(std::fs::metadata(&real).unwrap().len(), 0);
    }

    #[test]
    fn held_lock_defers_with_4_2_0() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        let _held = DotLock::acquire(&path, Instant::now()).unwrap();
        let mut t = target(&path);
        t.lock_timeout = Duration::from_millis(50);
        let v = append(&t, b"x\n").unwrap_err();
        assert_eq!(v.dsn, "4.2.0");
        assert!(v.text.contains("unable to lock mailbox"), "{}", v.text);
    }

    #[test]
    fn write_failure_truncates_back() {
        // RLIMIT_FSIZE would kill the test process with SIGXFSZ; /dev/full gives ENOSPC but
        // is not a regular file. So exercise roll_back directly.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        std::fs::write(&path, "keep\n\n").unwrap();
        let file = OpenOptions::new().append(true).open(&path).unwrap();
        (&file).write_all(b"From half a message").unwrap();
        roll_back(&file, &path, 6);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep\n\n");
    }
}
