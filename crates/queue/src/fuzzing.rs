//! Property checks for the cargo-fuzz targets `queue_record` and `queue_segment` (`fuzz/`
//! at the repository root), also run on a few thousand random inputs in every `cargo test`.
//!
//! Fuzzer bytes are read as a *log script* ([`script`]): a list of steps, each a message,
//! update or remove record built by our own encoder from fuzzer-chosen contents, or raw
//! garbage, or a frame with a correct CRC around fuzzer bytes (so the JSON decoders see
//! arbitrary payloads: a CRC is not something random mutation gets past), or a record torn
//! or bit-flipped. Then:
//! - [`check_records`]: every record decodes to what was encoded, re-encodes to the same
//!   bytes, and every proper prefix is `Incomplete`; applying the log to the compact index
//!   gives the same messages as applying it to a plain map (the index's model).
//! - [`check_segment`]: the log, split into segment files, goes through start-up recovery:
//!   no panic; a second recovery of the repaired store finds the same messages and nothing
//!   more to cut; every message's location holds its record; an undamaged log loses nothing.

use crate::index::{apply_update, Entry, Index, Location};
use crate::record::{self, Decoded, FollowUp, MessageMeta, Record, Update, HEADER_LEN, MAGIC};
use crate::recovery;
use crate::QueueName;
use envelope::fuzzing::Bytes;
use envelope::QueueId;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One step of a log script.
#[derive(Debug, Clone)]
pub enum Step {
    /// The meta is boxed: it is most of the step's size, and most steps are small.
    Message(QueueId, Box<MessageMeta>, Vec<u8>),
    Update(QueueId, Update),
    Remove(QueueId, String),
    /// A frame with a correct header and CRC around any payload.
    Framed(u8, Vec<u8>),
    /// Bytes that are not (meant to be) a record.
    Garbage(Vec<u8>),
    /// A valid record's bytes, cut short or with one byte changed.
    Damaged(Vec<u8>),
}

impl Step {
    /// The step's bytes in the log.
    pub fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Step::Message(id, meta, body) => {
                record::encode_message(*id, meta, body, &mut out);
            }
            Step::Update(id, update) => record::encode_update(*id, update, &mut out),
            Step::Remove(id, reason) => record::encode_remove(*id, reason, &mut out),
            Step::Framed(kind, payload) => frame(*kind, payload, &mut out),
            Step::Garbage(bytes) | Step::Damaged(bytes) => out.extend_from_slice(bytes),
        }
        out
    }

    fn is_record(&self) -> bool {
        matches!(
            self,
            Step::Message(..) | Step::Update(..) | Step::Remove(..)
        )
    }
}

/// The frame of `record.rs`'s format, written independently of its encoder.
fn frame(kind: u8, payload: &[u8], out: &mut Vec<u8>) {
    let mut header = vec![kind, 0, 0, 0];
    header.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header);
    hasher.update(payload);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&header);
    out.extend_from_slice(&hasher.finalize().to_le_bytes());
    out.extend_from_slice(payload);
}

/// A small ID space, so updates, removes, relocations and follow-ups hit earlier messages.
fn id(bytes: &mut Bytes<'_>) -> QueueId {
    QueueId::from_u128(0x0123_4567_89ab_cdef_0000 + u128::from(bytes.u8() % 8))
}

fn queue_name(bytes: &mut Bytes<'_>) -> QueueName {
    [QueueName::Incoming, QueueName::Deferred, QueueName::Hold][usize::from(bytes.u8() % 3)]
}

fn states(bytes: &mut Bytes<'_>) -> Vec<(usize, envelope::RecipientState)> {
    let count = usize::from(bytes.u8() % 4);
    (0..count)
        .map(|_| (usize::from(bytes.u8() % 6), bytes.state()))
        .collect()
}

