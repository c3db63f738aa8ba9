//! Recovery tells a torn tail from a damaged last record, and keeps every cut byte.

use crate::{Store, StoreOptions};
use envelope::{Envelope, QueueId};
use std::fs;
use std::path::{Path, PathBuf};

fn env() -> Envelope {
    Envelope::new("s@example.org", vec!["r@example.org".into()], 1_700_000_000)
}

/// A store with two messages; returns the segment path, the ids and where the second
/// (last) record starts.
fn two_messages(dir: &Path) -> (PathBuf, [QueueId; 2], usize) {
    let ids = [QueueId::generate(), QueueId::generate()];
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    store
        .enqueue(ids[0], env(), b"Subject: one\n\n1\n")
        .unwrap();
    let start = store.get(ids[0]).unwrap().location.record_len as usize;
    store
        .enqueue(ids[1], env(), b"Subject: two\n\n2\n")
        .unwrap();
    drop(store);
    (dir.join("store/000000000001.seg"), ids, start)
}

fn corrupt_copy(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(crate::Layout::new(dir).corrupt().join(name)).expect("copy in corrupt/")
}

#[test]
fn a_flipped_byte_in_the_last_record_is_damage_kept_in_corrupt_not_a_torn_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, start) = two_messages(tmp.path());
    let mut data = fs::read(&seg).unwrap();
    let last = data[start..].to_vec();
    data[start + 30] ^= 0x20; // inside the acknowledged second message
    fs::write(&seg, &data).unwrap();

    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(
        report.torn_tail, None,
        "a complete record is not a torn write"
    );
    assert_eq!(report.corrupt_regions.len(), 1, "{report:?}");
    let (name, bytes) = &report.corrupt_regions[0];
    assert_eq!(*bytes as usize, last.len());
    let copy = corrupt_copy(tmp.path(), name);
    assert_eq!(copy.len(), last.len());
    assert_eq!(copy[30], last[30] ^ 0x20, "the damaged bytes, as they were");
    assert!(store.contains(ids[0]) && !store.contains(ids[1]));
}

#[test]
fn a_damaged_length_field_in_the_last_record_is_damage_too() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, _, start) = two_messages(tmp.path());
    let mut data = fs::read(&seg).unwrap();
    data[start + 10] ^= 0x01; // the length now claims 64 KiB more than the file holds
    fs::write(&seg, &data).unwrap();
    let (_, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.torn_tail, None);
    assert_eq!(report.corrupt_regions.len(), 1, "{report:?}");
}

#[test]
fn a_torn_tail_is_copied_to_corrupt_before_it_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, start) = two_messages(tmp.path());
    let data = fs::read(&seg).unwrap();
    let kept = data.len() - 7;
    fs::write(&seg, &data[..kept]).unwrap(); // the last write never finished

    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let (name, bytes) = report.torn_tail.clone().expect("a torn tail");
    assert_eq!(bytes as usize, kept - start);
    assert_eq!(corrupt_copy(tmp.path(), &name), &data[start..kept]);
    assert!(report.corrupt_regions.is_empty());
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, start, "cut");
    assert!(store.contains(ids[0]) && !store.contains(ids[1]));
}

#[test]
fn zeros_after_the_last_record_are_the_end_of_the_data_not_a_torn_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, _) = two_messages(tmp.path());
    let mut data = fs::read(&seg).unwrap();
    let end = data.len();
    data.extend_from_slice(&[0u8; 4096]); // the file grew, the data never landed
    fs::write(&seg, &data).unwrap();
    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.torn_tail, None, "zeros carry nothing to save");
    assert!(report.corrupt_regions.is_empty());
    assert!(store.contains(ids[0]) && store.contains(ids[1]));
    // Appending resumes over the zeros, right after the last record.
    let third = QueueId::generate();
    store
        .enqueue(third, env(), b"Subject: three\n\n3\n")
        .unwrap();
    assert_eq!(
        store.get(third).unwrap().location.record_offset as usize,
        end
    );
}

fn store_location(dir: &Path, id: QueueId) -> crate::Location {
    let (store, _) = Store::open(dir, preallocated()).unwrap();
    store.get(id).unwrap().location
}

