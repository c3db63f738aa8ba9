//! Who is who: passwd and group look-ups (the reentrant `getpwnam_r` family, safe to call
//! from many delivery threads at once) and the per-thread privilege switch used when the
//! agent runs as root.
//!
//! Why `setfsuid`/`setfsgid` and not `seteuid`: the daemon is multi-threaded and glibc
//! applies `seteuid` to every thread of the process, so one delivery dropping privileges
//! would change the identity of all others. The file-system ids are per thread on Linux,
//! and the kernel drops the file capabilities (DAC override, chown, …) while they are not 0,
//! so files are opened and created with exactly the user's rights.

use std::ffi::{CStr, CString};
use std::io;
use std::path::PathBuf;

/// A passwd entry, the parts delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// True when the process has root's effective uid, and so must choose whose rights a
/// delivery gets.
pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Looks a user up by name; `Ok(None)` when there is no such user.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<Account>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    lookup_passwd(|pwd, buf, len, result| {
        // SAFETY: every pointer is valid for the call; `buf` holds `len` bytes.
        unsafe { libc::getpwnam_r(c_name.as_ptr(), pwd, buf, len, result) }
    })
}

/// Looks a user up by uid; `Ok(None)` when no passwd entry has it.
pub(crate) fn user_by_uid(uid: u32) -> io::Result<Option<Account>> {
    lookup_passwd(|pwd, buf, len, result| {
        // SAFETY: every pointer is valid for the call; `buf` holds `len` bytes.
        unsafe { libc::getpwuid_r(uid, pwd, buf, len, result) }
    })
}

/// Runs one `getpw*_r` call, growing the buffer on ERANGE.
fn lookup_passwd<F>(mut call: F) -> io::Result<Option<Account>>
where
    F: FnMut(
        *mut libc::passwd,
        *mut libc::c_char,
        libc::size_t,
        *mut *mut libc::passwd,
    ) -> libc::c_int,
{
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: an all-zero passwd is a valid value for a plain C struct of pointers/ints.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if result.is_null() {
            // Not found is rc 0 or one of ENOENT/ESRCH/EBADF/EPERM per getpwnam_r(3).
            return match rc {
                0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        // SAFETY: on success the string fields point into `buf`, NUL-terminated.
        let (name, home) = unsafe { (c_string(pwd.pw_name), c_string(pwd.pw_dir)) };
        return Ok(Some(Account {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
            home: PathBuf::from(home),
        }));
    }
}

/// Copies a C string that may be null.
///
/// # Safety
/// `p` is null or points to a NUL-terminated string.
unsafe fn c_string(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The gid of a group name, `Ok(None)` when there is no such group.
pub(crate) fn group_id(name: &str) -> io::Result<Option<u32>> {
    let Ok(c_name) = CString::new(name) else {
        return Ok(None);
    };
    let mut size = 1024usize;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        // SAFETY: an all-zero group struct is a valid plain C value.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; `buf` holds `buf.len()` bytes.
        let rc = unsafe {
            libc::getgrnam_r(
                c_name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && size < 1 << 20 {
            size *= 4;
            continue;
        }
        if result.is_null() {
            return match rc {
                0 | libc::ENOENT | libc::ESRCH | libc::EBADF | libc::EPERM => Ok(None),
                errno => Err(io::Error::from_raw_os_error(errno)),
            };
        }
        return Ok(Some(grp.gr_gid));
    }
}

/// While alive, this thread's file-system uid and gid are the account's: files are opened
/// with its rights and created owned by it. Dropping it restores the previous ids.
/// Only meaningful (and only constructed) when running as root.
pub(crate) struct FsIdentity {
    previous_uid: u32,
    previous_gid: u32,
}

impl FsIdentity {
    pub(crate) fn assume(account: &Account) -> io::Result<FsIdentity> {
        // gid first: changing it needs CAP_SETGID, which a non-zero fsuid would not remove,
        // but restoring in the opposite order keeps the pairs symmetric.
        // SAFETY: setfsgid/setfsuid only change this thread's credentials.
        let previous_gid = unsafe { libc::setfsgid(account.gid) } as u32;
        // SAFETY: as above.
        let previous_uid = unsafe { libc::setfsuid(account.uid) } as u32;
        let guard = FsIdentity {
            previous_uid,
            previous_gid,
        };
        // setfsuid reports no errors; an invalid id (-1) leaves it unchanged and returns the
        // current one, which is how the change is verified.
        // SAFETY: as above; -1 is never a valid id, so nothing changes.
        let (uid_now, gid_now) = unsafe { (libc::setfsuid(u32::MAX), libc::setfsgid(u32::MAX)) };
        if uid_now as u32 != account.uid || gid_now as u32 != account.gid {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("cannot switch to the rights of user {}", account.name),
            ));
        }
        Ok(guard)
    }
}

impl Drop for FsIdentity {
    fn drop(&mut self) {
        // SAFETY: restores this thread's own previous credentials.
        unsafe {
            libc::setfsuid(self.previous_uid);
            libc::setfsgid(self.previous_gid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_exists_and_nonsense_does_not() {
        let root = user_by_name("root").unwrap().expect("root in passwd");
        assert_eq!(root.uid, 0);
        assert_eq!(user_by_uid(0).unwrap().unwrap().name, "root");
        assert_eq!(user_by_name("no-such-user-mailroom-x").unwrap(), None);
        assert_eq!(user_by_name("nul\0byte").unwrap(), None);
        assert_eq!(group_id("no-such-group-mailroom-x").unwrap(), None);
    }

    #[test]
    fn fs_identity_is_restored() {
        if !running_as_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let Some(nobody) = user_by_name("nobody").unwrap() else {
            eprintln!("skipped: no user nobody");
            return;
        };
        {
            let _guard = FsIdentity::assume(&nobody).unwrap();
            // SAFETY: query only.
            assert_eq!(unsafe { libc::setfsuid(u32::MAX) } as u32, nobody.uid);
        }
        // SAFETY: query only.
        assert_eq!(unsafe { libc::setfsuid(u32::MAX) }, 0);
    }
}
