//! User and group names ↔ ids from the system databases, and the two repairs `check --fix`
//! makes (owner, mode) done without following symbolic links.

use std::fs::{OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{fchown, lchown, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// uid and primary gid of a user name.
pub fn user(name: &str) -> Option<(u32, u32)> {
    let user = sys::user_by_name(name).ok().flatten()?;
    Some((user.uid, user.gid))
}

/// gid of a group name.
pub fn group(name: &str) -> Option<u32> {
    sys::group_by_name(name).ok().flatten()
}

/// The name of a uid (`uid<N>` without a passwd entry).
pub fn user_name(uid: u32) -> String {
    submit::users::login_name(uid)
}

/// The name of a gid, or the number.
pub fn group_name(gid: u32) -> String {
    sys::group_name(gid)
        .ok()
        .flatten()
        .unwrap_or_else(|| gid.to_string())
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
        if let Some((uid, gid)) = owner {
            fchown(&file, Some(uid), Some(gid))?;
        }
        if let Some(mode) = mode {
            file.set_permissions(Permissions::from_mode(mode))?;
        }
        return Ok(());
    }
    if let Some((uid, gid)) = owner {
        lchown(path, Some(uid), Some(gid))?;
    }
    if let Some(mode) = mode {
        if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
            return Err(io::Error::other("became a symbolic link; not changed"));
        }
        std::fs::set_permissions(path, Permissions::from_mode(mode))?;
    }
    Ok(())
}