fn preallocated() -> StoreOptions {
    StoreOptions {
        segment_size: 64 << 10,
        preallocate: true,
        ..StoreOptions::default()
    }
}

/// Enqueues `n` messages into a preallocated store; returns their ids and the end of the
/// last record (the segment file itself is longer: zeros).
fn preallocated_messages(dir: &Path, n: usize) -> (Vec<QueueId>, u64) {
    let (store, _) = Store::open(dir, preallocated()).unwrap();
    let ids: Vec<QueueId> = (0..n).map(|_| QueueId::generate()).collect();
    for id in &ids {
        store
            .enqueue(*id, env(), b"Subject: kept\n\nbody\n")
            .unwrap();
    }
    let last = store.get(ids[n - 1]).unwrap().location;
    (ids, last.record_offset + last.record_len)
}

/// A crash after a rotation leaves the newest segment preallocated: its zeroed tail must
/// read as the end of the data, never as records or damage.
#[test]
fn a_segment_with_a_zeroed_preallocated_tail_recovers_exactly_the_committed_records() {
    let tmp = tempfile::tempdir().unwrap();
    // Enough to fill the first 64 KiB segment, rotate into the zeroed spare and use part of it.
    let (ids, end) = preallocated_messages(tmp.path(), 600);
    let dir = tmp.path().join("store");
    let numbers = crate::segment::list(&dir).unwrap();
    assert!(numbers.len() >= 2, "rotated into the spare: {numbers:?}");
    let (store, report) = Store::open(tmp.path(), preallocated()).unwrap();
    assert_eq!(report.torn_tail, None, "{report:?}");
    assert!(report.corrupt_regions.is_empty(), "{report:?}");
    assert_eq!(store.len(), ids.len());
    assert!(ids.iter().all(|id| store.contains(*id)));
    let newest = store.get(ids[ids.len() - 1]).unwrap().location.segment;
    let file_len = fs::metadata(crate::segment::path(&dir, newest))
        .unwrap()
        .len();
    assert!(
        file_len > end,
        "the tail is zeros, not cut: {file_len} vs {end}"
    );
    // The next record goes right after the data, or into the spare prepared after it.
    let more = QueueId::generate();
    store.enqueue(more, env(), b"Subject: more\n\n").unwrap();
    let at = store.get(more).unwrap().location;
    assert!(
        (at.segment, at.record_offset) == (newest, end)
            || (at.segment, at.record_offset) == (newest + 1, 0),
        "{at:?}"
    );
    drop(store);
    let (store, report) = Store::open(tmp.path(), preallocated()).unwrap();
    assert_eq!(store.len(), ids.len() + 1);
    assert_eq!(report.torn_tail, None);
}

/// A batch whose first pages never landed but a later one did: bytes of a record sitting
/// in the zeros after the last committed record. The committed records stay, the fragment
/// is a torn tail (saved to `corrupt/`, then cut), and the store keeps working.
#[test]
fn a_torn_record_in_the_middle_of_zeros_is_cut_and_the_committed_records_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, end) = preallocated_messages(tmp.path(), 3);
    let seg = tmp.path().join("store/000000000001.seg");
    let mut data = fs::read(&seg).unwrap();
    assert!(data.len() as u64 > end + 8192, "preallocated");
    // The middle of the last record's bytes (no magic number, no whole record), a page
    // after the data's end.
    let last = store_location(tmp.path(), ids[2]);
    let fragment = data[last.record_offset as usize + 8..end as usize - 8].to_vec();
    let at = end as usize + 4096;
    data[at..at + fragment.len()].copy_from_slice(&fragment);
    fs::write(&seg, &data).unwrap();

    let (store, report) = Store::open(tmp.path(), preallocated()).unwrap();
    let (name, bytes) = report.torn_tail.clone().expect("a torn tail");
    assert_eq!(
        bytes as usize,
        at + fragment.len() - end as usize,
        "saved to its last byte"
    );
    let copy = corrupt_copy(tmp.path(), &name);
    assert_eq!(&copy[4096..], &fragment[..]);
    assert!(report.corrupt_regions.is_empty(), "{report:?}");
    assert_eq!(store.len(), ids.len());
    assert!(ids.iter().all(|id| store.contains(*id)));
    let more = QueueId::generate();
    store.enqueue(more, env(), b"Subject: more\n\n").unwrap();
    drop(store);
    let (store, report) = Store::open(tmp.path(), preallocated()).unwrap();
    assert_eq!((store.len(), report.torn_tail), (ids.len() + 1, None));
}

