//! Harness of the small-queue-disk tests: filling the queue's tmpfs (`common::Tmpfs`) to
//! the last page on demand.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::Path;

/// Writes `path` page by page until the file system holding it is full.
pub fn fill(path: &Path) {
    let mut f = fs::File::create(path).expect("filler");
    while f.write_all(&[0u8; 4096]).is_ok() {}
    let _ = f.sync_all();
}
