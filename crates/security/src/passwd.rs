//! The SMTP AUTH password file (`smtpd_sasl_password_file`), managed with `mailroom passwd`.
//!
//! # Format
//! One user per line, `name:PHC-string`, where the PHC string is an argon2 hash such as
//! `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`. Blank lines and lines whose first
//! non-blank character is `#` are comments and survive every rewrite. A user name is 1 to 255
//! characters with no `:`, no white space and no control characters, and does not start with
//! `#`. A name appears at most once.
//!
//! # Invariants
//! * [`PasswordFile::load`] accepts a file only if every line parses: a bad line is an error
//!   naming the file and the 1-based line, never a silently skipped user.
//! * [`PasswordFile::add`] and [`PasswordFile::delete`] rewrite the whole file atomically (temp
//!   file + fsync + rename + fsync of the directory) under a lock on the directory, so a crash
//!   or a concurrent `mailroom passwd` never leaves a torn file or loses an update.
//! * The file is written with mode 0600 (0640 is kept if it was 0640, for a `root:group` file
//!   a daemon's group reads), and keeps its owner and group.
//!
//! # Security stance
//! The file is the operator's, trusted for its content; but [`PasswordFile::load`] refuses a
//! file that other users can read or anyone but its owner can write (group/other write or any
//! other-access bits), naming the fix, because such a file lets another local user add
//! themselves. Only hashes are stored. [`PasswordFile::verify`] runs one argon2 verification
//! whether or not the user exists, so the reply time does not reveal valid names; it costs tens
//! of milliseconds of CPU in a release build: call it from a blocking thread, never on an
//! async executor thread.

#[cfg(test)]
mod tests;

use crate::atomic;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Longest user name accepted (bytes).
pub const MAX_NAME_LEN: usize = 255;

/// Verified instead of a real hash when the user is unknown: the same algorithm and cost as
/// [`PasswordFile::add`] writes (argon2id, the crate's default parameters), so an unknown
/// name costs the same time as a wrong password. Its salt and output are random bytes, not
/// the hash of any chosen password: no password is known to match it.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$Ql2uXSEGmHO5ZV8cyGSCdQ$\
                          VjQ5jILHcRdAFUSIZoSwSxCmj3Sm/FkO3w3eUX46v6Y";

/// What went wrong reading or changing the password file.
#[derive(Debug, thiserror::Error)]
pub enum PasswdError {
    #[error("{}: cannot read: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: cannot write: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}, line {line}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{}: mode {mode:04o} lets other users read or change it; fix: chmod 600 {}", path.display(), path.display())]
    Permissions { path: PathBuf, mode: u32 },
    #[error("invalid user name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("empty password")]
    EmptyPassword,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The users of the password file and their argon2 hashes, as loaded at one moment.
/// Changes made later with [`PasswordFile::add`]/[`PasswordFile::delete`] need a new `load`.
#[derive(Clone, Default)]
pub struct PasswordFile {
    users: BTreeMap<String, PasswordHash>,
}

impl fmt::Debug for PasswordFile {
    // Names only: hashes do not belong in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PasswordFile {
    /// Reads and checks the file. A missing file is an empty set of users, not an error.
    pub fn load(path: &Path) -> Result<PasswordFile, PasswdError> {
        let Some((text, metadata)) = read(path)? else {
            return Ok(PasswordFile::default());
        };
        let mode = metadata.mode();
        if mode & 0o027 != 0 {
            return Err(PasswdError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o7777,
            });
        }
        let users = parse(path, &text)?
            .into_iter()
            .filter_map(|line| match line {
                Line::Entry { name, hash, .. } => Some((name, *hash)),
                Line::Comment(_) => None,
            })
            .collect();
        Ok(PasswordFile { users })
    }

    /// True if `user` exists and `password` is theirs. Runs one argon2 verification either way.
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let (hash, known) = match self.users.get(user) {
            Some(hash) => (hash, true),
            None => (dummy_hash(), false),
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok();
        matches && known
    }

    /// The user names, sorted.
    pub fn users(&self) -> Vec<String> {
        self.users.keys().cloned().collect()
    }

    /// True when the file has no users (or does not exist).
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Sets `user`'s password (adding the user, or replacing their hash in place), then
    /// rewrites the file atomically with mode 0600. Creates the file and its directory if
    /// missing. Fixes a too-open mode rather than refusing, since it rewrites the file anyway.
    pub fn add(path: &Path, user: &str, password: &str) -> Result<(), PasswdError> {
        check_name(user)?;
        if password.is_empty() {
            return Err(PasswdError::EmptyPassword);
        }
        let hash = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| PasswdError::Hash(e.to_string()))?;
        let write_error = |source| PasswdError::Write {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(atomic::parent_dir(path)).map_err(write_error)?;
        let _lock = atomic::lock_directory_of(path).map_err(write_error)?;
        let (mut lines, metadata) = read_lines(path)?;
        let entry = Line::Entry {
            raw: format!("{user}:{hash}"),
            name: user.to_string(),
            hash: Box::new(hash),
        };
        match lines
            .iter_mut()
            .find(|l| matches!(l, Line::Entry { name, .. } if name == user))
        {
            Some(existing) => *existing = entry,
            None => lines.push(entry),
        }
        write(path, &lines, metadata.as_ref())
    }