/// The zeroed spare prepared after the active segment is the newest file, but holds no data:
/// a torn write at the end of the segment before it is still a torn tail, and is cut.
#[test]
fn a_torn_tail_before_the_zeroed_spare_is_still_cut() {
    let tmp = tempfile::tempdir().unwrap();
    let (ids, end) = preallocated_messages(tmp.path(), 3);
    let dir = tmp.path().join("store");
    assert_eq!(
        crate::segment::list(&dir).unwrap(),
        vec![1, 2],
        "active and spare"
    );
    let seg = dir.join("000000000001.seg");
    let data = fs::read(&seg).unwrap();
    assert!(data.len() as u64 > end, "preallocated");
    // The last record cut short (as if its last bytes never landed; no zeros follow here).
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(end - 10).unwrap();
    drop(f);
    let (store, report) = Store::open(tmp.path(), preallocated()).unwrap();
    assert!(report.torn_tail.is_some(), "{report:?}");
    assert!(report.corrupt_regions.is_empty(), "{report:?}");
    assert_eq!(store.len(), ids.len() - 1);
    assert!(store.contains(ids[0]) && !store.contains(ids[2]));
}

/// The documented limit (no redundancy): a damaged removal record undoes the removal. The
/// message comes back — a duplicate delivery, not a loss — and the damage is reported.
#[test]
fn a_damaged_removal_record_brings_the_message_back_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, _) = two_messages(tmp.path());
    let before = fs::metadata(&seg).unwrap().len() as usize;
    {
        let (store, _) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        store.remove(ids[0], "done").unwrap();
    }
    let mut data = fs::read(&seg).unwrap();
    data[before + 20] ^= 0x04; // inside the removal record's queue ID
    fs::write(&seg, &data).unwrap();
    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert!(store.contains(ids[0]), "the removal is undone");
    assert_eq!(report.corrupt_regions.len(), 1, "and reported: {report:?}");
    assert_eq!(report.torn_tail, None);
}

fn not_empty(dir: &Path) -> bool {
    crate::recovery::certainly_not_empty(&dir.join("store"), 4).unwrap()
}

#[test]
fn a_message_in_the_newest_segment_is_certainly_live_before_the_log_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    two_messages(tmp.path());
    assert!(not_empty(tmp.path()));
}

#[test]
fn a_log_whose_messages_were_all_removed_is_not_known_to_hold_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, ids, _) = two_messages(tmp.path());
    let (store, _) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    for id in ids {
        store.remove(id, "delivered").unwrap();
    }
    drop(store);
    assert!(
        !not_empty(tmp.path()),
        "every message record has a later removal"
    );
    // A bounce that replaced its original: the original's removal rides on the new record.
    let (store, _) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    let (original, bounce) = (QueueId::generate(), QueueId::generate());
    store.enqueue(original, env(), b"x").unwrap();
    store
        .enqueue_with(bounce, env(), b"y", Some(crate::FollowUp::Remove(original)))
        .unwrap();
    store.remove(bounce, "delivered").unwrap();
    drop(store);
    assert!(!not_empty(tmp.path()), "the follow-up removed the original");
}

#[test]
fn damage_in_the_newest_segment_makes_the_early_answer_unknown() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, _) = two_messages(tmp.path());
    let (store, _) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    store.remove(ids[0], "delivered").unwrap();
    store.remove(ids[1], "delivered").unwrap();
    drop(store);
    let mut data = fs::read(&seg).unwrap();
    let len = data.len();
    data[len - 40] ^= 0x20; // inside the last removal record: it is not read
    fs::write(&seg, &data).unwrap();
    assert!(
        !not_empty(tmp.path()),
        "a removal hidden behind damage is not ignored"
    );
}
