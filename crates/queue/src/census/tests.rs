//! The census against a snapshot of the same log: the same live messages, the same queues and
//! open recipients, through follow-ups, updates, removals, escapes and damage.

use super::*;
use crate::{FollowUp, Snapshot, Store, StoreOptions, Update};
use envelope::{Envelope, RecipientState};
use std::fs;

/// What a census and a snapshot must agree on, per message: queue, arrival time, sender and
/// each recipient with whether it is open.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Owned {
    queue: QueueName,
    arrival_time: u64,
    sender: String,
    recipients: Vec<(String, bool)>,
}

impl Owned {
    fn open_recipients(&self) -> Vec<&str> {
        let open = self.recipients.iter().filter(|(_, open)| *open);
        open.map(|(a, _)| a.as_str()).collect()
    }
}

fn from_snapshot(dir: &Path) -> Vec<(QueueId, Owned)> {
    let mut out: Vec<(QueueId, Owned)> = Snapshot::scan(dir)
        .unwrap()
        .into_entries()
        .into_iter()
        .map(|e| {
            let env = &e.meta.envelope;
            let brief = Owned {
                queue: e.meta.queue,
                arrival_time: env.arrival_time,
                sender: env.sender.clone(),
                recipients: env
                    .recipients
                    .iter()
                    .map(|r| (r.address.clone(), r.state.is_open()))
                    .collect(),
            };
            (e.id, brief)
        })
        .collect();
    out.sort_by_key(|(id, _)| *id);
    out
}

fn from_census(dir: &Path) -> Vec<(QueueId, Owned)> {
    census_owned(Census::scan(dir).unwrap())
}

/// Scans with `decoders` threads reading `chunk` bytes at a time.
fn from_census_with(dir: &Path, decoders: usize, chunk: usize) -> Vec<(QueueId, Owned)> {
    census_owned(Census::scan_with(dir, decoders, chunk).unwrap())
}

fn census_owned(census: Census) -> Vec<(QueueId, Owned)> {
    let mut out: Vec<(QueueId, Owned)> = census
        .iter()
        .map(|(id, b)| {
            let owned = Owned {
                queue: b.queue,
                arrival_time: b.arrival_time,
                sender: b.sender.to_string(),
                recipients: b.recipients().map(|(a, o)| (a.to_string(), o)).collect(),
            };
            assert_eq!(
                census
                    .get(id)
                    .unwrap()
                    .open_recipients()
                    .collect::<Vec<_>>(),
                owned.open_recipients()
            );
            (id, owned)
        })
        .collect();
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
    assert_eq!(first.open_recipients(), ["B@Two.Example"]);
    assert_eq!(brief(ids[3]).queue, QueueName::Hold);
    assert_eq!(
        brief(ids[3]).open_recipients().len(),
        0,
        "the forward marked it sent"
    );
    assert_eq!(brief(ids[6]).open_recipients(), ["b@w"]);
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
    for (decoders, chunk) in [(1, 64), (2, 300)] {
        let chunked = from_census_with(tmp.path(), decoders, chunk);
        assert_eq!(chunked, census, "{decoders} decoders, {chunk}-byte chunks");
    }
}

/// What a message meta decodes to, whichever reader: sender, recipients with their open
/// state, arrival time, queue; `None` if it does not decode.
type MetaSeen = Option<(String, Vec<(String, bool)>, u64, QueueName)>;

fn meta_by_serde(json: &str) -> MetaSeen {
    let meta: MetaView<'_> = serde_json::from_str(json).ok()?;
    // The quick reader never takes a follow-up: it must give up on one.
    let mut rcpts = Vec::new();
    for r in &meta.envelope.recipients {
        rcpts.push((r.address.to_string(), r.state.is_open()));
    }
    let env = &meta.envelope;
    let seen = (env.sender.to_string(), rcpts, env.arrival_time, meta.queue);
    Some(seen).filter(|_| meta.follow_up.is_none())
}

fn meta_by_quick(json: &str) -> MetaSeen {
    let mut rcpts = Vec::new();
    let quick = quick::message(json, |a, open| rcpts.push((a.to_string(), open)))?;
    Some((quick.sender.into(), rcpts, quick.arrival_time, quick.queue))
}

type UpdateSeen = Option<(Vec<(usize, bool)>, QueueName)>;

