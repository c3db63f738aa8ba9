//! `mailroom mailbox archive` on a Maildir (`home_mailbox = "Maildir/"`, a virtual Maildir):
//! messages older than the cut-off move into an archive Maildir — by default the Maildir++
//! folder `.Archive` inside the mailbox, which IMAP servers (Dovecot) show as the folder
//! `Archive`.
//!
//! Why a Maildir and not the mbox command's gzip file: each message moves with one
//! `rename(2)`, which is atomic, so at every instant — a kill, a crash included — a message
//! is in exactly one place: never lost, never in both. (Copying into a gzip and then
//! unlinking would leave copies in both after an interrupt.) `new/` messages go to the
//! archive's `new/`, `cur/` messages to its `cur/` with their flags. Both directories are
//! fsynced once the moves are done. No lock is needed: deliveries only add files (through
//! `tmp/`), and a message a mail reader renames meanwhile is simply left where it went.
//!
//! A message's age is the delivery time at the start of its name (`1700000000.M…`, the
//! Maildir convention), or its modification time when the name does not start with one.
//! The archive Maildir must be on the same file system (a rename cannot cross one); its new
//! directories get the mailbox's owner, group and mode 0700.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::Outcome;

/// What to archive.
#[derive(Debug, Clone)]
pub struct Options {
    /// The Maildir (the directory holding `cur/`, `new/`, `tmp/`).
    pub maildir: PathBuf,
    /// Messages delivered at or before `now - older_than` are moved.
    pub older_than: u64,
    pub now: u64,
    /// The archive Maildir (created if missing); `None`: `<maildir>/.Archive`.
    pub archive: Option<PathBuf>,
}

impl Options {
    pub fn archive_dir(&self) -> PathBuf {
        self.archive
            .clone()
            .unwrap_or_else(|| self.maildir.join(".Archive"))
    }
}

/// Moves the old messages; see the module doc.
pub fn archive(opts: &Options) -> io::Result<Outcome> {
    let root = fs::symlink_metadata(&opts.maildir)?;
    if !root.is_dir() || !opts.maildir.join("cur").is_dir() || !opts.maildir.join("new").is_dir() {
        return Err(io::Error::other(
            "not a Maildir (no cur/ and new/); not touched",
        ));
    }
    let target = opts.archive_dir();
    let cutoff = opts.now.saturating_sub(opts.older_than);
    let mut outcome = Outcome::default();
    let mut moved_any = false;
    for sub in ["new", "cur"] {
        let from = opts.maildir.join(sub);
        for (name, size, delivered) in messages(&from)? {
            outcome.bytes_before += size;
            if delivered > cutoff {
                outcome.kept += 1;
                outcome.bytes_after += size;
                continue;
            }
            if !moved_any {
                outcome.owner_warning = make_maildir(&target, root.uid(), root.gid())?;
                moved_any = true;
            }
            match fs::rename(from.join(&name), target.join(sub).join(&name)) {
                Ok(()) => outcome.archived += 1,
                // A mail reader moved or removed it meanwhile: it is theirs now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                    return Err(io::Error::other(format!(
                        "{} is on another file system than the Maildir: a message can only move by rename",
                        target.display()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
    }
    if moved_any {
        // The renames are durable only once both sides' directories are.
        for sub in ["new", "cur"] {
            File::open(target.join(sub))?.sync_all()?;
            File::open(opts.maildir.join(sub))?.sync_all()?;
        }
        outcome.archive = Some(target);
    }
    Ok(outcome)
}

/// `(file name, size, delivery time)` of each regular file in a `new/` or `cur/` directory,
/// oldest first (dot files, which Maildir readers ignore, are skipped).
fn messages(dir: &Path) -> io::Result<Vec<(String, u64, u64)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if name.starts_with('.') || !meta.is_file() {
            continue;
        }
        let delivered = delivery_time(&name).unwrap_or(meta.mtime().max(0) as u64);
        found.push((name, meta.len(), delivered));
    }
    found.sort_by_key(|(_, _, t)| *t);
    Ok(found)
}

/// The seconds a Maildir name starts with (`1700000000.M12P3Q4.host`).
pub fn delivery_time(name: &str) -> Option<u64> {
    let digits = name.split('.').next()?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The archive Maildir and its three directories, mode 0700, owned like the mailbox; the
/// warning when they could not be given to the mailbox's owner.
fn make_maildir(dir: &Path, uid: u32, gid: u32) -> io::Result<Option<String>> {
    let mut warning = None;
    for path in [
        dir.to_path_buf(),
        dir.join("tmp"),
        dir.join("new"),
        dir.join("cur"),
    ] {
        match DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {
                let refused = super::give_to_owner(None, &path, uid, gid);
                warning = warning.or(refused);
                if let Some(parent) = path.parent() {
                    File::open(parent)?.sync_all()?;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;
    const NOW: u64 = 1_800_000_000;

    fn maildir(dir: &Path, files: &[(&str, &str)]) {
        for sub in ["tmp", "new", "cur"] {
            fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for (path, body) in files {
            fs::write(dir.join(path), body).unwrap();
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    #[test]
    fn old_messages_move_to_the_archive_folder_with_their_flags_and_new_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("Maildir");
        let old = NOW - 40 * DAY;
        let young = NOW - DAY;
        maildir(
            &md,
            &[
                (&format!("new/{old}.M1P1Q1.h"), "old new\n"),
                (&format!("cur/{old}.M2P1Q2.h:2,S"), "old seen\n"),
                (&format!("cur/{young}.M3P1Q3.h:2,"), "young\n"),
                ("tmp/1.M4P1Q4.h", "being delivered\n"),
            ],
        );
        let opts = Options {
            maildir: md.clone(),
            older_than: 30 * DAY,
            now: NOW,
            archive: None,
        };
        let outcome = archive(&opts).unwrap();
        assert_eq!((outcome.archived, outcome.kept), (2, 1));
        let target = md.join(".Archive");
        assert_eq!(outcome.archive.as_deref(), Some(target.as_path()));
        assert_eq!(names(&target.join("new")), [format!("{old}.M1P1Q1.h")]);
        assert_eq!(names(&target.join("cur")), [format!("{old}.M2P1Q2.h:2,S")]);
        assert_eq!(names(&md.join("cur")), [format!("{young}.M3P1Q3.h:2,")]);
        assert!(names(&md.join("new")).is_empty());
        assert_eq!(names(&md.join("tmp")).len(), 1, "tmp/ is never touched");
        assert!(target.join("tmp").is_dir());
        // Run again: nothing old is left, nothing moves twice.
        let again = archive(&opts).unwrap();
        assert_eq!((again.archived, again.kept), (0, 1));
        assert!(again.archive.is_none());
    }

    #[test]
    fn a_name_without_a_time_is_dated_by_its_modification_time() {
        assert_eq!(delivery_time("1700000000.M1P2Q3.host"), Some(1_700_000_000));
        assert_eq!(delivery_time("msg-17"), None);
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("M");
        maildir(&md, &[("cur/msg-17:2,", "just written\n")]);
        let opts = Options {
            maildir: md.clone(),
            older_than: 30 * DAY,
            archive: Some(dir.path().join("A")),
            now: crate::duration::unix_now(),
        };
        assert_eq!(archive(&opts).unwrap().kept, 1, "its mtime is now");
    }

    #[test]
    fn a_directory_that_is_no_maildir_is_not_touched() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            maildir: dir.path().to_path_buf(),
            older_than: 0,
            now: NOW,
            archive: None,
        };
        assert!(archive(&opts).is_err());
        assert!(!dir.path().join(".Archive").exists());
    }
}