    /// Removes `user`. `Ok(false)` (and the file untouched) if there was no such user.
    pub fn delete(path: &Path, user: &str) -> Result<bool, PasswdError> {
        let _lock = match atomic::lock_directory_of(path) {
            Ok(lock) => lock,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => {
                return Err(PasswdError::Write {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let (mut lines, metadata) = read_lines(path)?;
        let before = lines.len();
        lines.retain(|l| !matches!(l, Line::Entry { name, .. } if name == user));
        if lines.len() == before {
            return Ok(false);
        }
        write(path, &lines, metadata.as_ref())?;
        Ok(true)
    }
}

/// Why `name` cannot be a user name, if it cannot.
pub fn check_name(name: &str) -> Result<(), PasswdError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("longer than 255 bytes")
    } else if name.contains(':') {
        Some("contains ':'")
    } else if name.chars().any(char::is_whitespace) {
        Some("contains white space")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.starts_with('#') {
        Some("starts with '#' (a comment)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(PasswdError::BadName {
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

/// One line of the file, kept verbatim so rewrites preserve comments and layout.
enum Line {
    Comment(String),
    Entry {
        raw: String,
        name: String,
        hash: Box<PasswordHash>,
    },
}

fn dummy_hash() -> &'static PasswordHash {
    static DUMMY: OnceLock<PasswordHash> = OnceLock::new();
    DUMMY.get_or_init(|| PasswordHash::new(DUMMY_HASH).expect("DUMMY_HASH is a PHC string"))
}

/// The file's text and metadata, or `None` if it does not exist.
fn read(path: &Path) -> Result<Option<(String, std::fs::Metadata)>, PasswdError> {
    let read_error = |source| PasswdError::Read {
        path: path.to_path_buf(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_error(e)),
    };
    let text = std::fs::read_to_string(path).map_err(read_error)?;
    Ok(Some((text, metadata)))
}

/// The parsed lines and the metadata of the file, or no lines and `None` if it is missing.
fn read_lines(path: &Path) -> Result<(Vec<Line>, Option<std::fs::Metadata>), PasswdError> {
    match read(path)? {
        Some((text, metadata)) => Ok((parse(path, &text)?, Some(metadata))),
        None => Ok((Vec::new(), None)),
    }
}

fn parse(path: &Path, text: &str) -> Result<Vec<Line>, PasswdError> {
    let mut lines = Vec::new();
    let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let malformed = |reason: String| PasswdError::Malformed {
            path: path.to_path_buf(),
            line: number,
            reason,
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            lines.push(Line::Comment(raw.to_string()));
            continue;
        }
        let Some((name, hash)) = raw.trim_end().split_once(':') else {
            return Err(malformed("expected name:argon2-hash".into()));
        };
        if let Err(PasswdError::BadName { reason, .. }) = check_name(name) {
            return Err(malformed(format!("invalid user name {name:?}: {reason}")));
        }
        let hash = parse_hash(hash).map_err(malformed)?;
        if let Some(first) = first_seen.insert(name.to_string(), number) {
            return Err(malformed(format!(
                "user {name:?} already defined on line {first}"
            )));
        }
        lines.push(Line::Entry {
            raw: raw.to_string(),
            name: name.to_string(),
            hash: Box::new(hash),
        });
    }
    Ok(lines)
}

/// A PHC string for an argon2 variant with parameters argon2 accepts.
fn parse_hash(text: &str) -> Result<PasswordHash, String> {
    let hash = PasswordHash::new(text).map_err(|e| format!("not a PHC hash string: {e}"))?;
    let algorithm = hash.algorithm.as_str();
    if argon2::Algorithm::try_from(algorithm).is_err() {
        return Err(format!(
            "unsupported hash algorithm {algorithm:?} (expected argon2id)"
        ));
    }
    argon2::Params::try_from(&hash).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("argon2 hash without salt or output".into());
    }
    Ok(hash)
}

/// Writes `lines` atomically, keeping the owner and a 0640 mode of the file being replaced.
fn write(path: &Path, lines: &[Line], old: Option<&std::fs::Metadata>) -> Result<(), PasswdError> {
    let mut text = String::new();
    for line in lines {
        match line {
            Line::Comment(raw) | Line::Entry { raw, .. } => text.push_str(raw),
        }
        text.push('\n');
    }
    let mode = match old {
        Some(m) if m.mode() & 0o777 == 0o640 => 0o640,
        _ => 0o600,
    };
    let owner = old.map(|m| (m.uid(), m.gid()));
    atomic::write_atomic(path, text.as_bytes(), mode, owner).map_err(|source| PasswdError::Write {
        path: path.to_path_buf(),
        source,
    })
}
