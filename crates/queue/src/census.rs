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
//! Payloads of the store's own shape are read without serde at all ([`quick`]); serde reads
//! the rest, with the same result.
//!
//! Over the cores: decoder threads (one per core) read the segments in chunks of
//! [`CHUNK`] bytes into a reused buffer, check frames and CRCs and decode the payloads into
//! a batch of plain operations per segment, numbering the strings they meet; the calling
//! thread applies the batches in segment order, each operation in log order, so every order
//! rule of the log (a later record wins, a follow-up applies before its message) holds as
//! in a one-thread scan, with nothing to merge.
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
}

/// Bytes read from a segment at a time: small enough to stay in a core's cache while its
/// records are checked and decoded, large enough that the system calls do not count.
const CHUNK: usize = 512 * 1024;

/// At most this many decoders (one per core is enough: applying is the lighter half).
const MAX_DECODERS: usize = 4;

/// Decoded segments a decoder may have ready before the applier takes them.
const AHEAD: usize = 2;

impl Census {
    /// Reads every segment of the store under `queue_directory`, oldest first.
    ///
    /// A pipeline over the cores: decoders (one per core, segment `i` to decoder
    /// `i % decoders`) read each segment in [`CHUNK`]s, check the frames and CRCs and decode
    /// the JSON into a [`Batch`] of plain operations; this thread applies the batches in
    /// segment order, so the order rules of the log hold exactly as in a one-thread scan (no
    /// merge: a later record always applies after an earlier one).
    pub fn scan(queue_directory: &Path) -> Result<Census, StoreError> {
        let decoders = std::thread::available_parallelism().map_or(1, |n| n.get());
        Census::scan_with(queue_directory, decoders.clamp(1, MAX_DECODERS), CHUNK)
    }

    fn scan_with(
        queue_directory: &Path,
        decoders: usize,
        chunk: usize,
    ) -> Result<Census, StoreError> {
        let dir = Layout::new(queue_directory).store();
        let mut census = Census::default();
        if !dir.exists() {
            return Ok(census);
        }
        let io = |e| StoreError::io(&dir, e);
        let numbers = segment::list(&dir).map_err(io)?;
        let mut left = log_bytes(&dir, &numbers);
        let decoders = decoders.min(numbers.len()).max(1);
        let (dir, numbers) = (&dir, &numbers);
        std::thread::scope(|scope| {
            let ready: Vec<_> = (0..decoders)
                .map(|first| {
                    let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
                    scope.spawn(move || {
                        let mut decoder = Decoder::new(chunk);
                        for &number in numbers.iter().skip(first).step_by(decoders) {
                            let batch = decoder.segment(&segment::path(dir, number));
                            let failed = batch.is_err();
                            // A send fails only once the applier has stopped (an error).
                            if tx.send(batch).is_err() || failed {
                                return;
                            }
                        }
                    });
                    rx
                })
                .collect();
            // Each decoder's strings, as indexes into `census.strings`.
            let mut global: Vec<Vec<u32>> = vec![Vec::new(); decoders];
            let mut interned: HashMap<Box<str>, u32> = HashMap::new();
            for i in 0..numbers.len() {
                let d = i % decoders;
                let batch = match ready[d].recv() {
                    Ok(batch) => batch.map_err(io)?,
                    Err(_) => return Err(io(io::Error::other("a log decoder stopped"))),
                };
                for s in batch.new_strings.iter() {
                    let index = census.intern(&mut interned, s);
                    global[d].push(index);
                }
                census.apply(&batch, &global[d]);
                left = left.saturating_sub(batch.bytes);
                if i == 0 {
                    census.reserve_for(batch.bytes, left);
                }
            }
            Ok(())
        })?;
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

    /// Applies one segment's records in log order; `strings` maps the batch's decoder's
    /// string numbers to the census's.
    fn apply(&mut self, batch: &Batch, strings: &[u32]) {
        let rcpt = |r: Rcpt| (strings[(r >> 1) as usize] << 1) | (r & 1);
        for op in &batch.ops {
            match *op {
                // A full message record, as `Index::put` (its follow-up came just before).
                Op::Put {
                    id,
                    arrival_time,
                    sender,
                    queue,
                    rcpts: (from, to),
                } => {
                    let recipients = match &batch.rcpts[from as usize..to as usize] {
                        [one] => Recipients::One(rcpt(*one)),
                        many => Recipients::Many(many.iter().map(|&r| rcpt(r)).collect()),
                    };
                    let slot = Slot {
                        arrival_time,
                        sender: strings[sender as usize],
                        queue,
                        recipients,
                    };
                    self.messages.insert(id, slot);
                }
                Op::Update {
                    id,
                    queue,
                    states: (from, to),
                } => {
                    if let Some(slot) = self.messages.get_mut(&id) {
                        set_states(slot, &batch.states[from as usize..to as usize]);
                        if let Some(queue) = queue {
                            slot.queue = queue;
                        }
                    }
                }
                Op::Remove(id) => {
                    self.messages.remove(&id);
                }
            }
        }
    }

    fn intern(&mut self, interned: &mut HashMap<Box<str>, u32>, s: &str) -> u32 {
        if let Some(&known) = interned.get(s) {
            return known;
        }
        let index = self.strings.len() as u32;
        self.strings.push(Box::from(s));
        interned.insert(Box::from(s), index);
        index
    }
}

/// One segment's records, decoded into what the census applies, in log order.
#[derive(Default)]
struct Batch {
    ops: Vec<Op>,
    /// The recipients of `Op::Put`s: a decoder's string number shifted left, the low bit set
    /// while open.
    rcpts: Vec<Rcpt>,
    /// The recipient states of `Op::Update`s: (recipient index, open).
    states: Vec<(usize, bool)>,
    /// The strings this batch's decoder numbered first in this batch, in number order.
    new_strings: Vec<Box<str>>,
    /// The segment's length.
    bytes: u64,
}

/// One change to the census; ranges index the batch's `rcpts` or `states`.
enum Op {
    Put {
        id: QueueId,
        arrival_time: u64,
        sender: u32,
        queue: QueueName,
        rcpts: (u32, u32),
    },
    /// An update record, or a follow-up setting recipient states (no queue then).
    Update {
        id: QueueId,
        queue: Option<QueueName>,
        states: (u32, u32),
    },
    Remove(QueueId),
}

/// A decoding thread's state: its read buffer and its numbering of the strings it has seen.
struct Decoder {
    chunk: usize,
    buf: Vec<u8>,
    numbers: HashMap<Box<str>, u32>,
}

impl Decoder {
    fn new(chunk: usize) -> Decoder {
        Decoder {
            chunk,
            buf: Vec::new(),
            numbers: HashMap::new(),
        }
    }

