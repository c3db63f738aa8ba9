//! [`Layout`]: every path under `queue_directory`, named once.
//!
//! Pickup, postdrop, sendmail, the daemon, the scheduler and the admin tools all find the
//! queue's files here, so a file can move (or a new one appear) by changing one line, and
//! `mailroom check` verifies the same paths the programs use.
//!
//! ```text
//! <queue_directory>/
//!   maildrop/           submissions waiting for pickup (group-writable on a system install)
//!   maildrop-refused    count of submissions refused for lack of space
//!   store/              the segmented log (see the crate docs); store/lock is its flock
//!   corrupt/            bytes cut from damaged records and unreadable maildrop files
//!   control.sock        the queue owner's control socket (0600)
//!   showq.sock          the public socket for listings and ping (0666)
//!   suspended           destinations the operator suspended (`suspend.rs`)
//!   history             the daemon's per-interval counts, a fixed-size ring (doctor reads it)
//! ```

use std::path::{Path, PathBuf};

/// The paths of one queue directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    queue_directory: PathBuf,
}

impl Layout {
    pub fn new(queue_directory: impl Into<PathBuf>) -> Layout {
        Layout {
            queue_directory: queue_directory.into(),
        }
    }

    /// `queue_directory` itself.
    pub fn queue_directory(&self) -> &Path {
        &self.queue_directory
    }

    /// `maildrop/`: one file per submission, until pickup moves it into the store.
    pub fn maildrop(&self) -> PathBuf {
        self.queue_directory.join("maildrop")
    }

    /// `maildrop-refused`: the count of submissions refused for lack of space.
    pub fn maildrop_refused(&self) -> PathBuf {
        self.queue_directory.join("maildrop-refused")
    }

    /// `store/`: the segmented log.
    pub fn store(&self) -> PathBuf {
        self.queue_directory.join("store")
    }

    /// `store/lock`: held (flock) by the one process that owns the store.
    pub fn store_lock(&self) -> PathBuf {
        self.store().join("lock")
    }

    /// `corrupt/`: damaged bytes kept for the operator instead of being dropped.
    pub fn corrupt(&self) -> PathBuf {
        self.queue_directory.join("corrupt")
    }

    /// `control.sock`: the queue owner's socket (mode 0600), every command.
    pub fn control_socket(&self) -> PathBuf {
        self.queue_directory.join("control.sock")
    }

    /// `showq.sock`: the public socket (mode 0666), listings and `ping` only.
    pub fn showq_socket(&self) -> PathBuf {
        self.queue_directory.join("showq.sock")
    }

    /// `suspended`: the destinations the operator suspended (JSON, see `suspend.rs`).
    pub fn suspended(&self) -> PathBuf {
        self.queue_directory.join("suspended")
    }

    /// `history`: the daemon's ring of per-interval queue counts, read by `doctor`.
    pub fn history(&self) -> PathBuf {
        self.queue_directory.join("history")
    }

    /// `pid/`: Postfix's directory of the daemon's pid file.
    pub fn pid_directory(&self) -> PathBuf {
        self.queue_directory.join("pid")
    }

    /// `pid/master.pid`: the running daemon's locked pid file.
    pub fn master_pid(&self) -> PathBuf {
        self.pid_directory().join("master.pid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_is_under_the_queue_directory() {
        let layout = Layout::new("/q");
        let paths = [
            layout.maildrop(),
            layout.maildrop_refused(),
            layout.store(),
            layout.store_lock(),
            layout.corrupt(),
            layout.control_socket(),
            layout.showq_socket(),
        ];
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            names,
            [
                "/q/maildrop",
                "/q/maildrop-refused",
                "/q/store",
                "/q/store/lock",
                "/q/corrupt",
                "/q/control.sock",
                "/q/showq.sock"
            ]
        );
    }
}
