//! A read-only count of the live messages with only what a summary needs: queue, arrival
//! time, sender and recipients with their open/closed state. `qshape` with the daemon down
//! reads a whole log of a million messages this way.
//!
//! Why not [`crate::Snapshot`]: a snapshot builds the store's compact index (every field
//! decoded into owned strings, interned, encoded into slots, then copied out again as full
//! [`crate::Entry`] values), which is most of the time of a whole-log read. The census reads
//! the same records from the same bytes (the frame and CRC checked the same way, damage
//! skipped by the same walk as recovery, `recovery::walk_segment`), but decodes each JSON
//! payload into borrowed views that skip the fields it does not need (delay reasons, DSN
//! parameters, retry times), and keeps strings shared: a log's senders and recipients repeat.
//! Segments are read into one reused buffer.
//!
//! Kept small per message, because at a million messages the time is memory, not decoding:
//! one map slot of 32 bytes (arrival time, queue, the sender and a single recipient as
//! indexes into a table of distinct addresses, the open state in each index's low bit), no
//! allocation unless a message has several recipients; IDs hashed by a multiply-fold of
//! their bits (they are the store's own, not chosen by a sender), the map sized from the
//! log's length once the first segment shows the bytes per message.
//!
//! Invariants: the same live set and states as a snapshot of the same bytes (tested against
//! one); read-only, lock-free (a concurrent append looks like the end of the log, a segment
//! deleted meanwhile held nothing live); never panics on any bytes.

use crate::layout::Layout;
use crate::record::{self, Framed};
use crate::{segment, QueueName, StoreError};
use envelope::QueueId;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::{self, Read};
use std::path::Path;

/// One live message as the census sees it, borrowed from the census.
#[derive(Debug, Clone, Copy)]
pub struct Brief<'a> {
    pub queue: QueueName,
    pub arrival_time: u64,
    pub sender: &'a str,
    recipients: &'a [u32],
    strings: &'a [Box<str>],
}

impl<'a> Brief<'a> {
    /// Every recipient in envelope order, with whether it is still open (pending or
    /// deferred, [`envelope::RecipientState::is_open`]).
    pub fn recipients(&self) -> impl Iterator<Item = (&'a str, bool)> + 'a {
        let strings = self.strings;
        self.recipients
            .iter()
            .map(move |&r| (&*strings[(r >> 1) as usize], r & 1 == 1))
    }

    /// The recipients still open.
    pub fn open_recipients(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.recipients().filter(|(_, open)| *open).map(|(a, _)| a)
    }
}

/// A recipient: its address's index in the census's string table, shifted left, the low bit
/// set while it is open.
type Rcpt = u32;

/// What the census keeps of one message (32 bytes beside its 16-byte ID).
#[derive(Debug)]
struct Slot {
    arrival_time: u64,
    sender: u32,
    queue: QueueName,
    recipients: Recipients,
}

/// One recipient inline (the usual case), more on the heap.
#[derive(Debug)]
enum Recipients {
    One(Rcpt),
    Many(Box<[Rcpt]>),
}

impl Recipients {
    fn as_slice(&self) -> &[Rcpt] {
        match self {
            Recipients::One(r) => std::slice::from_ref(r),
            Recipients::Many(rs) => rs,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [Rcpt] {
        match self {
            Recipients::One(r) => std::slice::from_mut(r),
            Recipients::Many(rs) => rs,
        }
    }
}

/// Hashes a queue ID by folding its 80 bits and multiplying (Fx-style): IDs are the store's
/// own (time, counter and random bits), so no sender can choose them to collide.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u128(&mut self, v: u128) {
        let folded = (v as u64) ^ ((v >> 64) as u64).rotate_left(32);
        let mixed = u128::from(folded ^ self.0) * 0x9E37_79B9_7F4A_7C15;
        self.0 = (mixed as u64) ^ ((mixed >> 64) as u64);
    }

