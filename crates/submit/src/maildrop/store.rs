//! Atomic writing, careful reading and listing of maildrop files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use envelope::QueueId;

use super::format::{decode, encode};
use super::{MaildropError, MaildropFile};

/// Names starting with this are unfinished writes; readers never look inside them.
pub const TEMP_PREFIX: &str = "tmp.";
/// Largest file [`read`] accepts: the default `maildrop_size_limit`, so no file that passed
/// the guard is refused. The daemon may pass a tighter cap to [`read_capped`].
pub const DEFAULT_READ_CAP: u64 = 256 << 20;
/// Mode of a finished maildrop file. Readable by others because the daemon (mail_owner) must
/// read files owned by every submitting user; `maildrop/` itself (0730 in a system install,
/// 0700 in the embedded default) is what keeps other users out.
const FILE_MODE: u32 = 0o644;

/// Points in [`write_with`] at which the caller is told what exists on disk, and may stop the
/// write by returning an error (the writer then removes what it created).
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// This temp file is about to be created. Announced before the create, so that a watchdog
    /// firing at any later instant knows the name to remove.
    Temp(&'a Path),
    /// The complete, fsynced file is now also visible under its final name.
    Linked(&'a Path),
    /// The directory is synced: the file survives a crash. Last chance to refuse.
    Durable,
}

/// Observer of a write's progress: the submit watchdog records what to remove if it fires;
/// tests inject failures.
pub trait WriteHooks {
    fn checkpoint(&self, stage: Stage<'_>) -> Result<(), MaildropError>;
}

impl WriteHooks for () {
    fn checkpoint(&self, _: Stage<'_>) -> Result<(), MaildropError> {
        Ok(())
    }
}

/// Writes `drop` into the maildrop directory `dir`; returns the queue ID the file got.
///
/// That is `drop.id` unless another file already has that name (two processes generated the
/// same ID), in which case a fresh ID is used: an existing file is never replaced. On any error
/// nothing is left behind under either name.
pub fn write(dir: &Path, drop: &MaildropFile) -> Result<QueueId, MaildropError> {
    write_with(dir, drop, &())
}

/// [`write`](fn@write) with progress checkpoints.
pub fn write_with(
    dir: &Path,
    drop: &MaildropFile,
    hooks: &dyn WriteHooks,
) -> Result<QueueId, MaildropError> {
    let bytes = encode(drop)?;
    let (file, temp) = create_temp(dir, hooks)?;
    fill(&file, &temp.path, &bytes)?;
    let (id, published) = link_final(dir, &temp.path, drop.id)?;
    hooks.checkpoint(Stage::Linked(&published.path))?;
    sync_directory(dir, &file)?;
    hooks.checkpoint(Stage::Durable)?;
    published.keep();
    // Dropping `temp` unlinks the temp name. That unlink need not be durable: after a crash
    // the leftover tmp.* is only a second link to a complete file, and stale cleanup takes it.
    Ok(id)
}

/// A path removed when dropped, unless [`RemoveOnDrop::keep`] was called: every early return
/// and panic between create and publish cleans up by construction.
struct RemoveOnDrop {
    path: PathBuf,
    armed: bool,
}

impl RemoveOnDrop {
    fn new(path: PathBuf) -> Self {
        RemoveOnDrop { path, armed: true }
    }
    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn create_temp(dir: &Path, hooks: &dyn WriteHooks) -> Result<(File, RemoveOnDrop), MaildropError> {
    for _ in 0..8 {
        let name = format!("{TEMP_PREFIX}{}.{}", std::process::id(), fastrand::u64(..));
        let path = dir.join(name);
        hooks.checkpoint(Stage::Temp(&path))?;
        // create_new = O_CREAT|O_EXCL: never follows a planted symlink, never reuses a file.
        let opened = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path);
        match opened {
            Ok(file) => {
                let temp = RemoveOnDrop::new(path);
                // The umask may have narrowed the mode; the daemon must be able to read it.
                file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
                    .map_err(|e| MaildropError::io("chmod", &temp.path, e))?;
                return Ok((file, temp));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MaildropError::io("create a file in", dir, e)),
        }
    }
    Err(MaildropError::io(
        "create a unique temp file in",
        dir,
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

fn fill(mut file: &File, path: &Path, bytes: &[u8]) -> Result<(), MaildropError> {
    file.write_all(bytes)
        .map_err(|e| MaildropError::io("write", path, e))?;
    // The data must be on disk before the file gets a name readers act on (DESIGN invariant 1):
    // otherwise a crash could leave a ready name pointing at a hole.
    file.sync_data()
        .map_err(|e| MaildropError::io("fsync", path, e))
}

/// Gives the temp file its final name with link(2), which fails instead of replacing.
fn link_final(
    dir: &Path,
    temp: &Path,
    mut id: QueueId,
) -> Result<(QueueId, RemoveOnDrop), MaildropError> {
    for _ in 0..8 {
        let path = dir.join(id.to_string());
        match fs::hard_link(temp, &path) {
            Ok(()) => return Ok((id, RemoveOnDrop::new(path))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => id = QueueId::generate(),
            Err(e) => return Err(MaildropError::io("link", path, e)),
        }
    }
    Err(MaildropError::io(
        "find a free queue ID in",
        dir,
        io::Error::from(io::ErrorKind::AlreadyExists),
    ))
}

/// Makes the new directory entry durable: a file fsync does not cover the name pointing at it.
fn sync_directory(dir: &Path, file: &File) -> Result<(), MaildropError> {
    match File::open(dir) {
        Ok(handle) => handle
            .sync_all()
            .map_err(|e| MaildropError::io("fsync directory", dir, e)),
        Err(e) if super::is_permission_denied(&e) => sync_file_system(dir, file),
        Err(e) => Err(MaildropError::io("open directory", dir, e)),
    }
}

/// The setgid helper may write but not read `maildrop/` (mode 0730), so it cannot open the
/// directory to fsync it. syncfs(2) flushes the whole file system, entry included: slower,
/// equally durable, and maildrop traffic is small.
fn sync_file_system(dir: &Path, file: &File) -> Result<(), MaildropError> {
    sys::sync_file_system(file).map_err(|e| MaildropError::io("sync the file system of", dir, e))
}

/// Reads and verifies one maildrop file, refusing anything over [`DEFAULT_READ_CAP`].
pub fn read(path: &Path) -> Result<MaildropFile, MaildropError> {
    read_capped(path, DEFAULT_READ_CAP)
}

/// Reads and verifies one maildrop file of at most `cap` bytes.
///
/// SECURITY: the daemon reads files other users put there. A symlink is not followed (it could
/// point at a file only the daemon may read), a FIFO or device is refused without blocking, and
/// the size is capped before anything is allocated. All of these are [`MaildropError::Corrupt`].
pub fn read_capped(path: &Path, cap: u64) -> Result<MaildropFile, MaildropError> {
    let id = id_of(path).ok_or_else(|| corrupt("file name is not a queue ID"))?;
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(corrupt("symbolic link"));
        }
        Err(e) => return Err(MaildropError::io("open", path, e)),
    };
    let meta = file
        .metadata()
        .map_err(|e| MaildropError::io("stat", path, e))?;
    if !meta.is_file() {
        return Err(corrupt("not a regular file"));
    }
    if meta.len() > cap {
        return Err(corrupt(format!(
            "{} bytes, over the cap of {cap}",
            meta.len()
        )));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| MaildropError::io("read", path, e))?;
    if bytes.len() as u64 > cap {
        return Err(corrupt("grew over the size cap while being read"));
    }
    decode(id, &bytes)
}

fn corrupt(reason: impl Into<String>) -> MaildropError {
    MaildropError::Corrupt(reason.into())
}

/// The queue ID a file name stands for, only in its canonical spelling.
fn id_of(path: &Path) -> Option<QueueId> {
    let name = path.file_name()?.to_str()?;
    QueueId::parse(name)
        .ok()
        .filter(|id| id.to_string() == name)
}

/// What [`scan`] found in `maildrop/`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MaildropScan {
    /// Finished files, oldest queue ID first.
    pub ready: Vec<(QueueId, PathBuf)>,
    /// Names that are neither `tmp.*` nor queue IDs: the daemon moves them to `corrupt/`.
    pub foreign: Vec<PathBuf>,
}

/// Lists `dir` with one readdir: ready files sorted by ID, foreign names apart, `tmp.*` skipped.
pub fn scan(dir: &Path) -> io::Result<MaildropScan> {
    let mut found = MaildropScan::default();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_temp = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        match id_of(&path) {
            _ if is_temp => {}
            Some(id) => found.ready.push((id, path)),
            None => found.foreign.push(path),
        }
    }
    found.ready.sort_unstable_by_key(|(id, _)| *id);
    found.foreign.sort_unstable();
    Ok(found)
}

/// The ready files of [`scan`] (sorted by queue ID), for callers that handle foreign names
/// elsewhere.
pub fn ready_files(dir: &Path) -> io::Result<Vec<(QueueId, PathBuf)>> {
    Ok(scan(dir)?.ready)
}

/// `tmp.*` files whose last change is more than `older_than` ago. Pass at least twice
/// `submit_timeout`: no live writer keeps a temp file longer than that, so these are crash
/// leftovers the caller may remove.
pub fn stale_temp_files(dir: &Path, older_than: Duration) -> io::Result<Vec<PathBuf>> {
    let cutoff = SystemTime::now().checked_sub(older_than);
    let mut stale = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if !is_temp {
            continue;
        }
        let modified = entry.metadata().and_then(|m| m.modified());
        // A file gone meanwhile (its writer finished) is simply not stale.
        if let (Ok(modified), Some(cutoff)) = (modified, cutoff) {
            if modified < cutoff {
                stale.push(entry.path());
            }
        }
    }
    stale.sort_unstable();
    Ok(stale)
}

#[cfg(test)]
mod tests;