fn meta(bytes: &mut Bytes<'_>) -> MessageMeta {
    let envelope = bytes.envelope(5);
    let follow_up = match bytes.u8() % 4 {
        0 => Some(FollowUp::Remove(id(bytes))),
        1 => Some(FollowUp::SetRecipients(id(bytes), states(bytes))),
        _ => None,
    };
    MessageMeta {
        envelope,
        queue: queue_name(bytes),
        next_attempt: bytes.u64(),
        attempts: bytes.u32(),
        delay_warned: bytes.bool(),
        follow_up,
    }
}

fn update(bytes: &mut Bytes<'_>) -> Update {
    Update {
        recipients: states(bytes),
        queue: queue_name(bytes),
        next_attempt: bytes.u64(),
        attempts: bytes.u32(),
        delay_warned: bytes.bool(),
    }
}

/// Reads fuzzer bytes as up to 24 log steps.
pub fn script(data: &[u8]) -> Vec<Step> {
    let mut bytes = Bytes::new(data);
    let mut steps = Vec::new();
    while !bytes.is_empty() && steps.len() < 24 {
        let step = match bytes.u8() % 8 {
            0 => Step::Garbage(bytes.slice(255).to_vec()),
            1 => Step::Framed(bytes.u8() % 5, bytes.slice(255).to_vec()),
            2 | 3 => Step::Message(
                id(&mut bytes),
                Box::new(meta(&mut bytes)),
                bytes.slice(255).to_vec(),
            ),
            4 | 5 => Step::Update(id(&mut bytes), update(&mut bytes)),
            6 => Step::Remove(id(&mut bytes), bytes.string()),
            _ => damaged(&mut bytes),
        };
        steps.push(step);
    }
    steps
}

fn damaged(bytes: &mut Bytes<'_>) -> Step {
    let mut good =
        Step::Message(id(bytes), Box::new(meta(bytes)), bytes.slice(64).to_vec()).bytes();
    let at = bytes.u32() as usize % good.len();
    match bytes.bool() {
        true => good.truncate(at),
        false => good[at] ^= bytes.u8() | 1,
    }
    Step::Damaged(good)
}

/// Decoding never panics; valid records round-trip; the index agrees with a plain map.
pub fn check_records(data: &[u8]) {
    if let Decoded::Record(_, len) = record::decode(data) {
        assert!((HEADER_LEN..=data.len()).contains(&len));
    }
    let steps = script(data);
    for step in &steps {
        match step {
            Step::Framed(..) => check_framed(&step.bytes()),
            step if step.is_record() => check_round_trip(step),
            _ => {}
        }
    }
    let records: Vec<Step> = steps.into_iter().filter(Step::is_record).collect();
    let (index, model) = replay(&records);
    assert_index_matches(index, &model);
}

/// A frame around any payload: a record only if it re-encodes to an equal record.
fn check_framed(bytes: &[u8]) {
    let Decoded::Record(rec, len) = record::decode(bytes) else {
        return;
    };
    assert_eq!(len, bytes.len());
    let again = Step::from_record(&rec).bytes();
    match (rec, record::decode(&again)) {
        (
            Record::Message { meta, body, .. },
            Decoded::Record(
                Record::Message {
                    meta: m, body: b, ..
                },
                _,
            ),
        ) => {
            assert_eq!((meta, body), (m, b));
        }
        (Record::Update { update, .. }, Decoded::Record(Record::Update { update: u, .. }, _)) => {
            assert_eq!(update, u);
        }
        (Record::Remove { .. }, Decoded::Record(Record::Remove { .. }, _)) => {}
        (rec, again) => panic!("{rec:?} re-encoded as {again:?}"),
    }
}

impl Step {
    fn from_record(rec: &Record<'_>) -> Step {
        match rec {
            Record::Message { id, meta, body } => {
                Step::Message(*id, Box::new(meta.clone()), body.to_vec())
            }
            Record::Update { id, update } => Step::Update(*id, update.clone()),
            Record::Remove { id } => Step::Remove(*id, String::new()),
        }
    }
}

