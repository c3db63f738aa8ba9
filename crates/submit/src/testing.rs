//! Helpers for this crate's tests: a configuration rooted in a temp directory, and shared
//! in-memory output streams.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use config::Config;

/// The embedded default with everything under `dir` and small, test-friendly limits.
pub fn config(dir: &Path) -> Config {
    let mut cfg = Config::embedded_default();
    cfg.data_directory = dir.to_path_buf();
    cfg.queue_directory = dir.join("queue");
    cfg.postdrop_path = dir.join("no-such-postdrop");
    cfg.queue_minfree = 0;
    cfg.queue_minfree_inodes = 0;
    cfg.maildrop_count_limit = 100;
    cfg.maildrop_size_limit = 10 << 20;
    cfg.message_size_limit = 1 << 20;
    cfg.submit_timeout = Duration::from_secs(30);
    cfg.myhostname = "host.example".into();
    cfg.myorigin = "example.org".into();
    cfg
}

/// A writer whose bytes the test can read afterwards.
#[derive(Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}
