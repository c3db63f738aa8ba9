//! The next segment, created and pre-zeroed in the background while the active one fills.
//!
//! Why: writing a segment's worth of zeros and fsyncing it takes tens of milliseconds; done
//! at rotation, under the commit lock, every writer would wait for it. Prepared ahead, the
//! rotation only takes the finished file. The spare is created under its final name: an
//! empty, zeroed segment newer than the active one is harmless to recovery (it reads as an
//! empty newest segment and becomes the active one), so no rename is needed.

use crate::segment;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use tracing::warn;

/// At most one segment being prepared, for the number the next rotation will use.
#[derive(Default)]
pub(super) struct Spare {
    preparing: Option<(u64, JoinHandle<io::Result<File>>)>,
}

impl Spare {
    /// Starts preparing segment `number` of `len` zeroed bytes.
    pub fn start(&mut self, dir: &Path, number: u64, len: u64, dsync: bool) {
        self.finish();
        let dir: PathBuf = dir.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("queue-spare".into())
            .spawn(move || segment::create_zeroed(&dir, number, len, dsync));
        match handle {
            Ok(h) => self.preparing = Some((number, h)),
            Err(e) => warn!(target: "qmgr", "cannot start preparing queue segment {number}: {e}"),
        }
    }

    /// Segment `number`: the prepared one (waiting for it if still being zeroed), or a
    /// plain new one if none was prepared or preparing it failed.
    pub fn take(&mut self, dir: &Path, number: u64, dsync: bool) -> io::Result<File> {
        match self.preparing.take() {
            Some((n, h)) if n == number => match h.join() {
                Ok(Ok(file)) => return Ok(file),
                Ok(Err(e)) => {
                    warn!(target: "qmgr", "cannot prepare queue segment {}: {e}; creating it plainly", segment::path(dir, number).display());
                }
                Err(_) => {
                    warn!(target: "qmgr", "the thread preparing queue segment {} failed; creating it plainly", segment::path(dir, number).display());
                }
            },
            Some((n, h)) => self.preparing = Some((n, h)),
            None => {}
        }
        // A half-zeroed file from the failed attempt would make `create_new` fail.
        let _ = fs::remove_file(segment::path(dir, number));
        segment::create(dir, number, dsync)
    }

    /// Waits for a preparation in progress (so a store that is dropped leaves no thread
    /// still creating a file that a store opened next could race).
    fn finish(&mut self) {
        if let Some((_, h)) = self.preparing.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Spare {
    fn drop(&mut self) {
        self.finish();
    }
}
