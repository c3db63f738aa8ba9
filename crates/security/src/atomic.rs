//! Replacing a small secret file so that a crash at any instant leaves either the old file or
//! the new one, never a torn or empty one, and never a moment where the secret is readable by
//! anyone but the modes we asked for. Also used for `postconf -e` edits of the configuration
//! file, which must be all-or-nothing for the same reason.

use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Owner and group to give the new file (`None` = whoever we are).
pub type Owner = Option<(u32, u32)>;

/// Writes `contents` to `path` by temp file + fsync + rename + fsync of the directory.
///
/// The temp file is created with `mode` already (`O_CREAT|O_EXCL`, then an explicit fchmod
/// so the umask cannot widen or narrow it), so the secret is never briefly world-readable.
/// The directory fsync makes the rename itself durable: without it a crash can bring back
/// the old file after we reported success.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32, owner: Owner) -> io::Result<()> {
    let dir = parent_dir(path);
    let (tmp_path, mut file) = create_temp(path, dir, mode)?;
    let written = (|| {
        file.set_permissions(Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            // Only when it differs: an unprivileged owner rewriting its own file must not
            // fail for want of the right to chown, and root keeps a root:group file's group.
            let made = file.metadata()?;
            if (made.uid(), made.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
        }
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp_path, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp_path);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}

/// An exclusive lock on the directory holding `path`, held until the returned file drops.
/// Serialises read-modify-write cycles (two `mailroom passwd add` at once, two daemons making
/// the self-signed pair) without leaving a lock file next to the secret.
pub fn lock_directory_of(path: &Path) -> io::Result<File> {
    let dir = File::open(parent_dir(path))?;
    dir.lock()?;
    Ok(dir)
}

/// The directory `path` lives in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A fresh `.<name>.<pid>.<nanos>.tmp` beside `path`; retried on the (unlikely) name clash.
fn create_temp(path: &Path, dir: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let mut attempt = 0u32;
    loop {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let tmp = dir.join(format!(
            ".{name}.{}.{nanos}.{attempt}.tmp",
            std::process::id()
        ));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_the_asked_mode_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "old").unwrap();
        write_atomic(&path, b"new", 0o600, None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "temp file left behind: {names:?}");
    }

    #[test]
    fn a_bare_file_name_lives_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("passwd")), Path::new("."));
        assert_eq!(parent_dir(Path::new("/etc/passwd")), Path::new("/etc"));
    }
}
