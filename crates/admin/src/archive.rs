//! `mailroom mailbox archive USER [--older-than 30d]`: seed 002 done safely. The seed's
//! operator ran `tar czf`, `rm`, `touch` and three `chmod`/`chown`s by hand, on a live
//! mailbox, and still ended with the wrong owner and mode in between; any mail delivered
//! during the `tar` was lost with the `rm`.
//!
//! Here, under the same locks the local delivery agent takes (dotlock `<mbox>.lock`, then an
//! fcntl write lock on the file, see `agents::local::lock`), the mbox is read once, message
//! by message: messages whose `From ` line date is older than the cut-off go to a gzip
//! archive, the others to a new mbox beside the old one. Then:
//! 1. the archive is finished, fsynced and renamed into place (directory fsynced);
//! 2. the new mbox gets the old one's owner, group and mode, is fsynced, and is renamed over
//!    the old one (directory fsynced);
//! 3. the locks are released.
//!
//! Nothing is lost: a delivery arriving meanwhile waits for the dotlock (the agent takes it
//! before it opens the file, so it can never append to the replaced inode) and lands in the
//! new mbox; a crash before step 2 leaves the old mbox whole (the archive then holds copies);
//! a crash after it leaves both complete. A message whose date cannot be read is kept.
//! Memory stays flat: the mbox is streamed, never loaded whole.
//!
//! Security stance: run as root or as the mailbox's owner; refuses symbolic links and
//! mailboxes with several hard links; the archive is created mode 0600 for the mailbox owner.

use agents::local::{lock_exclusive, DotLock};
use flate2::write::GzEncoder;
use flate2::Compression;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::{fchown, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Options {
    pub mbox: PathBuf,
    /// Messages dated at or before `now - older_than` are archived.
    pub older_than: u64,
    pub now: u64,
    /// Final path of the `.mbox.gz` archive (its directory is created if missing).
    pub archive: PathBuf,
    pub lock_timeout: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub archived: u64,
    pub kept: u64,
    /// Set when something was archived.
    pub archive: Option<PathBuf>,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Set when the archive could not be given to the mailbox's owner (we are neither root
    /// nor that user): it then belongs to us, which the operator must know and fix.
    pub owner_warning: Option<String>,
}

/// Gives `path` (already opened as `file` when given) to `uid:gid`; on failure, the
/// warning to report, unless it is ours already (nothing to give away then).
pub(crate) fn give_to_owner(
    file: Option<&File>,
    path: &Path,
    uid: u32,
    gid: u32,
) -> Option<String> {
    let done = match file {
        Some(f) => fchown(f, Some(uid), Some(gid)),
        None => std::os::unix::fs::chown(path, Some(uid), Some(gid)),
    };
    let e = done.err()?;
    let now = fs::metadata(path).ok()?;
    if now.uid() == uid && now.gid() == gid {
        return None;
    }
    Some(format!(
        "{} stays owned by uid {} gid {} (the mailbox is uid {uid} gid {gid}): cannot give it away: {e}; run as root or as the mailbox's owner, or chown it",
        path.display(),
        now.uid(),
        now.gid()
    ))
}

/// Archives old messages of one mbox; see the module doc for the protocol.
pub fn archive(opts: &Options) -> io::Result<Outcome> {
    let deadline = Instant::now() + opts.lock_timeout;
    let _dotlock = DotLock::acquire(&opts.mbox, deadline)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&opts.mbox)?;
    lock_exclusive(&file, deadline)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.nlink() > 1 {
        return Err(io::Error::other(
            "not a regular file with a single link; not touched",
        ));
    }
    let dir = opts.mbox.parent().unwrap_or(Path::new("."));
    let archive_dir = opts.archive.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(archive_dir)?;
    let (kept_path, archive_tmp) = temp_paths(opts);
    let temps = Temps(vec![kept_path.clone(), archive_tmp.clone()]);
    let kept_file = create_private(&kept_path)?;
    let archive_file = create_private(&archive_tmp)?;
    let mut split = Split {
        cutoff: opts.now.saturating_sub(opts.older_than),
        old: GzEncoder::new(io::BufWriter::new(archive_file), Compression::default()),
        new: io::BufWriter::new(kept_file),
        outcome: Outcome {
            bytes_before: meta.len(),
            ..Default::default()
        },
    };
    split.run(BufReader::with_capacity(1 << 20, &file))?;
    let Split {
        old,
        new,
        mut outcome,
        ..
    } = split;
    if outcome.archived == 0 {
        return Ok(outcome); // nothing old: the mailbox is left exactly as it was
    }
    let archive_file = old.finish()?.into_inner().map_err(|e| e.into_error())?;
    // Without the privilege to give it away, the archive stays the caller's: said, not hidden.
    outcome.owner_warning =
        give_to_owner(Some(&archive_file), &archive_tmp, meta.uid(), meta.gid()).map(|w| {
            w.replace(
                &archive_tmp.display().to_string(),
                &opts.archive.display().to_string(),
            )
        });
    archive_file.sync_all()?;
    fs::rename(&archive_tmp, &opts.archive)?;
    File::open(archive_dir)?.sync_all()?;
    let kept_file = new.into_inner().map_err(|e| e.into_error())?;
    set_owner_and_mode(&kept_file, meta.uid(), meta.gid(), meta.mode() & 0o7777)?;
    kept_file.sync_all()?;
    outcome.bytes_after = kept_file.metadata()?.len();
    fs::rename(&kept_path, &opts.mbox)?;
    File::open(dir)?.sync_all()?;
    temps.forget();
    outcome.archive = Some(opts.archive.clone());
    Ok(outcome)
    // `file` closes here (fcntl lock released), then `_dotlock` is removed.
}

