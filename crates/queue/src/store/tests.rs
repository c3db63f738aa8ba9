//! Space in the active segment is given back when the queue file system is short of it.

use crate::{Store, StoreOptions};
use envelope::{Envelope, QueueId};
use std::fs;
use std::path::Path;

fn env() -> Envelope {
    Envelope::new("s@example.org", vec!["r@example.org".into()], 1_700_000_000)
}

/// Bytes of all segment files.
fn log_bytes(dir: &Path) -> u64 {
    fs::read_dir(crate::Layout::new(dir).store())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

fn options(min_free: u64) -> StoreOptions {
    StoreOptions {
        segment_size: 1 << 20,
        min_free,
        ..StoreOptions::default()
    }
}

/// Queues `n` messages of 10 KB and removes all but `keep`.
fn churn(store: &Store, n: usize, keep: usize) -> Vec<QueueId> {
    let body = vec![b'x'; 10_000];
    let ids: Vec<QueueId> = (0..n).map(|_| QueueId::generate()).collect();
    for id in &ids {
        store.enqueue(*id, env(), &body).unwrap();
    }
    for id in &ids[keep..] {
        store.remove(*id, "done").unwrap();
    }
    ids[..keep].to_vec()
}

#[test]
fn a_mostly_dead_active_segment_is_given_back_when_space_is_short() {
    let tmp = tempfile::tempdir().unwrap();
    // No file system has this much free: space is always short.
    let (store, _) = Store::open(tmp.path(), options(u64::MAX / 2)).unwrap();
    let kept = churn(&store, 60, 2);
    let before = log_bytes(tmp.path());
    assert!(
        before > 500_000,
        "the active segment holds the dead messages"
    );
    while store.compact().unwrap() > 0 {}
    let after = log_bytes(tmp.path());
    assert!(after < 50_000, "{before} bytes of log became {after}");
    for id in &kept {
        assert_eq!(store.read_message(*id).unwrap().len(), 10_000);
    }
    drop(store);
    let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
    assert_eq!(store.len(), 2, "the live messages survive the rotation");
}

#[test]
fn with_space_to_spare_the_active_segment_is_left_to_fill() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
    churn(&store, 60, 2);
    let before = log_bytes(tmp.path());
    while store.compact().unwrap() > 0 {}
    assert_eq!(store.segment_count(), 1);
    assert_eq!(log_bytes(tmp.path()), before);
}

#[test]
fn when_space_is_short_a_mostly_live_oldest_segment_that_pins_dead_ones_is_compacted() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
    // The first segment ends up about two-thirds live (long-deferred mail, say) ...
    churn(&store, 90, 63);
    // ... and pins the dead segments after it: deletion is oldest-first.
    churn(&store, 250, 0);
    assert!(store.segment_count() >= 3);
    let before = log_bytes(tmp.path());
    while store.compact().unwrap() > 0 {}
    assert_eq!(log_bytes(tmp.path()), before, "plenty of space: left alone");
    drop(store);
    let (store, _) = Store::open(tmp.path(), options(u64::MAX / 2)).unwrap();
    while store.compact().unwrap() > 0 {}
    let after = log_bytes(tmp.path());
    assert!(after < before / 2, "{before} bytes of log became {after}");
    assert_eq!(store.len(), 63);
}

#[test]
fn enqueue_as_keeps_its_queue_and_states_across_a_reopen() {
    use crate::{MessageMeta, QueueName};
    use envelope::RecipientState;
    let tmp = tempfile::tempdir().unwrap();
    let id = QueueId::generate();
    let mut envelope = env();
    envelope.recipients[0].state = RecipientState::Deferred {
        reason: "connection refused".into(),
    };
    let meta = MessageMeta {
        envelope,
        queue: QueueName::Hold,
        next_attempt: 1_700_000_600,
        attempts: 1,
        delay_warned: false,
        follow_up: None,
    };
    {
        let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
        store.enqueue_as(id, meta.clone(), b"body\n").unwrap();
        assert!(store.enqueue_as(id, meta.clone(), b"body\n").is_err());
    }
    let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
    let entry = store.get(id).unwrap();
    assert_eq!(entry.meta, meta);
    assert_eq!(store.read_message(id).unwrap(), b"body\n");
}

