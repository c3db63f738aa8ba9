//! Harness of the small-queue-disk tests: the queue directory on a size-limited tmpfs
//! (root only; a test skips with one line otherwise), filled to the last page on demand.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A size-limited tmpfs, unmounted on drop (lazily if still busy).
pub struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`16m`) on `dir`; Err(why) if not root or the mount fails.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        if !crate::common::is_root() {
            return Err("not running as root".into());
        }
        fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Writes `path` page by page until the file system holding it is full.
pub fn fill(path: &Path) {
    let mut f = fs::File::create(path).expect("filler");
    while f.write_all(&[0u8; 4096]).is_ok() {}
    let _ = f.sync_all();
}