    fn write_u64(&mut self, v: u64) {
        self.write_u128(u128::from(v));
    }
}

type IdMap<V> = HashMap<QueueId, V, BuildHasherDefault<IdHasher>>;

/// The live messages of a log.
#[derive(Debug, Default)]
pub struct Census {
    messages: IdMap<Slot>,
    strings: Vec<Box<str>>,
    /// Only while scanning: each distinct string's index in `strings`.
    interned: HashMap<Box<str>, u32>,
}

impl Census {
    /// Reads every segment of the store under `queue_directory`, oldest first.
    pub fn scan(queue_directory: &Path) -> Result<Census, StoreError> {
        let dir = Layout::new(queue_directory).store();
        let mut census = Census::default();
        if !dir.exists() {
            return Ok(census);
        }
        let io = |e| StoreError::io(&dir, e);
        let numbers = segment::list(&dir).map_err(io)?;
        let mut left = log_bytes(&dir, &numbers);
        let mut buf = Vec::new();
        for (i, &number) in numbers.iter().enumerate() {
            buf.clear();
            match std::fs::File::open(segment::path(&dir, number)) {
                Ok(mut file) => file.read_to_end(&mut buf).map_err(io)?,
                // The daemon deleted a dead segment meanwhile: nothing live was there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            census.read_segment(&buf).map_err(io)?;
            left = left.saturating_sub(buf.len() as u64);
            if i == 0 {
                census.reserve_for(buf.len() as u64, left);
            }
        }
        census.interned = HashMap::new();
        Ok(census)
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// One message's brief.
    pub fn get(&self, id: QueueId) -> Option<Brief<'_>> {
        self.messages.get(&id).map(|slot| self.brief(slot))
    }

    /// Every live message, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (QueueId, Brief<'_>)> {
        self.messages.iter().map(|(&id, s)| (id, self.brief(s)))
    }

    fn brief<'a>(&'a self, slot: &'a Slot) -> Brief<'a> {
        Brief {
            queue: slot.queue,
            arrival_time: slot.arrival_time,
            sender: &self.strings[slot.sender as usize],
            recipients: slot.recipients.as_slice(),
            strings: &self.strings,
        }
    }

    /// Sizes the map for the rest of the log at the first segment's bytes per message, so a
    /// million-message log is not rehashed as it grows (over-estimates only cost memory).
    fn reserve_for(&mut self, first_bytes: u64, left_bytes: u64) {
        let seen = self.messages.len() as u64;
        if seen == 0 || first_bytes == 0 {
            return;
        }
        let more = left_bytes / (first_bytes / seen).max(1);
        self.messages.reserve(more.min(1 << 26) as usize);
    }

    fn read_segment(&mut self, data: &[u8]) -> io::Result<u64> {
        recovery_walk(data, |buf| match record::frame_at(buf) {
            Framed::Frame { kind, payload, len } => self.take(kind, payload).then_some(len),
            Framed::Incomplete | Framed::Invalid => None,
        })
    }

    /// Applies one record; false if its payload does not decode (damage, as for recovery).
    fn take(&mut self, kind: u8, payload: &[u8]) -> bool {
        let id = record::payload_id(payload);
        match kind {
            1 => {
                let Some((meta, _body)) = record::split_message(payload) else {
                    return false;
                };
                let Some(meta) = decode::<MetaView<'_>>(meta) else {
                    return false;
                };
                self.put(id, meta);
            }
            2 => {
                let Some(update) = decode::<UpdateView>(&payload[16..]) else {
                    return false;
                };
                if let Some(slot) = self.messages.get_mut(&id) {
                    set_states(slot, &update.recipients);
                    slot.queue = update.queue;
                }
            }
            3 => {
                self.messages.remove(&id);
            }
            _ => return false,
        }
        true
    }