fn update_by_serde(json: &str) -> UpdateSeen {
    let update: UpdateView = serde_json::from_str(json).ok()?;
    let states = update.recipients.iter().map(|(i, s)| (*i, s.is_open()));
    Some((states.collect(), update.queue))
}

fn update_by_quick(json: &str) -> UpdateSeen {
    let mut states = Vec::new();
    let queue = quick::update(json, |i, open| states.push((i, open)))?;
    Some((states, queue))
}

/// The JSON the store writes, in every shape its optional fields give.
fn written_records() -> (Vec<String>, Vec<String>) {
    let bounced = RecipientState::Bounced {
        status: "5.1.1".into(),
        reason: "user unknown".into(),
    };
    let mut metas = Vec::new();
    let mut updates = Vec::new();
    for variant in 0..6 {
        let mut env = env(
            "cron@host.example",
            &["root@d1.example", "ops@d2.example"],
            17,
        );
        let r = &mut env.recipients;
        r[1].state = [
            RecipientState::Sent,
            deferred("4.4.1 timed out"),
            bounced.clone(),
        ][variant % 3]
            .clone();
        if variant & 1 == 1 {
            r[0].orcpt = Some("rfc822;root@d1.example".into());
            r[1].notify = Some("FAILURE,DELAY".into());
            env.envid = Some("x1".into());
            env.ret = Some("HDRS".into());
            env.filter = Some("smtp:[127.0.0.1]:10026".into());
        }
        env.origin = "pickup".into();
        if variant == 4 {
            env.sender = "\"q\\\"uote\"@x".into(); // an escape: serde's alone
        }
        if variant == 5 {
            env.recipients.truncate(1);
        }
        let meta = crate::record::MessageMeta {
            envelope: env,
            queue: [QueueName::Incoming, QueueName::Deferred, QueueName::Hold][variant % 3],
            next_attempt: 1_700_000_000 + variant as u64,
            attempts: variant as u32,
            delay_warned: variant == 2,
            follow_up: (variant == 3).then(|| FollowUp::Remove(QueueId::generate())),
        };
        metas.push(serde_json::to_string(&meta).unwrap());
        let update = Update {
            recipients: match variant {
                0 => vec![],
                1 => vec![(0, RecipientState::Pending), (1, bounced.clone())],
                _ => vec![
                    (variant, deferred("4.2.2 mailbox full")),
                    (0, RecipientState::Sent),
                ],
            },
            queue: meta.queue,
            next_attempt: meta.next_attempt,
            attempts: meta.attempts,
            delay_warned: variant == 2,
        };
        updates.push(serde_json::to_string(&update).unwrap());
    }
    (metas, updates)
}

/// The quick reader takes the store's own records (but for escapes and follow-ups, which it
/// leaves to serde) and reads them as serde does; and on every damaged variant of them (a
/// byte dropped, or replaced by a digit, a quote, a backslash, a space, a brace, a letter or
/// a control character) it either gives up or agrees with serde: it never accepts what serde
/// refuses, nor reads it otherwise.
#[test]
fn the_quick_reader_reads_what_serde_reads_or_gives_up() {
    let (metas, updates) = written_records();
    for (i, json) in metas.iter().enumerate() {
        let quick = meta_by_quick(json);
        assert!(meta_by_serde(json).is_some() || i == 3, "{json}");
        assert_eq!(quick.is_some(), i != 3 && i != 4, "{json}");
        if quick.is_some() {
            assert_eq!(quick, meta_by_serde(json), "{json}");
        }
    }
    for json in &updates {
        assert!(update_by_quick(json).is_some(), "{json}");
        assert_eq!(update_by_quick(json), update_by_serde(json), "{json}");
    }
    let mut taken = 0;
    for json in metas.iter().chain(&updates) {
        let is_meta = json.starts_with("{\"envelope\"");
        for at in 0..json.len() {
            for replacement in ["", "0", "9", "\"", "\\", " ", "}", "]", "x", "\u{1}", "é"] {
                let mut bytes = json.as_bytes().to_vec();
                bytes.splice(at..at + 1, replacement.bytes());
                let Ok(damaged) = String::from_utf8(bytes) else {
                    continue;
                };
                if is_meta {
                    if let Some(quick) = meta_by_quick(&damaged) {
                        taken += 1;
                        assert_eq!(Some(quick), meta_by_serde(&damaged), "{damaged}");
                    }
                } else if let Some(quick) = update_by_quick(&damaged) {
                    taken += 1;
                    assert_eq!(Some(quick), update_by_serde(&damaged), "{damaged}");
                }
            }
        }
    }
    // Changes inside strings and numbers are still the store's shape: some are taken.
    assert!(taken > 100, "only {taken} damaged variants read quickly");
}

