//! Store behaviour over real files in a temporary directory.

use crate::{scan_readonly, FollowUp, Op, QueueName, Store, StoreError, StoreOptions, Update};
use envelope::{Envelope, QueueId, RecipientState};
use std::fs;
use std::path::Path;

fn env(rcpts: &[&str]) -> Envelope {
    Envelope::new(
        "sender@example.org",
        rcpts.iter().map(|s| s.to_string()).collect(),
        1_700_000_000,
    )
}

fn open(dir: &Path) -> Store {
    open_with(dir, StoreOptions::default())
}

fn open_with(dir: &Path, options: StoreOptions) -> Store {
    Store::open(dir, options).expect("open").0
}

fn seg_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(crate::Layout::new(dir).store())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn enqueue_read_update_remove_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (QueueId::generate(), QueueId::generate());
    {
        let store = open(tmp.path());
        store
            .enqueue(a, env(&["x@y", "z@y"]), b"Subject: a\n\nA\n")
            .unwrap();
        store
            .enqueue(b, env(&["x@y"]), b"Subject: b\n\nB\n")
            .unwrap();
        let update = Update {
            recipients: vec![(0, RecipientState::Sent)],
            queue: QueueName::Deferred,
            next_attempt: 42,
            attempts: 1,
            delay_warned: false,
        };
        store.update(a, update).unwrap();
        store.remove(b, "delivered").unwrap();
        assert_eq!(store.len(), 1);
    }
    let store = open(tmp.path());
    assert_eq!(store.len(), 1);
    let e = store.get(a).unwrap();
    assert_eq!(e.meta.queue, QueueName::Deferred);
    assert_eq!(e.meta.next_attempt, 42);
    assert_eq!((store.attempts(a), store.attempts(b)), (Some(1), None));
    assert_eq!(e.meta.envelope.recipients[0].state, RecipientState::Sent);
    assert_eq!(e.meta.envelope.recipients[1].state, RecipientState::Pending);
    assert_eq!(store.read_message(a).unwrap(), b"Subject: a\n\nA\n");
    assert!(matches!(
        store.read_message(b),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn second_open_is_refused_while_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let _store = open(tmp.path());
    assert!(matches!(
        Store::open(tmp.path(), StoreOptions::default()),
        Err(StoreError::Locked(_))
    ));
}

#[test]
fn duplicate_ids_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let id = QueueId::generate();
    store.enqueue(id, env(&["a@b"]), b"x\n").unwrap();
    assert!(matches!(
        store.enqueue(id, env(&["a@b"]), b"x\n"),
        Err(StoreError::Duplicate(_))
    ));
}

#[test]
fn torn_tail_is_cut_and_earlier_messages_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let id = QueueId::generate();
    {
        let store = open(tmp.path());
        store.enqueue(id, env(&["a@b"]), b"kept\n").unwrap();
        store
            .enqueue(QueueId::generate(), env(&["a@b"]), b"torn\n")
            .unwrap();
    }
    let seg = crate::Layout::new(tmp.path())
        .store()
        .join(&seg_files(tmp.path())[0]);
    let len = fs::metadata(&seg).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 3).unwrap(); // power lost in the middle of the second batch
    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.len(), 1);
    assert!(report.torn_tail.is_some());
    assert_eq!(store.read_message(id).unwrap(), b"kept\n");
    // And the store keeps working after the cut.
    store
        .enqueue(QueueId::generate(), env(&["a@b"]), b"after\n")
        .unwrap();
    drop(store);
    assert_eq!(open(tmp.path()).len(), 2);
}