    /// A full message record, as `Index::put`: its follow-up first, then the message.
    fn put(&mut self, id: QueueId, meta: MetaView<'_>) {
        match &meta.follow_up {
            Some(FollowUpView::Remove(other)) => {
                self.messages.remove(other);
            }
            Some(FollowUpView::SetRecipients(other, states)) => {
                if let Some(slot) = self.messages.get_mut(other) {
                    set_states(slot, states);
                }
            }
            None => {}
        }
        let env = meta.envelope;
        let rcpt = |c: &mut Census, r: &RecipientView<'_>| {
            (c.intern(&r.address) << 1) | Rcpt::from(r.state.is_open())
        };
        let recipients = match &env.recipients[..] {
            [one] => Recipients::One(rcpt(self, one)),
            many => Recipients::Many(many.iter().map(|r| rcpt(self, r)).collect()),
        };
        let slot = Slot {
            arrival_time: env.arrival_time,
            sender: self.intern(&env.sender),
            queue: meta.queue,
            recipients,
        };
        self.messages.insert(id, slot);
    }

    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&known) = self.interned.get(s) {
            return known;
        }
        let index = self.strings.len() as u32;
        self.strings.push(Box::from(s));
        self.interned.insert(Box::from(s), index);
        index
    }
}

/// Decodes a JSON payload, checking its UTF-8 once for the whole text: `from_slice` checks
/// every string and key on its own, a sixth of the census's instructions. The same payloads
/// decode either way (invalid UTF-8 anywhere is invalid JSON too).
fn decode<'a, T: Deserialize<'a>>(json: &'a [u8]) -> Option<T> {
    serde_json::from_str(std::str::from_utf8(json).ok()?).ok()
}

/// Out-of-range indexes are ignored, as by the index.
fn set_states(slot: &mut Slot, states: &[(usize, StateView)]) {
    let recipients = slot.recipients.as_mut_slice();
    for (i, state) in states {
        if let Some(r) = recipients.get_mut(*i) {
            *r = (*r & !1) | Rcpt::from(state.is_open());
        }
    }
}

/// The total length of the segments, for sizing (a segment gone meanwhile counts nothing).
fn log_bytes(dir: &Path, numbers: &[u64]) -> u64 {
    numbers
        .iter()
        .filter_map(|&n| std::fs::metadata(segment::path(dir, n)).ok())
        .map(|m| m.len())
        .sum()
}

/// [`crate::recovery::walk_segment`] for a read-only reader: damage is skipped, not saved.
fn recovery_walk(data: &[u8], mut take: impl FnMut(&[u8]) -> Option<usize>) -> io::Result<u64> {
    crate::recovery::walk_segment(data, |_, buf| take(buf), |_, _| Ok(()))
}

// Borrowed views of `record::MessageMeta` and `record::Update`: the same JSON, with only the
// fields the census keeps (serde skips the others without allocating).

#[derive(Deserialize)]
struct MetaView<'a> {
    #[serde(borrow)]
    envelope: EnvelopeView<'a>,
    queue: QueueName,
    #[serde(default)]
    follow_up: Option<FollowUpView>,
}

#[derive(Deserialize)]
struct EnvelopeView<'a> {
    #[serde(borrow)]
    sender: Cow<'a, str>,
    #[serde(borrow)]
    recipients: Vec<RecipientView<'a>>,
    arrival_time: u64,
}

#[derive(Deserialize)]
struct RecipientView<'a> {
    #[serde(borrow)]
    address: Cow<'a, str>,
    state: StateView,
}

/// `envelope::RecipientState` without its reasons.
#[derive(Deserialize)]
enum StateView {
    Pending,
    Sent,
    Deferred(IgnoredAny),
    Bounced(IgnoredAny),
}

impl StateView {
    fn is_open(&self) -> bool {
        matches!(self, StateView::Pending | StateView::Deferred(_))
    }
}

#[derive(Deserialize)]
enum FollowUpView {
    Remove(QueueId),
    SetRecipients(QueueId, Vec<(usize, StateView)>),
}

#[derive(Deserialize)]
struct UpdateView {
    #[serde(default)]
    recipients: Vec<(usize, StateView)>,
    queue: QueueName,
}

#[cfg(test)]
mod tests;
