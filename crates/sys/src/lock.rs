//! fcntl(2) record locks, the kind mail readers take on an mbox (std's `File::lock` is
//! `flock`, a different lock that MUAs do not see).

use std::fs::File;
use std::io;

use nix::fcntl::{fcntl, FcntlArg};

/// Tries once to take an exclusive write lock on the whole of `file`.
///
/// `open_file_description`: a Linux open-file-description lock (`F_OFD_SETLK`), which belongs
/// to this open file rather than to the process, so two threads exclude each other and closing
/// another descriptor of the file cannot drop it; it conflicts with the classic POSIX locks.
/// `false` takes a classic one (`F_SETLK`), for kernels without OFD locks (they answer
/// `EINVAL`). A lock held by someone else is `EAGAIN` or `EACCES`.
pub fn try_lock_record(file: &File, open_file_description: bool) -> io::Result<()> {
    let lock = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0, // to the end of the file, however it grows
        l_pid: 0, // must be 0 for OFD locks
    };
    let command = if open_file_description {
        FcntlArg::F_OFD_SETLK(&lock)
    } else {
        FcntlArg::F_SETLK(&lock)
    };
    fcntl(file, command).map(drop).map_err(crate::io_error)
}

/// Waits for a shared (read) open-file-description lock on the whole of `file`, as a mail
/// reader takes one: it waits while a writer holds its lock. Retries on EINTR.
pub fn read_lock_record_wait(file: &File) -> io::Result<()> {
    let lock = libc::flock {
        l_type: libc::F_RDLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    loop {
        match fcntl(file, FcntlArg::F_OFD_SETLKW(&lock)) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(crate::io_error(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_file_cannot_take_the_lock_until_the_first_closes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mbox");
        let open = || {
            File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .unwrap()
        };
        let first = open();
        try_lock_record(&first, true).unwrap();
        let second = open();
        let held = try_lock_record(&second, true).unwrap_err();
        assert!(matches!(
            held.raw_os_error(),
            Some(libc::EAGAIN | libc::EACCES)
        ));
        drop(first);
        try_lock_record(&second, true).unwrap();
    }
}