#[test]
fn damage_in_the_middle_goes_to_corrupt_and_the_rest_survives() {
    let tmp = tempfile::tempdir().unwrap();
    let ids: Vec<QueueId> = (0..3).map(|_| QueueId::generate()).collect();
    {
        let store = open(tmp.path());
        for id in &ids {
            store
                .enqueue(*id, env(&["a@b"]), b"Subject: s\n\nbody\n")
                .unwrap();
        }
    }
    let seg = crate::Layout::new(tmp.path())
        .store()
        .join(&seg_files(tmp.path())[0]);
    let mut data = fs::read(&seg).unwrap();
    let second = data.len() / 3 + 40; // inside the second record
    data[second] ^= 0xff;
    fs::write(&seg, &data).unwrap();
    let (store, report) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.len(), 2, "the two undamaged messages survive");
    assert!(store.contains(ids[0]) && store.contains(ids[2]));
    assert_eq!(report.corrupt_regions.len(), 1);
    assert!(tmp
        .path()
        .join("corrupt")
        .join(&report.corrupt_regions[0].0)
        .exists());
}

#[test]
fn garbage_segment_does_not_stop_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(crate::Layout::new(tmp.path()).store()).unwrap();
    fs::write(
        tmp.path().join("store/000000000001.seg"),
        vec![0xA5u8; 5000],
    )
    .unwrap();
    let store = open(tmp.path());
    assert_eq!(store.len(), 0);
    store
        .enqueue(QueueId::generate(), env(&["a@b"]), b"x\n")
        .unwrap();
}

#[test]
fn concurrent_writers_share_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let store = store.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    store
                        .enqueue(QueueId::generate(), env(&["a@b"]), &[b'x'; 4096])
                        .unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let stats = store.commit_stats();
    assert_eq!(stats.records, 800);
    assert!(stats.batches < 800, "some fsyncs were shared: {stats:?}");
    assert_eq!(store.len(), 800);
    drop(store);
    assert_eq!(open(tmp.path()).len(), 800);
}

/// Compaction copies the survivors of a segment in one batch (one write, one sync), not a
/// commit each; every copy reads back whole, and one removed before the compaction is not
/// copied.
#[test]
fn compaction_copies_a_segment_s_survivors_in_one_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_with(
        tmp.path(),
        StoreOptions {
            segment_size: 64 * 1024,
            ..StoreOptions::default()
        },
    );
    let mut ids = Vec::new();
    for i in 0..60u8 {
        let id = QueueId::generate();
        store
            .enqueue(id, env(&["a@b"]), &[b'a' + i % 26; 1000])
            .unwrap();
        ids.push((id, i));
    }
    assert!(seg_files(tmp.path()).len() >= 2);
    // Keep every fifth message of the first segment's worth; remove the rest.
    let (kept, gone): (Vec<_>, Vec<_>) = ids.iter().partition(|(_, i)| i % 5 == 0);
    for (id, _) in &gone {
        store.remove(*id, "delivered").unwrap();
    }
    let before = store.commit_stats();
    let moved = store.compact().unwrap();
    let after = store.commit_stats();
    assert!(moved >= 2, "moved {moved}");
    assert_eq!(after.batches - before.batches, 1, "{before:?} -> {after:?}");
    assert_eq!(after.records - before.records, moved as u64);
    for (id, i) in &kept {
        assert_eq!(store.read_message(*id).unwrap(), vec![b'a' + i % 26; 1000]);
    }
    drop(store);
    let store = open(tmp.path());
    for (id, i) in &kept {
        assert_eq!(store.read_message(*id).unwrap(), vec![b'a' + i % 26; 1000]);
    }
    for (id, _) in &gone {
        assert!(store.get(*id).is_none());
    }
}

#[test]
fn dead_segments_are_deleted_and_compaction_frees_pinned_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open_with(
        tmp.path(),
        StoreOptions {
            segment_size: 8192,
            ..StoreOptions::default()
        },
    );
    let mut ids = Vec::new();
    for _ in 0..40 {
        let id = QueueId::generate();
        store.enqueue(id, env(&["a@b"]), &[b'y'; 1000]).unwrap();
        ids.push(id);
    }
    assert!(seg_files(tmp.path()).len() > 3);
    let long_lived = ids[0];
    for id in &ids[1..] {
        store.remove(*id, "delivered").unwrap();
    }
    // The first segment is pinned by one message; compaction moves it.
    let before = seg_files(tmp.path()).len();
    assert!(before >= 2);
    let moved = store.compact().unwrap();
    assert_eq!(moved, 1);
    store
        .update(
            long_lived,
            Update {
                recipients: vec![],
                queue: QueueName::Hold,
                next_attempt: 0,
                attempts: 3,
                delay_warned: false,
            },
        )
        .unwrap();
    // Every closed segment is dead now; only the newest (active) one may remain.
    for _ in 0..3 {
        store.compact().unwrap();
    }
    assert!(
        seg_files(tmp.path()).len() <= 2,
        "{:?}",
        seg_files(tmp.path())
    );
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.len(), 1);
    let e = store.get(long_lived).unwrap();
    assert_eq!(e.meta.queue, QueueName::Hold);
    assert_eq!(e.meta.attempts, 3);
    assert_eq!(store.read_message(long_lived).unwrap(), vec![b'y'; 1000]);
}

