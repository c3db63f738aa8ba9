//! Rebuilding the index from the log at start (or for a read-only scan by `mailq` while the
//! daemon runs).
//!
//! Each segment is read front to back. Zeros after the last record are the **end of the
//! data**, in any segment: a preallocated segment (`segment::create_zeroed`) is written full
//! of zeros before use, so its unused part, and a write that never landed, both read as
//! zeros. They are neither records nor damage: nothing is saved or cut, and appending resumes
//! over them. Other bytes that are not a valid record are one of:
//! - a **torn tail**: the newest segment holding data ends inside a record (its header names
//!   more bytes than the file holds), or its tail starts with zeros and has bytes of a record
//!   further on (a batch whose pages landed out of order, in a preallocated segment). That is
//!   a batch whose fdatasync never returned, so no writer was acknowledged; it is saved (up to
//!   its last non-zero byte) and cut off.
//! - **damage**: a complete record that fails its checksum (a flipped bit, an overwritten
//!   block), anywhere, including the very end of the newest segment. A record that was once
//!   acknowledged may be lost there, so it is reported as an error, not as a torn write.
//!   In the middle, the scan resumes at the next valid record; at the end it is cut off.
//!
//! Every byte that is cut or skipped is first copied to `corrupt/` (written, fsynced,
//! renamed into place, directory fsynced), so nothing is thrown away unseen. Neither stops
//! the daemon (DESIGN invariant 4).
//!
//! What a damaged record costs (the store keeps one copy of each record; there is no
//! redundancy): a damaged message record loses that message (its bytes are in `corrupt/`);
//! a damaged update record puts the message back to its previous state, so recipients
//! already delivered may be delivered again; a damaged removal record brings a finished
//! message back, and it is delivered again. Damage turns into duplicates, never into silent
//! loss of an intact record.

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
    /// An incomplete record cut from the end of the newest segment (a batch that was never
    /// acknowledged), as `(file name in corrupt/, bytes)`.
    pub torn_tail: Option<(String, u64)>,
    /// Damaged regions (complete records failing their checksum, or bytes between records)
    /// copied to `corrupt/`, as `(file name, bytes)`; one at the end of the newest segment
    /// was also cut off.
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
    scan_with(dir, corrupt_dir, index, repair, &mut |_, _| Ok(()))
}

