//! Maildir delivery (when `home_mailbox` ends in `/`, or for a `/dir/` alias target): one
//! file per message, so no locking is needed.
//!
//! The protocol, and why each step: write the message into `tmp/` under a name no other
//! delivery can pick (`time.M<micros>P<pid>Q<counter>.<host>`), fsync it so its bytes are on
//! disk, link it into `new/` (link fails rather than overwrite, unlike rename), remove the
//! `tmp/` name, then fsync `new/` so the entry itself survives a crash. Only then is the
//! delivery reported. A crash earlier leaves at most a stray file in `tmp/`, which mail
//! readers ignore and clean up.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::fsutil::{ensure_dir, fsync_dir, remove_quietly};

/// Delivery counter of this process, the `Q` part of unique names.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Delivers `content` (trace headers + message) into the Maildir at `root`, creating it and
/// its `tmp`, `new` and `cur` directories as needed. Returns the final path.
pub(crate) fn deliver(root: &Path, hostname: &str, content: &[u8]) -> io::Result<PathBuf> {
    for sub in ["tmp", "new", "cur"] {
        ensure_dir(&root.join(sub), 0o700)?;
    }
    let (tmp_path, name) = write_tmp(root, hostname, content)?;
    let new_path = root.join("new").join(&name);
    let moved = fs::hard_link(&tmp_path, &new_path).or_else(|e| match e.raw_os_error() {
        // Some file systems (FAT, some FUSE) have no hard links: rename is second best.
        Some(libc::EPERM) | Some(libc::ENOTSUP) => fs::rename(&tmp_path, &new_path),
        _ => Err(e),
    });
    if let Err(e) = moved {
        remove_quietly(&tmp_path);
        return Err(e);
    }
    remove_quietly(&tmp_path);
    // The new/ entry is what mail readers see; it must be durable before we say "delivered".
    fsync_dir(&root.join("new"))?;
    Ok(new_path)
}

/// Writes and fsyncs the message under a fresh unique name in `tmp/`.
fn write_tmp(root: &Path, hostname: &str, content: &[u8]) -> io::Result<(PathBuf, String)> {
    for _ in 0..100 {
        let name = unique_name(hostname);
        let path = root.join("tmp").join(&name);
        let mut file = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let written = file.write_all(content).and_then(|()| file.sync_all());
        if let Err(e) = written {
            remove_quietly(&path);
            return Err(e);
        }
        return Ok((path, name));
    }
    Err(io::Error::other("cannot find a unique file name in tmp/"))
}

/// `seconds.M<micros>P<pid>Q<counter>.<host>`, the name recommended by the Maildir spec; a
/// `/` or `:` in the host name is written as `\057` / `\072` as that spec asks.
fn unique_name(hostname: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let host: String = hostname
        .chars()
        .map(|c| match c {
            '/' => "\\057".to_string(),
            ':' => "\\072".to_string(),
            c if c.is_control() => "_".to_string(),
            c => c.to_string(),
        })
        .collect();
    let host = if host.is_empty() {
        "localhost".into()
    } else {
        host
    };
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        host
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivers_into_new_and_leaves_tmp_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("Maildir");
        let a = deliver(&root, "mx.example.org", b"Subject: a\n\nA\n").unwrap();
        let b = deliver(&root, "mx.example.org", b"Subject: b\n\nB\n").unwrap();
        assert_ne!(a, b);
        assert_eq!(fs::read(&a).unwrap(), b"Subject: a\n\nA\n");
        assert_eq!(fs::read_dir(root.join("new")).unwrap().count(), 2);
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        assert!(root.join("cur").is_dir());
    }

    #[test]
    fn unique_names_escape_the_host() {
        let name = unique_name("a/b:c");
        assert!(name.ends_with(".a\\057b\\072c"), "{name}");
        assert!(name.contains(&format!("P{}Q", std::process::id())));
        assert_ne!(unique_name("h"), unique_name("h"));
    }
}