/// The journaled-file-system options (pre-zeroed spares, O_DSYNC, commit delay) change how a
/// batch reaches the disk, not what is acknowledged: concurrent writers across several
/// rotations all find their messages again after a reopen, intact, and segments that die
/// are still deleted.
#[test]
fn concurrent_commits_with_prezeroed_dsync_segments_and_a_commit_delay_all_come_back() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        segment_size: 64 << 10,
        preallocate: true,
        dsync_writes: true,
        commit_delay: std::time::Duration::from_micros(200),
        ..StoreOptions::default()
    };
    let (store, _) = Store::open(tmp.path(), opts.clone()).unwrap();
    let ids: Vec<Vec<QueueId>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u8)
            .map(|t| {
                let store = store.clone();
                s.spawn(move || {
                    (0..40)
                        .map(|_| {
                            let id = QueueId::generate();
                            store.enqueue(id, env(), &vec![b'a' + t; 1000]).unwrap();
                            id
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(store.segment_count() > 2, "rotated through prepared spares");
    drop(store);
    let (store, report) = Store::open(tmp.path(), opts).unwrap();
    assert_eq!(report.torn_tail, None);
    assert!(report.corrupt_regions.is_empty(), "{report:?}");
    assert_eq!(store.len(), 8 * 40);
    for (t, ids) in ids.iter().enumerate() {
        for id in ids {
            assert_eq!(store.read_message(*id).unwrap(), vec![b'a' + t as u8; 1000]);
        }
    }
    for id in ids.iter().flatten() {
        store.remove(*id, "done").unwrap();
    }
    assert!(store.segment_count() <= 2, "dead segments deleted");
}

/// The daemon's `queue_prezero_segments` / `queue_dsync_writes` can change at any restart:
/// a store written with them opens without them and the other way round, every message
/// written under either setting comes back, and nothing is taken for damage (a prepared
/// spare or a zeroed tail is the end of the data, not a torn record).
#[test]
fn the_journaled_file_system_options_can_be_turned_on_and_off_across_reopens() {
    let tmp = tempfile::tempdir().unwrap();
    let on = StoreOptions {
        segment_size: 64 << 10,
        preallocate: true,
        dsync_writes: true,
        ..StoreOptions::default()
    };
    let off = StoreOptions {
        segment_size: 64 << 10,
        ..StoreOptions::default()
    };
    let mut written: Vec<(QueueId, Vec<u8>)> = Vec::new();
    for (round, opts) in [&on, &off, &on, &off].into_iter().enumerate() {
        let (store, report) = Store::open(tmp.path(), opts.clone()).unwrap();
        assert_eq!(report.torn_tail, None, "round {round}");
        assert!(
            report.corrupt_regions.is_empty(),
            "round {round}: {report:?}"
        );
        assert_eq!(store.len(), written.len(), "round {round}");
        for (id, body) in &written {
            assert_eq!(&store.read_message(*id).unwrap(), body, "round {round}");
        }
        // Enough to rotate at least once under each setting.
        for i in 0..90u32 {
            let id = QueueId::generate();
            let body = vec![b'a' + (round as u8 * 7 + i as u8) % 26; 1000];
            store.enqueue(id, env(), &body).unwrap();
            written.push((id, body));
        }
    }
    let (store, report) = Store::open(tmp.path(), off).unwrap();
    assert!(report.corrupt_regions.is_empty(), "{report:?}");
    assert_eq!(store.len(), written.len());
}

#[test]
fn a_message_just_queued_reads_back_from_the_page_cache_the_same_as_from_the_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path(), options(0)).unwrap();
    let id = QueueId::generate();
    let body: Vec<u8> = (0..30_000u32).map(|i| (i % 253) as u8).collect();
    store.enqueue(id, env(), &body).unwrap();
    // A file system without RWF_NOWAIT answers None (read the blocking way), never other
    // bytes.
    if let Some(read) = store.read_message_cached(id) {
        assert_eq!(read.unwrap(), body);
    }
    assert_eq!(store.read_message(id).unwrap(), body);
    assert!(store.read_message_cached(QueueId::generate()).is_none());
}

/// A message record read back yields its body alone; a record that fails its checksum, is
/// not a message, or belongs to another message is refused as corrupt.
#[test]
fn a_body_is_read_back_only_from_its_own_intact_message_record() {
    use crate::record::{self, MessageMeta};
    use crate::{QueueName, StoreError};
    let id = QueueId::generate();
    let meta = MessageMeta {
        envelope: env(),
        queue: QueueName::Incoming,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
        follow_up: None,
    };
    let mut raw = Vec::new();
    record::encode_message(id, &meta, b"Subject: x\n\nbody\n", &mut raw);
    assert_eq!(
        super::decode_body(raw.clone(), id).unwrap(),
        b"Subject: x\n\nbody\n"
    );
    let corrupt = |r: Result<Vec<u8>, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
    assert!(corrupt(super::decode_body(
        raw.clone(),
        QueueId::generate()
    )));
    let mut flipped = raw.clone();
    let last = flipped.len() - 2;
    flipped[last] ^= 0x01;
    assert!(corrupt(super::decode_body(flipped, id)));
    let mut update = Vec::new();
    record::encode_remove(id, "done", &mut update);
    assert!(corrupt(super::decode_body(update, id)));
}
