//! Rebuilding the index from the log at start (or for a read-only scan by `mailq` while the
//! daemon runs).
//!
//! Each segment is read front to back. A record that fails its checksum is either a torn tail
//! (nothing valid follows it in the newest segment: a batch whose fdatasync never returned,
//! so nobody was acknowledged; it is cut off) or damage in the middle (valid records follow:
//! the bad bytes are copied to `corrupt/` with one report line and the scan resumes at the
//! next valid record). Neither stops the daemon (DESIGN invariant 4).

use crate::index::{Index, Location};
use crate::record::{self, Decoded, Record};
use crate::segment;
use std::fs;
use std::io;
use std::path::Path;

/// What recovery found, for the start-up log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub segments: usize,
    pub records: u64,
    pub messages: usize,
    /// Bytes cut from the end of the newest segment (an unacknowledged torn batch).
    pub torn_tail_bytes: u64,
    /// Damaged regions copied to `corrupt/`, as `(file name, bytes)`.
    pub corrupt_regions: Vec<(String, u64)>,
}

/// Scans every segment into `index`. `repair` truncates a torn tail and saves damaged
/// regions to `corrupt_dir`; a read-only scan (`repair == false`) only skips them.
/// Returns the report and the valid length of the newest segment.
pub fn scan(
    dir: &Path,
    corrupt_dir: &Path,
    index: &mut Index,
    repair: bool,
) -> io::Result<(RecoveryReport, u64)> {
    let numbers = segment::list(dir)?;
    let mut report = RecoveryReport {
        segments: numbers.len(),
        ..Default::default()
    };
    let mut last_len = 0;
    for (i, &number) in numbers.iter().enumerate() {
        let newest = i + 1 == numbers.len();
        let data = match fs::read(segment::path(dir, number)) {
            Ok(d) => d,
            // A read-only scan races the daemon deleting a dead segment: nothing live was there.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !repair => continue,
            Err(e) => return Err(e),
        };
        let valid_end = scan_segment(number, &data, index, &mut report, corrupt_dir, repair)?;
        index.grow_segment(number, valid_end);
        if valid_end < data.len() as u64 && !newest && repair {
            let tail = &data[valid_end as usize..];
            save_corrupt(corrupt_dir, number, valid_end as usize, tail, &mut report)?;
        }
        if valid_end < data.len() as u64 && newest && repair {
            report.torn_tail_bytes = data.len() as u64 - valid_end;
            let file = segment::open_rw(dir, number)?;
            file.set_len(valid_end)?;
            file.sync_all()?;
        }
        if newest {
            last_len = valid_end;
        }
    }
    report.messages = index.len();
    Ok((report, last_len))
}

/// Scans one segment; returns the end of its last valid record.
fn scan_segment(
    number: u64,
    data: &[u8],
    index: &mut Index,
    report: &mut RecoveryReport,
    corrupt_dir: &Path,
    repair: bool,
) -> io::Result<u64> {
    let mut at = 0usize;
    let mut valid_end = 0usize;
    while at < data.len() {
        match record::decode(&data[at..]) {
            Decoded::Record(rec, len) => {
                apply(number, at as u64, len as u64, rec, index);
                report.records += 1;
                at += len;
                valid_end = at;
            }
            Decoded::Incomplete | Decoded::Invalid => match next_valid(data, at + 1) {
                Some(next) => {
                    if repair {
                        save_corrupt(corrupt_dir, number, at, &data[at..next], report)?;
                    }
                    at = next;
                }
                None => break,
            },
        }
    }
    Ok(valid_end as u64)
}

fn apply(segment: u64, offset: u64, len: u64, rec: Record<'_>, index: &mut Index) {
    match rec {
        Record::Message { id, meta, body, .. } => {
            let location = Location {
                segment,
                record_offset: offset,
                record_len: len,
            };
            index.put(id, &meta, body.len() as u64, location);
        }
        Record::Update { id, update } => index.update(id, &update),
        Record::Remove { id } => {
            index.remove(id);
        }
    }
}

/// The offset of the next decodable record at or after `from`, if any.
fn next_valid(data: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + record::HEADER_LEN <= data.len() {
        let found = data[at..]
            .windows(4)
            .position(|w| w == record::MAGIC)
            .map(|p| at + p)?;
        if let Decoded::Record(..) = record::decode(&data[found..]) {
            return Some(found);
        }
        at = found + 1;
    }
    None
}

fn save_corrupt(
    corrupt_dir: &Path,
    segment: u64,
    offset: usize,
    bytes: &[u8],
    report: &mut RecoveryReport,
) -> io::Result<()> {
    fs::create_dir_all(corrupt_dir)?;
    let name = format!("segment-{segment:012}-at-{offset}.bin");
    let path = corrupt_dir.join(&name);
    if !path.exists() {
        fs::write(&path, bytes)?;
    }
    report.corrupt_regions.push((name, bytes.len() as u64));
    Ok(())
}
