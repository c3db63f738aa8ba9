//! The daemon's memory of the last hours for `doctor`: one [`Sample`] of queue counts per
//! `doctor_history_interval` in a fixed-size ring file `<queue_directory>/history`, and
//! [`trends`], the sentences doctor makes of it ("deferred grew by 4,300 in 20 minutes, 96%
//! to example.net: 421 too many connections").
//!
//! The file is [`SLOTS`] slots of [`SLOT`] bytes (720 KiB at most, whatever the uptime):
//! sample `t` goes to slot `(t / interval) % SLOTS`, overwriting the oldest. Each slot is a
//! CRC-32 and a length ahead of the JSON sample, written in place with one `pwrite` and an
//! fdatasync; a slot torn by a crash fails its checksum and is skipped by the reader, so a
//! crash loses at most the sample being written, never the ring. Readers need no daemon.

use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Slots in the ring: 24 hours at the default one-minute interval.
pub const SLOTS: u64 = 1440;
/// Bytes per slot: checksum (4), length (2), JSON (the long texts are cut to fit).
pub const SLOT: u64 = 512;
const HEADER: usize = 6;
const TEXT_MAX: usize = 160;

/// The queue at one moment, and what happened in the interval before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix seconds.
    pub t: u64,
    pub incoming: u64,
    pub active: u64,
    pub deferred: u64,
    pub hold: u64,
    pub maildrop: u64,
    /// The recipient domain with most deferred mail, and its count.
    #[serde(default)]
    pub top_destination: Option<(String, u64)>,
    /// The most common deferral reason, and its count.
    #[serde(default)]
    pub top_reason: Option<(String, u64)>,
    /// Submissions refused (queue_minfree, maildrop limits) in the interval.
    #[serde(default)]
    pub refused: u64,
    /// Recipients delivered and bounced in the interval.
    #[serde(default)]
    pub delivered: u64,
    #[serde(default)]
    pub bounced: u64,
}

