//! The census against a snapshot of the same log: the same live messages, the same queues and
//! open recipients, through follow-ups, updates, removals, escapes and damage.

use super::*;
use crate::{FollowUp, Snapshot, Store, StoreOptions, Update};
use envelope::{Envelope, RecipientState};
use std::fs;

/// What a census and a snapshot must agree on, per message.
fn from_snapshot(dir: &Path) -> Vec<(QueueId, Brief)> {
    let mut out: Vec<(QueueId, Brief)> = Snapshot::scan(dir)
        .unwrap()
        .into_entries()
        .into_iter()
        .map(|e| {
            let env = &e.meta.envelope;
            let brief = Brief {
                queue: e.meta.queue,
                arrival_time: env.arrival_time,
                sender: Arc::from(env.sender.as_str()),
                recipients: env
                    .recipients
                    .iter()
                    .map(|r| (Arc::from(r.address.as_str()), r.state.is_open()))
                    .collect(),
            };
            (e.id, brief)
        })
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out
}

fn from_census(dir: &Path) -> Vec<(QueueId, Brief)> {
    let census = Census::scan(dir).unwrap();
    let mut out: Vec<(QueueId, Brief)> = census.iter().map(|(id, b)| (id, b.clone())).collect();
    out.sort_by_key(|(id, _)| *id);
    assert_eq!(out.len(), census.len());
    out
}

fn sorted(ids: &[QueueId]) -> Vec<QueueId> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

fn env(sender: &str, rcpts: &[&str], arrival: u64) -> Envelope {
    let rcpts = rcpts.iter().map(|r| r.to_string()).collect();
    Envelope::new(sender, rcpts, arrival)
}

fn deferred(why: &str) -> RecipientState {
    RecipientState::Deferred { reason: why.into() }
}

/// A log with every kind of record and change the census must follow.
fn busy_log(dir: &Path) -> Vec<QueueId> {
    let (store, _) = Store::open(dir, StoreOptions::default()).unwrap();
    let ids: Vec<QueueId> = (0..8).map(|_| QueueId::generate()).collect();
    let two = ["a@one.example", "B@Two.Example"];
    store.enqueue(ids[0], env("s@x", &two, 10), b"0\n").unwrap();
    store
        .enqueue(ids[1], env("", &["\"q\\\"uote\"@x"], 20), b"1\n")
        .unwrap();
    store
        .enqueue(ids[2], env("s@x", &["gone@x"], 30), b"2\n")
        .unwrap();
    store
        .enqueue(ids[3], env("t@y", &["held@y"], 40), b"3\n")
        .unwrap();
    let first_sent = Update {
        recipients: vec![
            (0, RecipientState::Sent),
            (1, deferred("4.4.1 \"no\" answer")),
        ],
        queue: QueueName::Deferred,
        next_attempt: 99,
        attempts: 1,
        delay_warned: true,
    };
    store.update(ids[0], first_sent).unwrap();
    let hold = Update {
        queue: QueueName::Hold,
        ..Update::keep(&store.get(ids[3]).unwrap().meta)
    };
    store.update(ids[3], hold).unwrap();
    store.remove(ids[2], "delivered").unwrap();
    let bounce = Some(FollowUp::Remove(ids[1]));
    store
        .enqueue_with(ids[4], env("", &["s@x"], 50), b"4\n", bounce)
        .unwrap();
    let alias = vec![(0, RecipientState::Sent)];
    let forward = Some(FollowUp::SetRecipients(ids[3], alias));
    store
        .enqueue_with(ids[5], env("t@y", &["far@z"], 60), b"5\n", forward)
        .unwrap();
    let bounced = RecipientState::Bounced {
        status: "5.1.1".into(),
        reason: "unknown".into(),
    };
    store
        .enqueue(ids[6], env("u@w", &["b@w", "c@w"], 70), b"6\n")
        .unwrap();
    let out_of_range = Update {
        recipients: vec![(1, bounced), (7, RecipientState::Sent)],
        ..Update::keep(&store.get(ids[6]).unwrap().meta)
    };
    store.update(ids[6], out_of_range).unwrap();
    store.compact().unwrap();
    ids
}

#[test]
fn the_census_sees_what_a_snapshot_of_the_same_log_sees() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = busy_log(tmp.path());
    let census = from_census(tmp.path());
    assert_eq!(census, from_snapshot(tmp.path()));
    let live: Vec<QueueId> = census.iter().map(|(id, _)| *id).collect();
    assert_eq!(live, sorted(&[ids[0], ids[3], ids[4], ids[5], ids[6]]));
    let brief = |id| {
        census
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, b)| b)
            .unwrap()
    };
    let first = brief(ids[0]);
    assert_eq!(first.queue, QueueName::Deferred);
    assert_eq!(
        first.open_recipients().collect::<Vec<_>>(),
        ["B@Two.Example"]
    );
    assert_eq!(brief(ids[3]).queue, QueueName::Hold);
    assert_eq!(
        brief(ids[3]).open_recipients().count(),
        0,
        "the forward marked it sent"
    );
    assert_eq!(brief(ids[6]).open_recipients().collect::<Vec<_>>(), ["b@w"]);
}

/// A flipped bit in a message record: both readers skip that record and no other, and the
/// walk goes on to the records after it.
#[test]
fn damage_in_the_middle_of_the_log_is_skipped_as_a_snapshot_skips_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ids = busy_log(tmp.path());
    let victim = Snapshot::scan(tmp.path())
        .unwrap()
        .get(ids[4])
        .unwrap()
        .location;
    let path = segment::path(&Layout::new(tmp.path()).store(), victim.segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[victim.record_offset as usize + 40] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    let census = from_census(tmp.path());
    assert_eq!(census, from_snapshot(tmp.path()));
    let live: Vec<QueueId> = census.iter().map(|(id, _)| *id).collect();
    assert!(!live.contains(&ids[4]), "the damaged record was read");
    assert!(live.contains(&ids[6]), "the walk stopped at the damage");
}

#[test]
fn a_queue_directory_without_a_store_has_no_messages() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(Census::scan(tmp.path()).unwrap().is_empty());
}