#[test]
fn a_queue_directory_without_a_store_has_no_messages() {
    let tmp = tempfile::tempdir().unwrap();
    assert!(Census::scan(tmp.path()).unwrap().is_empty());
}

/// A tiny xorshift generator: the same sequence for a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn random_state(rng: &mut Rng) -> RecipientState {
    match rng.below(5) {
        0 => RecipientState::Sent,
        1 => RecipientState::Bounced {
            status: "5.1.1".into(),
            reason: "unknown".into(),
        },
        2 => deferred("4.4.1 \"no\" answer"),
        3 => deferred("4.4.2 lost connection with mx.d.x[192.0.2.1] while receiving"),
        _ => RecipientState::Pending,
    }
}

/// One random change to the store: a new message (1 to 3 recipients, sometimes with a
/// follow-up on an older one), a deferral or delivery of some recipients with a queue move,
/// a removal, or a compaction.
fn random_step(store: &Store, live: &mut Vec<QueueId>, rng: &mut Rng, t: u64) {
    let pick = |rng: &mut Rng, live: &[QueueId]| live[rng.below(live.len() as u64) as usize];
    match rng.below(10) {
        0..=3 => {
            let n = 1 + rng.below(3) as usize;
            let rcpts: Vec<String> = (0..n).map(|_| format!("r@d{}.x", rng.below(7))).collect();
            let sender = format!("s{}@x", rng.below(3));
            let env = Envelope::new(sender, rcpts, t);
            let follow_up = match (live.is_empty(), rng.below(4)) {
                (false, 0) => Some(FollowUp::Remove(pick(rng, live))),
                (false, 1) => Some(FollowUp::SetRecipients(
                    pick(rng, live),
                    vec![(rng.below(3) as usize, random_state(rng))],
                )),
                _ => None,
            };
            let id = QueueId::generate();
            store.enqueue_with(id, env, b"m\n", follow_up).unwrap();
            live.push(id);
        }
        4..=6 if !live.is_empty() => {
            let id = pick(rng, live);
            let Some(entry) = store.get(id) else { return };
            let states = (0..1 + rng.below(2)).map(|_| (rng.below(4) as usize, random_state(rng)));
            let queues = [QueueName::Deferred, QueueName::Hold, QueueName::Incoming];
            let update = Update {
                recipients: states.collect(),
                queue: queues[rng.below(3) as usize],
                ..Update::keep(&entry.meta)
            };
            store.update(id, update).unwrap();
        }
        7..=8 if !live.is_empty() => {
            let id = live.swap_remove(rng.below(live.len() as u64) as usize);
            if store.get(id).is_some() {
                store.remove(id, "delivered").unwrap();
            }
        }
        _ => {
            store.compact().unwrap();
        }
    }
}

#[test]
fn random_adds_defers_deliveries_and_removals_leave_the_census_equal_to_a_snapshot() {
    for seed in 1..=6u64 {
        let tmp = tempfile::tempdir().unwrap();
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let mut live = Vec::new();
        let options = StoreOptions {
            segment_size: 4096,
            ..StoreOptions::default()
        };
        for reopen in 0..4 {
            let (store, _) = Store::open(tmp.path(), options.clone()).unwrap();
            for step in 0..150 {
                random_step(&store, &mut live, &mut rng, reopen * 1000 + step);
            }
            drop(store);
            let census = from_census(tmp.path());
            let snapshot = from_snapshot(tmp.path());
            assert_eq!(census, snapshot, "seed {seed}, reopen {reopen}");
            // One decoder or more than there are cores; chunks smaller than a record, and
            // a few records long: the pipeline and the chunked reading change nothing.
            for (decoders, chunk) in [(1, 64), (3, 1000), (2, 4096)] {
                let census = from_census_with(tmp.path(), decoders, chunk);
                let config = format!("{decoders} decoders, {chunk}-byte chunks");
                assert_eq!(census, snapshot, "seed {seed}, reopen {reopen}, {config}");
            }
        }
    }
}