/// Cuts a text to at most [`TEXT_MAX`] bytes, at a character boundary.
fn cut(text: &mut String) {
    if text.len() > TEXT_MAX {
        let mut end = TEXT_MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// The slot's bytes: checksum, length, JSON, zero padding.
fn encode(sample: &Sample) -> Vec<u8> {
    let mut s = sample.clone();
    for (text, _) in s.top_destination.iter_mut().chain(s.top_reason.iter_mut()) {
        cut(text);
    }
    let json = serde_json::to_vec(&s).unwrap_or_default();
    let mut slot = vec![0u8; SLOT as usize];
    if json.len() > slot.len() - HEADER {
        return slot; // cannot happen with the texts cut; an empty slot reads as no sample
    }
    slot[0..4].copy_from_slice(&crc32fast::hash(&json).to_le_bytes());
    slot[4..6].copy_from_slice(&(json.len() as u16).to_le_bytes());
    slot[HEADER..HEADER + json.len()].copy_from_slice(&json);
    slot
}

fn decode(slot: &[u8]) -> Option<Sample> {
    let crc = u32::from_le_bytes(slot.get(0..4)?.try_into().ok()?);
    let len = u16::from_le_bytes(slot.get(4..6)?.try_into().ok()?) as usize;
    let json = slot.get(HEADER..HEADER + len).filter(|_| len > 0)?;
    (crc32fast::hash(json) == crc).then(|| serde_json::from_slice(json).ok())?
}

/// Writes `sample` into its slot of the ring at `path` (created 0644 if missing).
pub fn record(path: &Path, interval: u64, sample: &Sample) -> io::Result<()> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(path)?;
    let slot = (sample.t / interval.max(1)) % SLOTS;
    file.write_all_at(&encode(sample), slot * SLOT)?;
    file.sync_data()
}

/// Every readable sample, oldest first; no file is no history.
pub fn read(path: &Path) -> io::Result<Vec<Sample>> {
    let bytes = match File::open(path) {
        Ok(mut f) => {
            let mut b = Vec::new();
            io::Read::read_to_end(&mut io::Read::take(&mut f, SLOTS * SLOT), &mut b)?;
            b
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut all: Vec<Sample> = bytes.chunks(SLOT as usize).filter_map(decode).collect();
    all.sort_by_key(|s| s.t);
    Ok(all)
}

/// Growth of the deferred queue worth a sentence: at least this many messages.
pub const GROWTH_NOTICE: u64 = 10;

/// What doctor says about the history: the deferred queue's growth over the last `window`
/// seconds (with where it goes and why), refusals and deliveries in that window. Empty
/// when nothing is worth saying or there is no history.
pub fn trends(samples: &[Sample], now: u64, window: u64) -> Vec<String> {
    let recent: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t + window >= now && s.t <= now)
        .collect();
    let (Some(first), Some(last)) = (recent.first(), recent.last()) else {
        return Vec::new();
    };
    let minutes = match (last.t.saturating_sub(first.t) / 60).max(1) {
        1 => "1 minute".to_string(),
        n => format!("{n} minutes"),
    };
    let mut out = Vec::new();
    let grew = last.deferred.saturating_sub(first.deferred);
    if grew >= GROWTH_NOTICE {
        out.push(growth(grew, &minutes, last));
    }
    let refused: u64 = recent.iter().skip(1).map(|s| s.refused).sum();
    if refused > 0 {
        out.push(format!(
            "{} submissions refused in {minutes}",
            thousands(refused)
        ));
    }
    let bounced: u64 = recent.iter().skip(1).map(|s| s.bounced).sum();
    if bounced > 0 {
        let delivered: u64 = recent.iter().skip(1).map(|s| s.delivered).sum();
        out.push(format!(
            "{} recipients bounced and {} delivered in {minutes}",
            thousands(bounced),
            thousands(delivered)
        ));
    }
    out
}

fn growth(grew: u64, minutes: &str, last: &Sample) -> String {
    let mut text = format!("deferred grew by {} in {minutes}", thousands(grew));
    if let Some((domain, n)) = &last.top_destination {
        let share = n * 100 / last.deferred.max(1);
        text += &format!(", {share}% to {domain}");
        if let Some((reason, _)) = &last.top_reason {
            text += &format!(": {reason}");
        }
    }
    text
}

/// `4300` → `4,300`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: u64, deferred: u64) -> Sample {
        Sample {
            t,
            deferred,
            top_destination: Some(("example.net".into(), deferred * 96 / 100)),
            top_reason: Some(("421 too many connections".into(), deferred)),
            ..Sample::default()
        }
    }

    #[test]
    fn a_deferral_burst_reads_as_one_sentence() {
        let samples: Vec<Sample> = (0..=20)
            .map(|m| sample(1000 + m * 60, 100 + m * 215))
            .collect();
        let said = trends(&samples, 1000 + 20 * 60, 3600);
        assert_eq!(
            said,
            ["deferred grew by 4,300 in 20 minutes, 96% to example.net: 421 too many connections"]
        );
        assert!(
            trends(&samples, 1_000_000, 3600).is_empty(),
            "old history says nothing"
        );
    }

    #[test]
    fn the_ring_wraps_and_skips_a_torn_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        for t in 0..(SLOTS + 5) {
            record(&path, 1, &sample(t, t)).unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert_eq!(len, SLOTS * SLOT, "bounded");
        let all = read(&path).unwrap();
        assert_eq!(all.len() as u64, SLOTS);
        assert_eq!(all[0].t, 5);
        // A torn write: half a slot of garbage.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[0xff; 100], 7 * SLOT).unwrap();
        assert_eq!(read(&path).unwrap().len() as u64, SLOTS - 1);
    }

    #[test]
    fn long_reasons_are_cut_to_fit_a_slot() {
        let mut s = sample(1, 1);
        s.top_reason = Some(("é".repeat(400), 1));
        assert!(decode(&encode(&s)).is_some());
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