#[test]
fn readonly_scan_sees_what_the_owner_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let id = QueueId::generate();
    store.enqueue(id, env(&["a@b"]), b"x\n").unwrap();
    let seen = scan_readonly(tmp.path()).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, id);
}

#[test]
fn follow_ups_apply_with_their_message_and_only_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (orig, bounce, fwd) = (
        QueueId::generate(),
        QueueId::generate(),
        QueueId::generate(),
    );
    let other = QueueId::generate();
    {
        let store = open(tmp.path());
        store.enqueue(orig, env(&["gone@x"]), b"o\n").unwrap();
        store
            .enqueue(other, env(&["alias@x", "b@x"]), b"p\n")
            .unwrap();
        store
            .enqueue_with(
                bounce,
                env(&["sender@x"]),
                b"b\n",
                Some(FollowUp::Remove(orig)),
            )
            .unwrap();
        let states = vec![(0, RecipientState::Sent)];
        store
            .enqueue_with(
                fwd,
                env(&["far@y"]),
                b"f\n",
                Some(FollowUp::SetRecipients(other, states)),
            )
            .unwrap();
        assert!(!store.contains(orig));
        let o = store.get(other).unwrap();
        assert_eq!(o.meta.envelope.recipients[0].state, RecipientState::Sent);
        assert!(store.get(fwd).unwrap().meta.follow_up.is_none());
    }
    let store = open(tmp.path());
    assert!(!store.contains(orig));
    assert!(store.contains(bounce) && store.contains(fwd));
    let o = store.get(other).unwrap();
    assert_eq!(o.meta.envelope.recipients[0].state, RecipientState::Sent);
    assert_eq!(o.meta.envelope.recipients[1].state, RecipientState::Pending);
}

#[test]
fn bulk_operations_share_one_sync_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let ids: Vec<QueueId> = (0..500).map(|_| QueueId::generate()).collect();
    for id in &ids {
        store.enqueue(*id, env(&["a@b"]), b"x\n").unwrap();
    }
    let before = store.commit_stats().batches;
    let hold = Update {
        recipients: vec![],
        queue: QueueName::Hold,
        next_attempt: 0,
        attempts: 0,
        delay_warned: false,
    };
    let mut ops: Vec<Op> = ids[..250]
        .iter()
        .map(|id| Op::Remove(*id, "postsuper".into()))
        .collect();
    ops.extend(ids[250..].iter().map(|id| Op::Update(*id, hold.clone())));
    ops.push(Op::Remove(QueueId::generate(), "unknown is skipped".into()));
    assert_eq!(store.apply_many(ops).unwrap(), 500);
    assert_eq!(
        store.commit_stats().batches - before,
        1,
        "one fdatasync for the whole bulk"
    );
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.len(), 250);
    assert!(ids[250..]
        .iter()
        .all(|id| store.get(*id).unwrap().meta.queue == QueueName::Hold));
}