/// The temp files beside the mailbox (what is kept) and beside the archive (what leaves),
/// named after this process so two runs never share one.
fn temp_paths(opts: &Options) -> (PathBuf, PathBuf) {
    let pid = std::process::id();
    let name = |path: &Path| {
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let dir = opts.mbox.parent().unwrap_or(Path::new("."));
    let archive_dir = opts.archive.parent().unwrap_or(Path::new("."));
    (
        dir.join(format!(".{}.archiving.{pid}", name(&opts.mbox))),
        archive_dir.join(format!(".{}.tmp.{pid}", name(&opts.archive))),
    )
}

/// Temp files removed on any early return.
struct Temps(Vec<PathBuf>);

impl Temps {
    fn forget(mut self) {
        self.0.clear();
    }
}

impl Drop for Temps {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn set_owner_and_mode(file: &File, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    // fchown fails without privilege when the owner differs; then the caller is the owner
    // and nothing needs changing.
    if let Err(e) = fchown(file, Some(uid), Some(gid)) {
        let meta = file.metadata()?;
        if meta.uid() != uid || meta.gid() != gid {
            return Err(e);
        }
    }
    file.set_permissions(fs::Permissions::from_mode(mode))
}

struct Split<A: Write, K: Write> {
    cutoff: u64,
    old: A,
    new: K,
    outcome: Outcome,
}

impl<A: Write, K: Write> Split<A, K> {
    /// Streams the mbox: a message starts at a `From ` line at the top or after an empty line.
    fn run(&mut self, mut reader: impl BufRead) -> io::Result<()> {
        let mut line = Vec::new();
        let mut previous_empty = true;
        let mut to_archive = false;
        let mut first = true;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            if previous_empty && line.starts_with(b"From ") {
                to_archive = separator_time(&line).is_some_and(|t| t <= self.cutoff);
                match to_archive {
                    true => self.outcome.archived += 1,
                    false => self.outcome.kept += 1,
                }
            } else if first {
                self.outcome.kept += 1; // not an mbox start: keep whatever it is
            }
            first = false;
            previous_empty = line == b"\n" || line == b"\r\n";
            if to_archive {
                self.old.write_all(&line)?;
            } else {
                self.new.write_all(&line)?;
            }
        }
    }
}

/// The date of a `From sender Tue Mar  5 07:08:09 2024` line (UTC, as our agent writes it),
/// as Unix seconds. The last five words are the date, whatever the sender looks like.
pub fn separator_time(line: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let words: Vec<&str> = text.split_whitespace().collect();
    let date = words.get(words.len().checked_sub(5)?..)?.join(" ");
    let t = chrono::NaiveDateTime::parse_from_str(&date, "%a %b %d %H:%M:%S %Y").ok()?;
    u64::try_from(t.and_utc().timestamp()).ok()
}

pub mod maildir;

#[cfg(test)]
mod tests;
