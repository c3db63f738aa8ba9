//! Small file-system helpers shared by the mbox and Maildir writers: directory creation that
//! survives a crash, and the mapping from an I/O error to a delivery verdict.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::Verdict;

/// Creates `dir` and any missing parents with `mode`, fsyncing each parent that gained an
/// entry. Why: a message fsynced into a new directory is only durable once the directory's
/// own entry is, or a crash can make the whole mailbox (and the message) disappear.
pub(crate) fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        ensure_dir(parent, mode)?;
    }
    match DirBuilder::new().mode(mode).create(dir) {
        Ok(()) => {}
        // Another delivery created it at the same moment: fine, it fsyncs the parent.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(e),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fsync_dir(parent),
        None => Ok(()),
    }
}

/// fsyncs a directory so that entries created or renamed in it survive a crash.
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Removes a file, ignoring "already gone".
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// The verdict for a write that failed: `File too large` (the size limit, RLIMIT_FSIZE) is
/// permanent like in Postfix (5.2.2); an exceeded quota may free up (4.2.2); everything else,
/// a full disk included, is worth retrying (4.3.0).
pub(crate) fn write_error_verdict(what: &str, error: &io::Error) -> Verdict {
    let text = format!("{what}. error writing message: {}", describe(error));
    match error.raw_os_error() {
        Some(libc::EFBIG) => Verdict::bounced("5.2.2", text),
        Some(libc::EDQUOT) => Verdict::deferred("4.2.2", text),
        _ => Verdict::deferred("4.3.0", text),
    }
}

/// An I/O error as Postfix prints it: the strerror text without Rust's "(os error N)".
pub(crate) fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_dir_creates_parents_and_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        ensure_dir(&deep, 0o755).unwrap();
        ensure_dir(&deep, 0o755).unwrap();
        assert!(deep.is_dir());
    }

    #[test]
    fn error_texts_match_postfix() {
        let e = io::Error::from_raw_os_error(libc::EFBIG);
        let v = write_error_verdict("cannot update mailbox /m for user u", &e);
        assert_eq!(v.dsn, "5.2.2");
        assert_eq!(
            v.text,
            "cannot update mailbox /m for user u. error writing message: File too large"
        );
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(write_error_verdict("x", &e).dsn, "4.3.0");
    }
}
