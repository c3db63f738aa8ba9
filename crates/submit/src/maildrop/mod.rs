//! `maildrop/`: where local submissions wait for the daemon's pickup, one plain file each.
//!
//! A writer creates `maildrop/tmp.<pid>.<random>`, writes the [format] bytes, fsyncs the file,
//! links it to `maildrop/<QueueId>` (never replacing an existing name), fsyncs the directory
//! and removes the temp name. A reader only ever looks at names that parse as queue IDs, so it
//! sees either nothing or a complete, fsynced file; it still verifies the length, the crc and
//! the `END` record, because a file might come from somewhere else (a restore, a bad disk).
//!
//! Names that are neither `tmp.*` nor queue IDs are reported by [`scan`] as `foreign` so the
//! daemon can move them to `corrupt/`; `tmp.*` files older than the submit timeout can only be
//! leftovers of a crash and are listed by [`stale_temp_files`] for removal.

mod format;
mod store;

use std::io;
use std::path::PathBuf;

use envelope::QueueId;

pub use format::{decode, encode, MAGIC};
pub use store::{
    read, read_capped, ready_files, scan, stale_temp_files, write, write_with, MaildropScan, Stage,
    WriteHooks, DEFAULT_READ_CAP, TEMP_PREFIX,
};

/// One submitted message as it sits in `maildrop/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaildropFile {
    /// The file's name; not stored inside the file.
    pub id: QueueId,
    /// Unix seconds when the submission was accepted.
    pub arrival_time: u64,
    /// Real uid of the submitting process (the setgid helper overwrites whatever it is given).
    pub uid: u32,
    pub username: String,
    /// `-F` or `NAME`: used only for a `From:` header cleanup has to add.
    pub fullname: Option<String>,
    /// Envelope sender as given (`alice`, `alice@example.org`); empty = null sender `<>`.
    pub sender: String,
    /// Envelope recipients as given; cleanup qualifies the bare ones with `@myorigin`.
    pub recipients: Vec<String>,
    /// `-N`, `-V`, `-R` of sendmail (RFC 3461); all `None` by default.
    pub dsn: DsnOptions,
    /// The message (headers and body) with LF line endings.
    pub message: Vec<u8>,
}

/// RFC 3461 options given on the sendmail command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DsnOptions {
    /// `NEVER` or a comma list of `SUCCESS,FAILURE,DELAY` (upper case), for every recipient.
    pub notify: Option<String>,
    /// ENVID, as given.
    pub envid: Option<String>,
    /// `FULL` or `HDRS`.
    pub ret: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MaildropError {
    /// A system call failed; `source.kind()` tells a permission problem from the rest.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file does not parse, is truncated, or fails its crc: move it to `corrupt/`.
    #[error("corrupt maildrop file: {0}")]
    Corrupt(String),
    /// The writer was given a field the format cannot carry.
    #[error("invalid {field}: {reason}")]
    InvalidField { field: &'static str, reason: String },
    /// A [`WriteHooks`] checkpoint stopped the write (the submit timeout fired).
    #[error("{0}")]
    Interrupted(String),
}

impl MaildropError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        MaildropError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for EACCES/EPERM: the store's owner or mode is wrong for this user.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, MaildropError::Io { source, .. } if is_permission_denied(source))
    }
}

pub(crate) fn is_permission_denied(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::PermissionDenied
        || error.raw_os_error() == Some(libc::EPERM)
        || error.raw_os_error() == Some(libc::EACCES)
}
