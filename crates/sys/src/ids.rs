//! The process's own ids, and Linux's per-thread file-system ids.

use nix::unistd::{self, Gid, Uid};

/// The real uid: who started this process.
pub fn real_uid() -> u32 {
    unistd::getuid().as_raw()
}

/// The effective uid: whose rights this process has.
pub fn effective_uid() -> u32 {
    unistd::geteuid().as_raw()
}

/// The effective gid.
pub fn effective_gid() -> u32 {
    unistd::getegid().as_raw()
}

/// True when this process runs with other rights than its caller's (setuid or setgid).
pub fn is_setid() -> bool {
    unistd::getuid() != unistd::geteuid() || unistd::getgid() != unistd::getegid()
}

/// setfsuid(2): sets this thread's file-system uid and returns the previous one. It reports
/// no errors: an id it refuses (or `u32::MAX`, never valid) leaves the id unchanged, so
/// `set_fs_uid(u32::MAX)` reads the current one and is how a change is verified.
pub fn set_fs_uid(uid: u32) -> u32 {
    unistd::setfsuid(Uid::from_raw(uid)).as_raw()
}

/// setfsgid(2), as [`set_fs_uid`] for the group.
pub fn set_fs_gid(gid: u32) -> u32 {
    unistd::setfsgid(Gid::from_raw(gid)).as_raw()
}
