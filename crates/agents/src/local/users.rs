//! Who is who: passwd and group look-ups (`sys`'s, on the reentrant `getpwnam_r` family,
//! safe to call from many delivery threads at once) and the per-thread privilege switch used when the
//! agent runs as root.
//!
//! Why `setfsuid`/`setfsgid` and not `seteuid`: the daemon is multi-threaded and glibc
//! applies `seteuid` to every thread of the process, so one delivery dropping privileges
//! would change the identity of all others. The file-system ids are per thread on Linux,
//! and the kernel drops the file capabilities (DAC override, chown, …) while they are not 0,
//! so files are opened and created with exactly the user's rights.

use std::io;

/// A passwd entry, the parts delivery needs.
pub(crate) use sys::User as Account;

/// Look-ups by name and by uid; `Ok(None)` when there is no such user.
pub(crate) use sys::{user_by_name, user_by_uid};

/// True when the process has root's effective uid, and so must choose whose rights a
/// delivery gets.
pub(crate) fn running_as_root() -> bool {
    sys::effective_uid() == 0
}

/// The gid of a group name, `Ok(None)` when there is no such group.
pub(crate) fn group_id(name: &str) -> io::Result<Option<u32>> {
    sys::group_by_name(name)
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
        let previous_gid = sys::set_fs_gid(account.gid);
        let previous_uid = sys::set_fs_uid(account.uid);
        let guard = FsIdentity {
            previous_uid,
            previous_gid,
        };
        // setfsuid reports no errors; an invalid id (-1) leaves it unchanged and returns the
        // current one, which is how the change is verified.
        let (uid_now, gid_now) = (sys::set_fs_uid(u32::MAX), sys::set_fs_gid(u32::MAX));
        if uid_now != account.uid || gid_now != account.gid {
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
        sys::set_fs_uid(self.previous_uid);
        sys::set_fs_gid(self.previous_gid);
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
            assert_eq!(sys::set_fs_uid(u32::MAX), nobody.uid);
        }
        assert_eq!(sys::set_fs_uid(u32::MAX), 0);
    }
}
