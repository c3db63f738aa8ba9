//! The queue store: the only owner of queued mail on disk.
//!
//! Job: keep every accepted message durable until each of its recipients is sent or bounced,
//! and record per-recipient state so a retry touches only the recipients still open.
//!
//! Inputs → outputs: `enqueue(id, envelope, bytes)`, `update(id, states)`, `remove(id)` →
//! records in an append-only, segmented log under `<queue_directory>/store/`; an in-memory
//! index of live messages, rebuilt by scanning the log at start. The index keeps each message
//! compact (`compact.rs`: fixed fields plus an encoded envelope over interned strings, about
//! 90 bytes for a typical deferred message) and hands out full [`Entry`] copies on demand,
//! so a million queued messages cost about 100 MB, not a gigabyte (DESIGN invariant 8).
//!
//! Invariants:
//! - A call returns `Ok` only once its record is written and fdatasynced (DESIGN invariant
//!   1); concurrent calls share one fdatasync (group commit, see `store.rs`).
//! - The index shows only durable state.
//! - A damaged record never stops the store: torn tails (an incomplete last record, never
//!   acknowledged) are cut, damaged records (complete but failing their checksum) are
//!   skipped, and every byte cut or skipped is first copied to `corrupt/`, fsynced (see
//!   `recovery.rs`).
//! - What the store does not guarantee: each record exists once, with no redundancy. A
//!   damaged message record loses that message (its bytes are kept in `corrupt/`); a
//!   damaged update or removal record undoes that change, so mail already delivered is
//!   delivered again (a duplicate, never a silent loss of an intact record).
//! - One process at a time owns the store (an exclusive `flock` on `store/lock`); others may
//!   scan it read-only ([`Snapshot`], [`scan_readonly`]).
//!
//! Settings: none from the configuration beyond the queue directory (every path under it
//! is named by [`Layout`]) and [`StoreOptions`] (the daemon passes `queue_minfree`).
//!
//! Security stance: runs as the queue owner; trusts its own files only as far as their
//! checksums; never follows paths taken from queue contents.

#![forbid(unsafe_code)]

mod census;
mod compact;
pub mod fuzzing;
mod index;
mod layout;
mod nonblocking;
mod record;
mod recovery;
mod segment;
mod store;
pub mod suspend;
pub mod tally;

pub use census::{Brief, Census};
pub use index::{Entry, Location};
pub use layout::Layout;
pub use record::{FollowUp, MessageMeta, Update};
pub use recovery::RecoveryReport;
pub use segment::write_durably;
pub use store::{CommitStats, Done, Driver, Op, Store, StoreOptions};
pub use suspend::{SuspendError, Suspension, Suspensions};
pub use tally::{Totals, View};

#[cfg(test)]
mod tests;

use envelope::QueueId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The queue a message is in, as `mailq`, `qshape` and `postsuper` name them. `active` is
/// not stored: it is the scheduler's in-memory set of messages being delivered right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueName {
    Incoming,
    Deferred,
    Hold,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Incoming => "incoming",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {message}", path.display())]
    Io { path: PathBuf, message: String },
    #[error("queue store {} is locked by another process (is the daemon running?)", .0.display())]
    Locked(PathBuf),
    #[error("no such message: {0}")]
    NotFound(QueueId),
    #[error("message {0} is already queued")]
    Duplicate(QueueId),
    #[error("corrupt queue record: {0}")]
    Corrupt(String),
}

impl StoreError {
    pub fn io(path: &Path, e: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

/// Scans a store without taking its lock or repairing anything, for `mailq` while the
/// daemon runs: the log is append-only, so a concurrent append only looks like the end.
/// Every entry is decoded at once; [`Snapshot`] keeps them compact instead.
pub fn scan_readonly(queue_directory: &Path) -> Result<Vec<Entry>, StoreError> {
    Ok(Snapshot::scan(queue_directory)?.into_entries())
}

/// How far [`Snapshot::scan_with`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanProgress {
    /// At least one message is certainly live (known before the whole log is read).
    pub not_empty: bool,
    pub segments_done: usize,
    pub segments: usize,
}

/// A lock-free, read-only view of a store's log, held in the same compact form as the
/// store's own index, so listing a million messages with the daemon down stays small.
pub struct Snapshot {
    index: index::Index,
}

impl Snapshot {
    /// Scans the log like [`scan_readonly`].
    pub fn scan(queue_directory: &Path) -> Result<Snapshot, StoreError> {
        Snapshot::scan_with(queue_directory, |_| Ok(()))
    }

    /// [`Snapshot::scan`] that tells `progress` how far it is: first whether the log
    /// certainly holds a live message (from its newest segments alone), then after each
    /// segment. An error from `progress` stops the scan and is returned.
    pub fn scan_with(
        queue_directory: &Path,
        mut progress: impl FnMut(ScanProgress) -> std::io::Result<()>,
    ) -> Result<Snapshot, StoreError> {
        let dir = Layout::new(queue_directory).store();
        let mut index = index::Index::default();
        if dir.exists() {
            let io = |e| StoreError::io(&dir, e);
            let not_empty = recovery::certainly_not_empty(&dir, 4).map_err(io)?;
            progress(ScanProgress {
                not_empty,
                segments_done: 0,
                segments: 0,
            })
            .map_err(io)?;
            let mut after = |done, total| {
                progress(ScanProgress {
                    not_empty,
                    segments_done: done,
                    segments: total,
                })
            };
            recovery::scan_with(
                &dir,
                Path::new("/nonexistent"),
                &mut index,
                false,
                &mut after,
            )
            .map_err(io)?;
        }
        index.pack();
        Ok(Snapshot { index })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of one message's entry.
    pub fn get(&self, id: QueueId) -> Option<Entry> {
        self.index.get(id)
    }

    /// Calls `f` for every message in queue-ID order until it fails, decoding a chunk at a
    /// time.
    pub fn try_for_each<E>(&self, f: impl FnMut(&Entry) -> Result<(), E>) -> Result<(), E> {
        store::chunked(|after| self.index.chunk(after, store::CHUNK), f)
    }

    /// Every entry, decoded.
    pub fn into_entries(self) -> Vec<Entry> {
        self.index.into_entries()
    }
}
