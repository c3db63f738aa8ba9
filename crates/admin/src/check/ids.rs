//! User and group names ↔ ids from the system databases, and the two repairs `check --fix`
//! makes (owner, mode) done without following symbolic links.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// uid and primary gid of a user name.
pub fn user(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 << 10];
    // SAFETY: passwd is plain old data; getpwnam_r fills it from `buf`.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: valid pointers and the buffer's real length.
    let rc = unsafe {
        libc::getpwnam_r(
            c.as_ptr(),
            &mut pw,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some((pw.pw_uid, pw.pw_gid))
}

/// gid of a group name.
pub fn group(name: &str) -> Option<u32> {
    let c = CString::new(name).ok()?;
    let mut buf = vec![0u8; 64 << 10];
    // SAFETY: group is plain old data; getgrnam_r fills it from `buf`.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers and the buffer's real length.
    let rc = unsafe {
        libc::getgrnam_r(
            c.as_ptr(),
            &mut gr,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut out,
        )
    };
    (rc == 0 && !out.is_null()).then_some(gr.gr_gid)
}

/// The name of a uid (`uid<N>` without a passwd entry).
pub fn user_name(uid: u32) -> String {
    submit::users::login_name(uid)
}

/// The name of a gid, or the number.
pub fn group_name(gid: u32) -> String {
    let mut buf = vec![0u8; 64 << 10];
    // SAFETY: as in `group`.
    let mut gr: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: valid pointers and the buffer's real length.
    let rc =
        unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), buf.len(), &mut out) };
    if rc == 0 && !out.is_null() && !gr.gr_name.is_null() {
        // SAFETY: gr_name points at a NUL-terminated string inside `buf`.
        return unsafe { CStr::from_ptr(gr.gr_name) }
            .to_string_lossy()
            .into_owned();
    }
    gid.to_string()
}

/// Sets owner and/or mode of `path`, refusing to follow a symbolic link: files and
/// directories are opened with `O_NOFOLLOW` and changed through the descriptor; anything
/// else (a socket) is changed with `lchown` and, after a fresh `lstat`, `chmod`.
pub fn repair(path: &Path, owner: Option<(u32, u32)>, mode: Option<u32>) -> io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if meta.file_type().is_symlink() {
        return Err(io::Error::other("is a symbolic link; not changed"));
    }
    if meta.is_file() || meta.is_dir() {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        let fd = file.as_raw_fd();
        if let Some((uid, gid)) = owner {
            // SAFETY: fd is open for the call.
            if unsafe { libc::fchown(fd, uid, gid) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(mode) = mode {
            // SAFETY: fd is open for the call.
            if unsafe { libc::fchmod(fd, mode) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        return Ok(());
    }
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    if let Some((uid, gid)) = owner {
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::lchown(c.as_ptr(), uid, gid) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    if let Some(mode) = mode {
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(io::Error::other("became a symbolic link; not changed"));
        }
        // SAFETY: valid NUL-terminated path.
        if unsafe { libc::chmod(c.as_ptr(), mode) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