    /// Reads and decodes one segment. Records are read [`CHUNK`] by chunk while they are
    /// whole and valid; at the first byte that is not (the zeros after the data, a torn tail,
    /// damage), the rest of the segment is read and handed to the walk every reader uses
    /// (`recovery::walk_segment`) from that offset, so damage is skipped exactly as there.
    fn segment(&mut self, path: &Path) -> io::Result<Batch> {
        let mut batch = Batch::default();
        let mut file = match std::fs::File::open(path) {
            Ok(file) => file,
            // The daemon deleted a dead segment meanwhile: nothing live was there.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(batch),
            Err(e) => return Err(e),
        };
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let (mut at, mut eof) = (0, false);
        loop {
            match record::frame_at(&buf[at..]) {
                Framed::Frame { kind, payload, len } if self.take(kind, payload, &mut batch) => {
                    at += len;
                    continue;
                }
                Framed::Incomplete if !eof => {
                    // Keep the unread bytes, then read a chunk more, or the rest of the segment
                    // for a record longer than a chunk.
                    buf.drain(..at);
                    at = 0;
                    if frame_len(&buf) > self.chunk {
                        file.read_to_end(&mut buf)?;
                        eof = true;
                    } else {
                        let n = file
                            .by_ref()
                            .take(self.chunk as u64)
                            .read_to_end(&mut buf)?;
                        eof = n < self.chunk;
                    }
                    continue;
                }
                _ => {}
            }
            if !eof {
                file.read_to_end(&mut buf)?;
            }
            recovery_walk(&buf[at..], |rest| match record::frame_at(rest) {
                Framed::Frame { kind, payload, len } => {
                    self.take(kind, payload, &mut batch).then_some(len)
                }
                Framed::Incomplete | Framed::Invalid => None,
            })?;
            break;
        }
        batch.bytes = file.metadata().map_or(0, |m| m.len());
        self.buf = buf;
        Ok(batch)
    }

