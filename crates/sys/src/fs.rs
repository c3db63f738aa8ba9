//! File-system calls std lacks: free space, `syncfs`, FIFOs and the umask.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sys::stat::Mode;

/// Free bytes (for unprivileged users) and free inodes of a file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreeSpace {
    pub bytes: u64,
    /// `None` when the file system has no inode limit (btrfs, ZFS report zero inodes).
    pub inodes: Option<u64>,
}

/// statvfs(2) of the file system holding `path`. Counts what an unprivileged writer may
/// use (`f_bavail`, `f_favail`), not the blocks reserved for root: the queue's limits are
/// about the mail owner's room.
pub fn free_space(path: &Path) -> io::Result<FreeSpace> {
    let stats = nix::sys::statvfs::statvfs(path).map_err(crate::io_error)?;
    #[allow(clippy::useless_conversion)] // field widths differ between targets
    let (available, fragment, files, files_available) = (
        u64::from(stats.blocks_available()),
        u64::from(stats.fragment_size()),
        u64::from(stats.files()),
        u64::from(stats.files_available()),
    );
    Ok(FreeSpace {
        bytes: available.saturating_mul(fragment),
        inodes: (files > 0).then_some(files_available),
    })
}

/// statfs(2)'s `f_type` of the file system holding `path`: its kind as a magic number
/// (0xEF53 ext4, 0x01021994 tmpfs, …).
pub fn file_system_magic(path: &Path) -> io::Result<u64> {
    let stats = nix::sys::statfs::statfs(path).map_err(crate::io_error)?;
    #[allow(clippy::useless_conversion, clippy::unnecessary_cast)] // widths differ by target
    Ok(stats.filesystem_type().0 as u64)
}

/// Whether `path` is on an ext4 (or ext3) that has a journal: statfs says ext4, and the
/// kernel's jbd2 lists a journal for the block device holding it (`/proc/fs/jbd2/NAME-8`,
/// NAME from `/sys/dev/block/MAJOR:MINOR`). `false` when anything cannot be told (no such
/// device entry in a container, `/proc` not mounted): then nothing is assumed.
pub fn on_journaled_ext4(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    const EXT4_SUPER_MAGIC: u64 = 0xEF53;
    if file_system_magic(path).ok() != Some(EXT4_SUPER_MAGIC) {
        return false;
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let Ok(uevent) = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
    else {
        return false;
    };
    let Some(name) = uevent
        .lines()
        .find_map(|line| line.strip_prefix("DEVNAME="))
    else {
        return false;
    };
    // jbd2 names a journal after the device, with `/` (as in `mapper/x`) written as `!`.
    let prefix = format!("{}-", name.replace('/', "!"));
    std::fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
        entries
            .flatten()
            .any(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
    })
}

/// syncfs(2): flushes the whole file system holding `file`, directory entries included.
/// For a directory that can be written but not opened (so not fsynced itself).
pub fn sync_file_system(file: &File) -> io::Result<()> {
    nix::unistd::syncfs(file).map_err(crate::io_error)
}

/// mkfifo(3): creates a named pipe with `mode` (less the umask).
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    nix::unistd::mkfifo(path, Mode::from_bits_truncate(mode as libc::mode_t))
        .map_err(crate::io_error)
}

/// umask(2): sets the process's file-creation mask, returning the previous one.
pub fn set_umask(mask: u32) -> u32 {
    #[allow(clippy::useless_conversion)] // mode_t is narrower than u32 on some targets
    u32::from(nix::sys::stat::umask(Mode::from_bits_truncate(mask as libc::mode_t)).bits())
}

/// preadv2(2) with `RWF_NOWAIT`: fills `buf` from `offset` only from the page cache.
/// `Ok(false)` when some of it would have to wait for the disk (or the kernel or file
/// system cannot say without waiting): then nothing is promised about `buf`, and the caller
/// reads the ordinary, blocking way on a thread that may block. Lets an async task read a
/// record it just wrote without a hop to a blocking thread.
pub fn read_exact_at_nowait(file: &File, buf: &mut [u8], offset: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut done = 0usize;
    while done < buf.len() {
        let rest = &mut buf[done..];
        let iov = libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        };
        let Ok(at) = libc::off_t::try_from(offset + done as u64) else {
            return Ok(false);
        };
        // SAFETY: one iovec over the live, exclusively borrowed `rest`; the fd is borrowed
        // from `file`, so it stays open for the call; the kernel writes at most iov_len bytes.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL) => Ok(false),
                Some(libc::EINTR) => continue,
                _ => Err(e),
            };
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        done += n as usize;
    }
    Ok(true)
}

/// True if `fd` is the write end of a pipe or socket whose reader has gone (`mailq | head -1`
/// once `head` has exited): `poll` reports an error or hang-up on it. Never blocks; false for
/// files and terminals. Lets a listing that computes for a while before writing its next line
/// stop as soon as nobody will read it.
pub fn reader_gone(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd on the stack, count 1, timeout 0 (never blocks); `fd` is
    // borrowed, so it stays open for the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_range_is_read_without_waiting_and_a_short_file_is_an_error() {
        use std::io::Write;
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        // Just written: in the page cache. A file system without RWF_NOWAIT says "wait"
        // (false), never wrong bytes.
        let mut buf = vec![0u8; 12_000];
        if read_exact_at_nowait(&file, &mut buf, 5_000).unwrap() {
            assert_eq!(buf, bytes[5_000..17_000]);
        }
        let mut past = vec![0u8; 10];
        match read_exact_at_nowait(&file, &mut past, 19_995) {
            Ok(true) => panic!("read 10 bytes where 5 exist"),
            Ok(false) => {}
            Err(e) => assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof),
        }
    }

    #[test]
    fn a_pipe_whose_reader_has_gone_is_noticed_without_writing() {
        use std::os::fd::AsFd;
        let (reader, writer) = std::io::pipe().unwrap();
        assert!(
            !super::reader_gone(writer.as_fd()),
            "the reader is still there"
        );
        drop(reader);
        assert!(super::reader_gone(writer.as_fd()));
        let file = tempfile::tempfile().unwrap();
        assert!(
            !super::reader_gone(file.as_fd()),
            "a file has no reader to lose"
        );
    }

    #[test]
    fn free_space_of_a_directory_and_an_error_for_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_space(dir.path()).unwrap();
        assert!(free.bytes > 0);
        let missing = free_space(&dir.path().join("missing")).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn proc_is_recognised_by_its_magic() {
        assert_eq!(file_system_magic(Path::new("/proc")).unwrap(), 0x9fa0);
    }

    #[test]
    fn mkfifo_makes_a_fifo() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        mkfifo(&path, 0o600).unwrap();
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(
            mkfifo(&path, 0o600).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
    }
}