/// Opens the store under `$QUEUE_MEMORY_DIR` and prints the memory it holds (run with
/// `--release --ignored --nocapture`; a diagnostic, not a check).
#[test]
#[ignore]
fn memory_of_an_opened_store() {
    let Some(dir) = std::env::var_os("QUEUE_MEMORY_DIR") else {
        return;
    };
    let heap = || sys::heap_in_use() >> 20;
    let status = |key: &str| {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    let t = std::time::Instant::now();
    let (store, report) = Store::open(Path::new(&dir), StoreOptions::default()).unwrap();
    eprintln!(
        "{} messages in {:?}: heap in use {} MiB, RSS {} (peak {})",
        report.messages,
        t.elapsed(),
        heap(),
        status("VmRSS:"),
        status("VmHWM:")
    );
    drop(store);
}

#[test]
fn async_writers_are_durable_and_share_fsyncs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ids: Vec<QueueId> = (0..400).map(|_| QueueId::generate()).collect();
    rt.block_on(async {
        let tasks: Vec<_> = ids
            .iter()
            .map(|&id| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .enqueue_async(id, env(&["a@b"]), &[b'z'; 4096], None)
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let hold = Update {
            recipients: vec![],
            queue: QueueName::Hold,
            next_attempt: 0,
            attempts: 1,
            delay_warned: false,
        };
        store.update_async(ids[0], hold).await.unwrap();
        store.remove_async(ids[1], "done").await.unwrap();
        assert!(matches!(
            store.remove_async(ids[1], "again").await,
            Err(StoreError::NotFound(_))
        ));
    });
    let stats = store.commit_stats();
    assert!(stats.batches < stats.records, "{stats:?}");
    drop(rt);
    drop(store);
    let store = open(tmp.path());
    assert_eq!(store.len(), 399);
    assert_eq!(store.get(ids[0]).unwrap().meta.queue, QueueName::Hold);
}

#[test]
fn a_store_opened_before_serve_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    // Restored at once. Other threads of this test binary only create temporary
    // directories, which the check below ignores.
    let old = sys::set_umask(0o022);
    let store = open(tmp.path());
    sys::set_umask(old);
    drop(store);
    let mode = fs::metadata(crate::Layout::new(tmp.path()).store())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "store/ is {:o}", mode & 0o777);
}

/// Recipient states recorded alone keep what the message's other fields are when the record
/// is written: a hold queued just before it (in the same batch) and the retry time stay.
#[test]
fn recipient_states_alone_keep_a_hold_queued_ahead_of_them_and_survive_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, gone) = (QueueId::generate(), QueueId::generate());
    {
        let store = open(tmp.path());
        store.enqueue(a, env(&["x@y", "z@w"]), b"x\n").unwrap();
        store.enqueue(gone, env(&["x@y"]), b"x\n").unwrap();
        let deferred = Update {
            recipients: vec![],
            queue: QueueName::Deferred,
            next_attempt: 42,
            attempts: 3,
            delay_warned: true,
        };
        store.update(a, deferred.clone()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let hold = Update {
            queue: QueueName::Hold,
            ..deferred
        };
        // The hold takes the writer's turn but is not written yet: the recipient states
        // join its batch, behind it, as does the removal of `gone` ahead of its own states.
        let tell = |tx: &std::sync::mpsc::Sender<Result<(), StoreError>>| {
            let tx = tx.clone();
            move |r| tx.send(r).unwrap()
        };
        let driver = store
            .update_then(a, hold, tell(&tx))
            .expect("writer's turn");
        assert!(store
            .set_recipients_then(a, vec![(0, RecipientState::Sent)], tell(&tx))
            .is_none());
        assert!(store.remove_then(gone, "deleted", tell(&tx)).is_none());
        let sent = vec![(0, RecipientState::Sent)];
        assert!(store.set_recipients_then(gone, sent, tell(&tx)).is_none());
        driver.run();
        for _ in 0..4 {
            rx.recv().unwrap().unwrap();
        }
    }
    let store = open(tmp.path());
    assert_eq!(store.len(), 1, "the removed message stays removed");
    let meta = store.get(a).unwrap().meta;
    assert_eq!(meta.queue, QueueName::Hold, "the hold is not undone");
    assert_eq!(
        (meta.next_attempt, meta.attempts, meta.delay_warned),
        (42, 3, true)
    );
    let states: Vec<_> = meta.envelope.recipients.iter().map(|r| &r.state).collect();
    assert_eq!(states, [&RecipientState::Sent, &RecipientState::Pending]);
}