    /// Decodes one record into `batch`; false if its payload does not decode (damage, as for
    /// recovery), and then `batch` holds no operation of it. Payloads of the store's own
    /// shape are read by [`quick`]; serde reads the others (the same result, see there).
    fn take(&mut self, kind: u8, payload: &[u8], batch: &mut Batch) -> bool {
        let id = record::payload_id(payload);
        match kind {
            1 => {
                let Some((meta, _body)) = record::split_message(payload) else {
                    return false;
                };
                // The whole text's UTF-8 checked once: `from_slice` checks every string and
                // key on its own. Invalid UTF-8 anywhere is invalid JSON either way.
                let Ok(meta) = std::str::from_utf8(meta) else {
                    return false;
                };
                let from = batch.rcpts.len();
                let quick = quick::message(meta, |address, open| {
                    let number = self.number(address, batch);
                    batch.rcpts.push((number << 1) | Rcpt::from(open));
                });
                if let Some(quick) = quick {
                    let sender = self.number(quick.sender, batch);
                    batch.ops.push(Op::Put {
                        id,
                        arrival_time: quick.arrival_time,
                        sender,
                        queue: quick.queue,
                        rcpts: (from as u32, batch.rcpts.len() as u32),
                    });
                    return true;
                }
                batch.rcpts.truncate(from);
                let Ok(meta) = serde_json::from_str::<MetaView<'_>>(meta) else {
                    return false;
                };
                self.put(id, meta, batch);
            }
            2 => {
                let Ok(json) = std::str::from_utf8(&payload[16..]) else {
                    return false;
                };
                let from = batch.states.len();
                let quick = quick::update(json, |i, open| batch.states.push((i, open)));
                let queue = match quick {
                    Some(queue) => queue,
                    None => {
                        batch.states.truncate(from);
                        let Ok(update) = serde_json::from_str::<UpdateView>(json) else {
                            return false;
                        };
                        push_states(&mut batch.states, &update.recipients);
                        update.queue
                    }
                };
                let states = (from as u32, batch.states.len() as u32);
                let queue = Some(queue);
                batch.ops.push(Op::Update { id, queue, states });
            }
            3 => batch.ops.push(Op::Remove(id)),
            _ => return false,
        }
        true
    }

    /// A full message record read by serde: its follow-up first, then the message, as
    /// `Index::put`.
    fn put(&mut self, id: QueueId, meta: MetaView<'_>, batch: &mut Batch) {
        match &meta.follow_up {
            Some(FollowUpView::Remove(other)) => batch.ops.push(Op::Remove(*other)),
            Some(FollowUpView::SetRecipients(other, states)) => {
                let states = push_states(&mut batch.states, states);
                let (id, queue) = (*other, None);
                batch.ops.push(Op::Update { id, queue, states });
            }
            None => {}
        }
        let env = meta.envelope;
        let from = batch.rcpts.len() as u32;
        for r in &env.recipients {
            let rcpt = (self.number(&r.address, batch) << 1) | Rcpt::from(r.state.is_open());
            batch.rcpts.push(rcpt);
        }
        let sender = self.number(&env.sender, batch);
        batch.ops.push(Op::Put {
            id,
            arrival_time: env.arrival_time,
            sender,
            queue: meta.queue,
            rcpts: (from, batch.rcpts.len() as u32),
        });
    }

    /// This decoder's number for `s`; a string new to it is also added to the batch.
    fn number(&mut self, s: &str, batch: &mut Batch) -> u32 {
        if let Some(&known) = self.numbers.get(s) {
            return known;
        }
        let number = self.numbers.len() as u32;
        self.numbers.insert(Box::from(s), number);
        batch.new_strings.push(Box::from(s));
        number
    }
}

/// The length on disk the record header at the start of `buf` names (0 if no header yet).
fn frame_len(buf: &[u8]) -> usize {
    match buf.get(8..12) {
        Some(len) => record::HEADER_LEN + u32::from_le_bytes(len.try_into().unwrap()) as usize,
        None => 0,
    }
}

fn push_states(states: &mut Vec<(usize, bool)>, views: &[(usize, StateView)]) -> (u32, u32) {
    let from = states.len() as u32;
    states.extend(views.iter().map(|(i, s)| (*i, s.is_open())));
    (from, states.len() as u32)
}

/// Out-of-range indexes are ignored, as by the index.
fn set_states(slot: &mut Slot, states: &[(usize, bool)]) {
    let recipients = slot.recipients.as_mut_slice();
    for &(i, open) in states {
        if let Some(r) = recipients.get_mut(i) {
            *r = (*r & !1) | Rcpt::from(open);
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

mod quick;

#[cfg(test)]
mod tests;