/// encode → decode gives the same record, encode(decode(x)) == x, prefixes are incomplete.
fn check_round_trip(step: &Step) {
    let bytes = step.bytes();
    let Decoded::Record(rec, len) = record::decode(&bytes) else {
        panic!("our own record does not decode: {step:?}");
    };
    assert_eq!(len, bytes.len());
    let again = match (step, &rec) {
        (
            Step::Message(id, meta, body),
            Record::Message {
                id: i,
                meta: m,
                body: b,
            },
        ) => {
            assert_eq!((id, &**meta, body.as_slice()), (i, m, *b));
            Step::from_record(&rec)
        }
        (Step::Update(id, update), Record::Update { id: i, update: u }) => {
            assert_eq!((id, update), (i, u));
            Step::from_record(&rec)
        }
        (Step::Remove(id, reason), Record::Remove { id: i }) => {
            assert_eq!(id, i);
            Step::Remove(*i, reason.clone())
        }
        (step, rec) => panic!("{step:?} decoded as {rec:?}"),
    };
    assert_eq!(again.bytes(), bytes, "re-encoding changed the bytes");
    for cut in 0..bytes.len() {
        assert!(
            matches!(record::decode(&bytes[..cut]), Decoded::Incomplete),
            "a {cut}-byte prefix is not incomplete"
        );
    }
}

type Model = BTreeMap<QueueId, MessageMeta>;

/// Applies records to a fresh index (as recovery does) and to a plain map.
fn replay(records: &[Step]) -> (Index, Model) {
    let mut index = Index::default();
    let mut model = Model::new();
    let mut offset = 0;
    for step in records {
        let len = step.bytes().len() as u64;
        match step {
            Step::Message(id, meta, body) => {
                let location = Location {
                    segment: 1,
                    record_offset: offset,
                    record_len: len,
                };
                index.put(*id, meta, body.len() as u64, location);
                model_put(&mut model, *id, meta);
            }
            Step::Update(id, update) => {
                index.update(*id, update);
                if let Some(meta) = model.get_mut(id) {
                    apply_update(meta, update);
                }
            }
            Step::Remove(id, _) => {
                index.remove(*id);
                model.remove(id);
            }
            _ => unreachable!("only records are replayed"),
        }
        offset += len;
    }
    (index, model)
}

fn model_put(model: &mut Model, id: QueueId, meta: &MessageMeta) {
    match &meta.follow_up {
        Some(FollowUp::Remove(other)) => {
            model.remove(other);
        }
        Some(FollowUp::SetRecipients(other, states)) => {
            if let Some(target) = model.get_mut(other) {
                for (i, state) in states {
                    if let Some(r) = target.envelope.recipients.get_mut(*i) {
                        r.state = state.clone();
                    }
                }
            }
        }
        None => {}
    }
    let mut stored = meta.clone();
    stored.follow_up = None;
    model.insert(id, stored);
}

fn assert_index_matches(mut index: Index, model: &Model) {
    let live: u64 = index.segments.values().map(|s| s.live).sum();
    assert_eq!(live as usize, index.len(), "segment accounting");
    index.pack();
    let entries: BTreeMap<QueueId, MessageMeta> = index
        .into_entries()
        .into_iter()
        .map(|e| (e.id, e.meta))
        .collect();
    assert_eq!(&entries, model, "the compact index differs from its model");
}

