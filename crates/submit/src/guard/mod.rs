//! The disk guard (DESIGN invariants 2 and 3): before a submission is written, check that the
//! queue file system keeps `queue_minfree` bytes and `queue_minfree_inodes` inodes free after
//! it, and that `maildrop/` stays under its own caps (`maildrop_count_limit` files,
//! `maildrop_size_limit` bytes).
//!
//! The maildrop caps are what Postfix lacks: its postdrop keeps writing while pickup is dead,
//! which is how a cron job filled a disk with maildrop files (seed 000). Here, once the daemon
//! stops draining `maildrop/`, submissions are refused with exit 75 and one line telling why.
//!
//! The check is advisory under concurrency: N writers racing past it can overshoot a cap by
//! at most N messages, which is bounded; a lock would make submission wait on other writers.
//! A limit of 0 means "no limit", as for Postfix's size limits.

mod refusals;

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use refusals::{record_refusal, take_refusal_count, REFUSAL_FILE};

/// The four limits the guard enforces, taken from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub queue_minfree: u64,
    pub queue_minfree_inodes: u64,
    pub maildrop_size_limit: u64,
    pub maildrop_count_limit: u64,
}

impl Limits {
    pub fn from_config(cfg: &config::Config) -> Limits {
        Limits {
            queue_minfree: cfg.queue_minfree,
            queue_minfree_inodes: cfg.queue_minfree_inodes,
            maildrop_size_limit: cfg.maildrop_size_limit,
            maildrop_count_limit: cfg.maildrop_count_limit,
        }
    }
}

/// Why a submission was refused. `Display` is the human half of the stderr line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    LowSpace {
        free: u64,
        minfree: u64,
        message: u64,
    },
    LowInodes {
        free: u64,
        minfree: u64,
    },
    /// Counting stopped at the cap: `count` is a lower bound.
    MaildropCount {
        count: u64,
        limit: u64,
    },
    /// Summing stopped once over the cap: `bytes` is a lower bound.
    MaildropSize {
        bytes: u64,
        limit: u64,
        message: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DOWN: &str = "is the mailroom daemon down?";
        match *self {
            Refusal::LowSpace { free, minfree, .. } if free < minfree => write!(
                f,
                "queue file system has only {} free, below queue_minfree ({})",
                human(free),
                human(minfree)
            ),
            Refusal::LowSpace { free, minfree, message } => write!(
                f,
                "queue file system has only {} free, no room for a {} message above queue_minfree ({})",
                human(free),
                human(message),
                human(minfree)
            ),
            Refusal::LowInodes { free, minfree } => write!(
                f,
                "queue file system has only {free} free inodes, below queue_minfree_inodes ({minfree})"
            ),
            Refusal::MaildropCount { count, limit } => write!(
                f,
                "maildrop holds {count} files (maildrop_count_limit {limit}): {DOWN}"
            ),
            Refusal::MaildropSize { bytes, limit, message } => write!(
                f,
                "maildrop holds {} (maildrop_size_limit {}), no room for a {} message: {DOWN}",
                human(bytes),
                human(limit),
                human(message)
            ),
        }
    }
}

/// Sizes for people: whole MB from 1 MiB up, else kB, else bytes.
pub fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{} MB", b >> 20),
        b if b >= 1 << 10 => format!("{} kB", b >> 10),
        b => format!("{b} bytes"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl GuardError {
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, GuardError::Io { source, .. } if crate::maildrop::is_permission_denied(source))
    }
}

/// Runs every check for a message of `message_size` bytes about to enter `maildrop_dir`.
/// Free space is measured on `queue_dir`, which an unprivileged user may stat even where
/// `maildrop/` (mode 0730) does not let it look inside.
pub fn check(
    queue_dir: &Path,
    maildrop_dir: &Path,
    limits: &Limits,
    message_size: u64,
) -> Result<(), GuardError> {
    check_free_space(queue_dir, limits, message_size)?;
    check_maildrop(maildrop_dir, limits, message_size)
}

/// Free bytes (for unprivileged users) and free inodes of the file system holding a path.
pub use sys::{free_space, FreeSpace};

/// `queue_minfree` and `queue_minfree_inodes` (also what smtpd checks before DATA).
pub fn check_free_space(
    queue_dir: &Path,
    limits: &Limits,
    message_size: u64,
) -> Result<(), GuardError> {
    judge_free_space(measure_free_space(queue_dir)?, limits, message_size)
}

/// [`free_space`] of the queue's file system, its failure as a [`GuardError`].
pub fn measure_free_space(queue_dir: &Path) -> Result<FreeSpace, GuardError> {
    free_space(queue_dir).map_err(|source| GuardError::Io {
        op: "measure free space of",
        path: queue_dir.to_path_buf(),
        source,
    })
}

/// The verdict of [`check_free_space`] on a measurement already made.
pub fn judge_free_space(
    free: FreeSpace,
    limits: &Limits,
    message_size: u64,
) -> Result<(), GuardError> {
    if free.bytes < limits.queue_minfree.saturating_add(message_size) {
        return Err(GuardError::Refused(Refusal::LowSpace {
            free: free.bytes,
            minfree: limits.queue_minfree,
            message: message_size,
        }));
    }
    match free.inodes {
        Some(inodes) if inodes < limits.queue_minfree_inodes => {
            Err(GuardError::Refused(Refusal::LowInodes {
                free: inodes,
                minfree: limits.queue_minfree_inodes,
            }))
        }
        _ => Ok(()),
    }
}

/// The maildrop caps, with one readdir and one stat per entry, stopping as soon as a cap is
/// reached so a maildrop of a million files costs no more than `maildrop_count_limit` stats.
/// Temp files count: they occupy the disk too, and a leak of them must also be stopped.
pub fn check_maildrop(
    maildrop_dir: &Path,
    limits: &Limits,
    message_size: u64,
) -> Result<(), GuardError> {
    let io_error = |source| GuardError::Io {
        op: "read",
        path: maildrop_dir.to_path_buf(),
        source,
    };
    let (count_limit, size_limit) = (limits.maildrop_count_limit, limits.maildrop_size_limit);
    let mut count = 0u64;
    let mut bytes = 0u64;
    for entry in fs::read_dir(maildrop_dir).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        // A file removed meanwhile (pickup took it) no longer counts.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        count += 1;
        bytes = bytes.saturating_add(meta.len());
        if count_limit > 0 && count >= count_limit {
            return Err(GuardError::Refused(Refusal::MaildropCount {
                count,
                limit: count_limit,
            }));
        }
        if size_limit > 0 && bytes.saturating_add(message_size) > size_limit {
            return Err(size_refusal(bytes, size_limit, message_size));
        }
    }
    if size_limit > 0 && message_size > size_limit {
        return Err(size_refusal(bytes, size_limit, message_size));
    }
    Ok(())
}

fn size_refusal(bytes: u64, limit: u64, message: u64) -> GuardError {
    GuardError::Refused(Refusal::MaildropSize {
        bytes,
        limit,
        message,
    })
}

#[cfg(test)]
mod tests;
