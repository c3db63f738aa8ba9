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
fn zeros_after_the_last_record_are_a_torn_write() {
    let tmp = tempfile::tempdir().unwrap();
    let (seg, ids, _) = two_messages(tmp.path());
    let mut data = fs::read(&seg).unwrap();
    data.extend_from_slice(&[0u8; 4096]); // the file grew, the data never landed
    fs::write(&seg, &data).unwrap();
    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(report.torn_tail.map(|t| t.1), Some(4096));
    assert!(report.corrupt_regions.is_empty());
    assert!(store.contains(ids[0]) && store.contains(ids[1]));
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
