//! Segment files: `store/NNNNNNNNNNNN.seg`, append-only, named by a growing number.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub fn path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.seg"))
}

/// Segment numbers present in `dir`, oldest first. Other names are ignored.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut numbers = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".seg") {
            if let Ok(n) = stem.parse::<u64>() {
                numbers.push(n);
            }
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// Creates a new, empty segment and makes its directory entry durable before anything is
/// appended: a record in a file whose name could vanish in a crash is not durable.
pub fn create(dir: &Path, number: u64, dsync: bool) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(dsync_flag(dsync))
        .open(path(dir, number))?;
    sync_dir(dir)?;
    Ok(file)
}

/// [`create`], then fills the segment with `len` written zeros and fsyncs it once.
///
/// Why written zeros, not `fallocate`: on ext4 and XFS an fallocated range is "unwritten";
/// the first write into each extent converts it, and that conversion is metadata the next
/// `fdatasync` must commit through the journal — the cost this avoids. Over blocks already
/// written, with the file size unchanged, `fdatasync` has only data to flush (the mtime it
/// skips). A zero tail reads as the end of the data (see `recovery.rs`), and segments are
/// never reused, so nothing stale can sit behind it.
pub fn create_zeroed(dir: &Path, number: u64, len: u64, dsync: bool) -> io::Result<File> {
    // Without O_DSYNC while zeroing (one sync at the end, not one per chunk).
    let file = create(dir, number, false)?;
    let zeros = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = zeros.len().min((len - at) as usize);
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    file.sync_all()?;
    if dsync {
        drop(file);
        return open_rw(dir, number, true);
    }
    Ok(file)
}

pub fn open_rw(dir: &Path, number: u64, dsync: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(dsync_flag(dsync))
        .open(path(dir, number))
}

/// `O_DSYNC`: every write returns only once its data is durable, as if followed by
/// `fdatasync` (one system call per batch instead of two).
fn dsync_flag(dsync: bool) -> i32 {
    if dsync {
        libc::O_DSYNC
    } else {
        0
    }
}

pub fn open_ro(dir: &Path, number: u64) -> io::Result<File> {
    File::open(path(dir, number))
}

pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes all of `buf` at `offset`.
pub fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    file.write_all_at(buf, offset)
}

/// fdatasync: the data and the size, not the timestamps (enough to read the records back).
pub fn data_sync(file: &File) -> io::Result<()> {
    file.sync_data()
}

pub fn read_at(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Writes `bytes` to `dir/name` so that a crash leaves either no file or the whole file:
/// a temporary name, fsync, rename, fsync of the directory (which is created if missing).
pub fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    create_private_dir(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        io::Write::write_all(&mut file, bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(name))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        // Leave no half-written temporary behind (a full disk is the usual cause).
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` as 0700 if missing (its parents with the default mode): it holds mail, and
/// a tool that opens the store before `serve` ever ran must not leave it readable by other
/// local users (the umask would otherwise decide, and `check` flags anything looser).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        other => other,
    }
}

/// Free bytes for unprivileged writers on the file system holding `dir`.
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    sys::free_space(dir).map(|free| free.bytes)
}