/// A store directory for one check, removed afterwards.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let base = Path::new("/dev/shm");
        let base = if base.is_dir() {
            base.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("mailroom-fuzz-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(crate::Layout::new(&dir).store()).expect("scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The log script as segment files through start-up recovery (see the module doc).
pub fn check_segment(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let steps = script(rest);
    let scratch = Scratch::new();
    let layout = crate::Layout::new(&scratch.0);
    let (store, corrupt) = (layout.store(), layout.corrupt());
    let numbers = write_segments(&store, &steps, split);
    let first = recover(&store, &corrupt);
    let newest = numbers.last().copied().unwrap_or(0);
    // Cut at its valid end, or followed by zeros only: a zero tail is the end of the data
    // (a pre-zeroed segment), kept for appends to write over.
    let newest_bytes = std::fs::read(crate::segment::path(&store, newest)).unwrap_or_default();
    let valid_end = usize::try_from(first.1).expect("a scratch segment's length");
    assert!(
        valid_end <= newest_bytes.len() && newest_bytes[valid_end..].iter().all(|&b| b == 0),
        "the newest segment is not cut at its valid end {valid_end} (length {})",
        newest_bytes.len()
    );
    let second = recover(&store, &corrupt);
    assert!(
        second.0.torn_tail.is_none(),
        "a repaired store was cut again"
    );
    assert_eq!(first.2, second.2, "a second recovery found other messages");
    for entry in &first.2 {
        check_location(&store, entry);
    }
    if steps.iter().all(Step::is_record) {
        assert!(first.0.corrupt_regions.is_empty() && first.0.torn_tail.is_none());
        let (_, model) = replay(&steps);
        let found: Model = first.2.iter().map(|e| (e.id, e.meta.clone())).collect();
        assert_eq!(found, model, "an undamaged log lost or changed messages");
    }
}

/// Writes the steps into 1 to 3 segment files (`split` picks the boundaries).
fn write_segments(store: &Path, steps: &[Step], split: u8) -> Vec<u64> {
    let mut segments: Vec<Vec<u8>> = vec![Vec::new()];
    for (i, step) in steps.iter().enumerate() {
        if segments.len() < 3 && i > 0 && split & (1 << (i % 8)) != 0 {
            segments.push(Vec::new());
        }
        segments.last_mut().unwrap().extend(step.bytes());
    }
    let mut numbers = Vec::new();
    for (i, bytes) in segments.iter().enumerate() {
        let number = i as u64 + 1;
        std::fs::write(crate::segment::path(store, number), bytes).expect("write segment");
        numbers.push(number);
    }
    numbers
}

fn recover(store: &Path, corrupt: &Path) -> (recovery::RecoveryReport, u64, Vec<Entry>) {
    let mut index = Index::default();
    let (report, last_len) =
        recovery::scan(store, corrupt, &mut index, true).expect("recovery of a scratch store");
    (report, last_len, index.into_entries())
}

/// The record at an entry's location is that message's full record.
fn check_location(store: &Path, entry: &Entry) {
    let loc = entry.location;
    let bytes = std::fs::read(crate::segment::path(store, loc.segment)).expect("segment");
    let start = loc.record_offset as usize;
    let end = start + loc.record_len as usize;
    assert!(end <= bytes.len(), "location past the end: {loc:?}");
    match record::decode(&bytes[start..end]) {
        Decoded::Record(Record::Message { id, body, .. }, len) => {
            assert_eq!(
                (id, body.len() as u64, len),
                (entry.id, entry.size, end - start)
            );
        }
        other => panic!("{loc:?} holds {other:?}, not the message {}", entry.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A few thousand random log scripts on every run (the fuzz targets go further).
    #[test]
    fn random_log_scripts_keep_the_invariants() {
        let mut state = 0x0010_9c0d_u64;
        let mut next = move || {
            // xorshift64: no dependency for a test that only needs varied bytes.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2_000 {
            let len = next() as usize % 400;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            check_records(&data);
            if round % 10 == 0 {
                check_segment(&data);
            }
        }
    }

    /// The fuzzer's find after zero tails became the end of the data (pre-zeroed
    /// segments): a newest segment of zeros only is not cut, and appends resume at its
    /// valid end, 0.
    #[test]
    fn a_newest_segment_of_zeros_is_kept_and_written_from_its_start() {
        check_segment(&[0x02, 0xf8, 0xec, 0x00]);
    }
}
