//! The MTA-STS policy cache on disk (`$data_directory/mta-sts/DOMAIN`), so a restart keeps
//! the policies learned (RFC 8461 3.3 and 10.2: an attacker who blocks the policy host
//! after a restart must not be able to switch a cached policy off).
//!
//! File format (one file per domain, written to a temporary name, fsynced and renamed):
//! ```text
//! id 20261201T000000
//! expires 1796150000          (Unix seconds: fetch time + max_age)
//!
//! version: STSv1              (the policy text as fetched)
//! …
//! ```
//! Invariants: a file that cannot be read or parsed is ignored (the policy is fetched
//! again); an expired entry is never used and is removed when seen; domain names that are
//! not plain DNS names never become file names. Security stance: the directory is ours
//! (mode 0700); the contents are re-parsed as untrusted policy text.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::policy::Policy;

/// One cached policy read back from disk.
pub(crate) struct Entry {
    pub domain: String,
    pub id: String,
    pub policy: Policy,
    /// How long it is still good for.
    pub remaining: Duration,
}

/// The cache directory.
pub(crate) struct DiskCache {
    dir: PathBuf,
}

impl DiskCache {
    pub fn new(dir: PathBuf) -> DiskCache {
        DiskCache { dir }
    }

    /// Every unexpired, readable entry; expired files are removed.
    pub fn load(&self) -> Vec<Entry> {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut entries = Vec::new();
        for item in listing.flatten() {
            let name = item.file_name().to_string_lossy().to_string();
            if !plain_domain(&name) {
                continue;
            }
            match read_entry(&item.path(), &name, now) {
                Some(entry) => entries.push(entry),
                None => {
                    let _ = fs::remove_file(item.path());
                }
            }
        }
        entries
    }

    /// Writes the entry of `domain` (failures are logged: the memory cache still works).
    pub fn save(&self, domain: &str, id: &str, text: &str, max_age: Duration) {
        if !plain_domain(domain) {
            return;
        }
        let expires = SystemTime::now() + max_age;
        let unix = expires
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let content = format!("id {id}\nexpires {unix}\n\n{text}");
        if let Err(e) = self.write(domain, content.as_bytes()) {
            tracing::warn!(target: "smtp", "warning: MTA-STS policy of {domain}: cannot save it in {}: {e}", self.dir.display());
        }
    }

    fn write(&self, domain: &str, content: &[u8]) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let temp = self.dir.join(format!(".{domain}.tmp"));
        let mut file = fs::File::create(&temp)?;
        file.write_all(content)?;
        file.sync_all()?;
        fs::rename(&temp, self.dir.join(domain))?;
        fs::File::open(&self.dir)?.sync_all()
    }
}

fn read_entry(path: &Path, domain: &str, now: SystemTime) -> Option<Entry> {
    let content = fs::read_to_string(path).ok()?;
    let (head, text) = content.split_once("\n\n")?;
    let mut id = None;
    let mut expires = None;
    for line in head.lines() {
        match line.split_once(' ') {
            Some(("id", value)) => id = Some(value.to_string()),
            Some(("expires", value)) => expires = value.parse::<u64>().ok(),
            _ => {}
        }
    }
    let expires = UNIX_EPOCH + Duration::from_secs(expires?);
    let remaining = expires.duration_since(now).ok().filter(|d| !d.is_zero())?;
    let policy = Policy::parse(text).ok()?;
    Some(Entry {
        domain: domain.to_string(),
        id: id?,
        policy,
        remaining,
    })
}

/// A lower-case DNS name (letters, digits, `-`, `.`), not starting with a dot.
fn plain_domain(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = "version: STSv1\nmode: enforce\nmx: *.example.net\nmax_age: 86400\n";

    #[test]
    fn saved_policies_come_back_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskCache::new(dir.path().join("mta-sts"));
        cache.save("example.net", "abc", POLICY, Duration::from_secs(86400));
        cache.save("gone.example", "1", POLICY, Duration::ZERO);
        cache.save("../evil", "1", POLICY, Duration::from_secs(60));
        let entries = cache.load();
        assert_eq!(entries.len(), 1);
        let entry = &entries[0];
        assert_eq!(
            (entry.domain.as_str(), entry.id.as_str()),
            ("example.net", "abc")
        );
        assert_eq!(entry.policy.mx, ["*.example.net"]);
        assert!(entry.remaining > Duration::from_secs(86000));
        assert!(
            !dir.path().join("mta-sts/gone.example").exists(),
            "expired file removed"
        );
        assert!(!dir.path().join("evil").exists());
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join("example.net"),
            "id x\nexpires soon\n\nversion: STSv1\n",
        )
        .unwrap();
        assert!(DiskCache::new(dir.path().to_path_buf()).load().is_empty());
    }
}