/// [`scan`], calling `after_segment(done, total)` after each segment; its error stops the
/// scan (a listing whose reader went away).
pub fn scan_with(
    dir: &Path,
    corrupt_dir: &Path,
    index: &mut Index,
    repair: bool,
    after_segment: &mut dyn FnMut(usize, usize) -> io::Result<()>,
) -> io::Result<(RecoveryReport, u64)> {
    let numbers = segment::list(dir)?;
    let mut report = RecoveryReport {
        segments: numbers.len(),
        ..Default::default()
    };
    let mut last_len = 0;
    let newest_with_data = newest_with_data(dir, &numbers)?;
    for (i, &number) in numbers.iter().enumerate() {
        // The torn-tail rules apply to the newest segment holding data: a zeroed spare
        // prepared after it (`store/spare.rs`) holds nothing yet.
        let newest = Some(i) >= newest_with_data;
        let data = match fs::read(segment::path(dir, number)) {
            Ok(d) => d,
            // A read-only scan races the daemon deleting a dead segment: nothing live was there.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !repair => continue,
            Err(e) => return Err(e),
        };
        let valid_end = scan_segment(number, &data, index, &mut report, corrupt_dir, repair)?;
        index.grow_segment(number, valid_end);
        let tail = trim_zeros(&data[valid_end as usize..]);
        if !tail.is_empty() && repair {
            let saved = save_corrupt(corrupt_dir, number, valid_end as usize, tail)?;
            if newest && is_torn(tail) {
                report.torn_tail = Some(saved);
            } else {
                report.corrupt_regions.push(saved);
            }
            if newest {
                // Only once the copy is durable: appending after the cut overwrites it.
                let file = segment::open_rw(dir, number, false)?;
                file.set_len(valid_end)?;
                file.sync_all()?;
            }
        }
        if i + 1 == numbers.len() {
            last_len = valid_end;
        }
        after_segment(i + 1, numbers.len())?;
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
    let mut records = 0;
    let valid_end = walk_segment(
        data,
        |at, buf| match record::decode(buf) {
            Decoded::Record(rec, len) => {
                apply(number, at as u64, len as u64, rec, index);
                records += 1;
                Some(len)
            }
            Decoded::Incomplete | Decoded::Invalid => None,
        },
        |at, next| {
            if repair {
                let saved = save_corrupt(corrupt_dir, number, at, &data[at..next])?;
                report.corrupt_regions.push(saved);
            }
            Ok(())
        },
    )?;
    report.records += records;
    Ok(valid_end)
}

/// Walks one segment's records the way every reader of the log must: `take(at, bytes)`
/// decodes the record starting at `at` and returns its length, or `None` if no valid record
/// starts there; zeros from there on are the end of the data, other bytes are damage, handed
/// to `skipped(from, to)` before the walk resumes at the next valid record. Returns the end of
/// the last valid record. Shared by recovery and the read-only [`crate::census`], so both
/// read the same records from the same bytes.
pub(crate) fn walk_segment(
    data: &[u8],
    mut take: impl FnMut(usize, &[u8]) -> Option<usize>,
    mut skipped: impl FnMut(usize, usize) -> io::Result<()>,
) -> io::Result<u64> {
    let mut at = 0usize;
    let mut valid_end = 0usize;
    while at < data.len() {
        if let Some(len) = take(at, &data[at..]) {
            at += len;
            valid_end = at;
            continue;
        }
        if all_zeros(&data[at..]) {
            break;
        }
        match next_valid(data, at + 1) {
            Some(next) => {
                skipped(at, next)?;
                at = next;
            }
            None => break,
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

/// True if the bytes after the last valid record (trailing zeros trimmed) are a write that
/// never completed: they end inside a record (the header names more bytes than are there,
/// or not even a header is), or they start with zeros (the batch's first pages never landed,
/// a later one did: a record boundary holds a magic number, never a zero). A complete record with a
/// bad checksum — or with a damaged length field — is damage instead.
fn is_torn(tail: &[u8]) -> bool {
    if tail.first() == Some(&0) {
        return true;
    }
    matches!(record::decode(tail), Decoded::Incomplete) && !record::whole_but_for_its_length(tail)
}

/// Copies damaged or cut bytes to `corrupt/segment-N-at-OFFSET.bin`, durably, before the
/// caller cuts them; returns `(file name, bytes)`. A copy of the same length made at an
/// earlier start is kept.
fn save_corrupt(
    corrupt_dir: &Path,
    segment: u64,
    offset: usize,
    bytes: &[u8],
) -> io::Result<(String, u64)> {
    let name = format!("segment-{segment:012}-at-{offset}.bin");
    let existing = fs::metadata(corrupt_dir.join(&name)).map(|m| m.len());
    if existing.ok() != Some(bytes.len() as u64) {
        segment::write_durably(corrupt_dir, &name, bytes)?;
    }
    Ok((name, bytes.len() as u64))
}

#[cfg(test)]
mod tests;

fn all_zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// `bytes` without its trailing zeros (the unused part of a preallocated segment).
fn trim_zeros(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    &bytes[..end]
}

/// The position in `numbers` of the newest segment that is not a non-empty run of zeros. Only
/// trailing segments are read to find it (usually one: the zeroed spare, or none).
fn newest_with_data(dir: &Path, numbers: &[u64]) -> io::Result<Option<usize>> {
    for (i, &number) in numbers.iter().enumerate().rev() {
        match fs::read(segment::path(dir, number)) {
            // An empty file still counts: a torn tail cut to nothing must stay the newest,
            // or a second recovery would judge the segment before it differently.
            Ok(data) if !data.is_empty() && all_zeros(&data) => continue,
            Ok(_) => return Ok(Some(i)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether the log certainly holds a live message, found by reading at most `max_segments`
/// newest segments, newest first, each record newest first: a message record with no later
/// removal (nor a later record naming it for removal) is live whatever the older segments
/// say. `false` means "not known yet", not "empty". Lets `mailq` print its heading before the
/// whole log is read.
pub fn certainly_not_empty(dir: &Path, max_segments: usize) -> io::Result<bool> {
    let mut removed = std::collections::HashSet::new();
    for &number in segment::list(dir)?.iter().rev().take(max_segments) {
        let data = match fs::read(segment::path(dir, number)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        let mut at = 0;
        while let Decoded::Record(rec, len) = record::decode(&data[at..]) {
            records.push(rec);
            at += len;
        }
        if !all_zeros(&data[at..]) {
            // Damage: a removal behind it would be missed. Not known, then.
            return Ok(false);
        }
        for rec in records.into_iter().rev() {
            match rec {
                Record::Remove { id } => {
                    removed.insert(id);
                }
                Record::Message { id, meta, .. } => {
                    if !removed.contains(&id) {
                        return Ok(true);
                    }
                    if let Some(crate::FollowUp::Remove(other)) = meta.follow_up {
                        removed.insert(other);
                    }
                }
                Record::Update { .. } => {}
            }
        }
    }
    Ok(false)
}
