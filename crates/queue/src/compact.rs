//! The compact in-memory form of an index entry, so a million queued messages fit in a
//! bounded amount of memory (DESIGN invariant 8).
//!
//! A [`Slot`] keeps the fields the scheduler reads on every pass (queue, retry time,
//! attempts, flags, size, location) as plain fields, and the envelope as a small binary blob
//! decoded on access. Strings that many messages share — senders, origins, recipient
//! addresses, deferral reasons, DSN status and NOTIFY/RET values — are interned once with a
//! reference count ([`Interner`]); the blob holds their number. A message's `FILTER`
//! (the same for many messages) is interned too. ENVID and ORCPT, which are
//! per message, are stored inline. A blob of up to [`INLINE`] bytes (a one- or
//! two-recipient message with interned strings) lives inside the slot, with no allocation.
//!
//! Blob layout (varints are LEB128; a string is a varint `id << 1` for an interned string or
//! `len << 1 | 1` followed by `len` UTF-8 bytes):
//! ```text
//! varint arrival_time · string sender · string origin · u8 flags (1 envid, 2 ret, 4 filter)
//! [string envid] [string ret] [string filter] · varint recipient count · per recipient:
//!   u8 tag (bits 0-1 state: 0 pending, 1 sent, 2 deferred, 3 bounced; 4 orcpt; 8 notify)
//!   string address · [string orcpt] · [string notify] · deferred: string reason ·
//!   bounced: string status, string reason
//! ```
//! The blob is only ever written by this module, so a malformed one is a bug; decoding it
//! still never panics (missing bytes read as zero), because nothing may crash the daemon.

use crate::record::MessageMeta;
use crate::QueueName;
use envelope::{Envelope, Recipient, RecipientState};
use std::collections::HashMap;
use std::sync::Arc;

/// Where a message's latest full record lives in the log (kept in every [`Slot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub record_offset: u64,
    pub record_len: u64,
}

/// Blobs up to this many bytes are stored inside the [`Slot`].
pub const INLINE: usize = 22;

/// Strings shared by many messages, each stored once with a reference count.
#[derive(Debug, Default)]
pub struct Interner {
    ids: HashMap<Arc<str>, u32>,
    /// `(string, references)` by id; `None` for a free id.
    slots: Vec<Option<(Arc<str>, u32)>>,
    free: Vec<u32>,
}

impl Interner {
    /// Takes one reference to `s`, adding it if new; returns its id.
    fn acquire(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            if let Some((_, refs)) = &mut self.slots[id as usize] {
                *refs += 1;
            }
            return id;
        }
        let text: Arc<str> = Arc::from(s);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some((text.clone(), 1));
                id
            }
            None => {
                self.slots.push(Some((text.clone(), 1)));
                (self.slots.len() - 1) as u32
            }
        };
        self.ids.insert(text, id);
        id
    }

    /// Takes one more reference to a string already held.
    fn retain(&mut self, id: u32) {
        if let Some(Some((_, refs))) = self.slots.get_mut(id as usize) {
            *refs += 1;
        }
    }

    /// Drops one reference; the string is forgotten with its last reference.
    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let last = match slot {
            Some((_, refs)) => {
                *refs -= 1;
                *refs == 0
            }
            None => false,
        };
        if last {
            if let Some((text, _)) = slot.take() {
                self.ids.remove(&text);
            }
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> &str {
        match self.slots.get(id as usize) {
            Some(Some((text, _))) => text,
            _ => "",
        }
    }

    /// Number of distinct strings held.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// The encoded envelope: inside the slot when small, else on the heap.
#[derive(Debug, Clone)]
enum Blob {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Blob {
    fn new(data: &[u8]) -> Blob {
        if data.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..data.len()].copy_from_slice(data);
            Blob::Inline {
                len: data.len() as u8,
                bytes,
            }
        } else {
            Blob::Heap(data.into())
        }
    }

    fn as_slice(&self) -> &[u8] {
        match self {
            Blob::Inline { len, bytes } => &bytes[..*len as usize],
            Blob::Heap(b) => b,
        }
    }
}

/// One live message in the index: fixed fields plus the encoded envelope.
#[derive(Debug)]
pub struct Slot {
    pub next_attempt: u64,
    /// Size of the message bytes.
    pub size: u64,
    pub location: Location,
    pub attempts: u32,
    pub queue: QueueName,
    pub delay_warned: bool,
    envelope: Blob,
}

impl Slot {
    /// Encodes `meta` (its follow-up is not kept), taking references to its strings.
    pub fn new(meta: &MessageMeta, size: u64, location: Location, strings: &mut Interner) -> Slot {
        Slot {
            next_attempt: meta.next_attempt,
            size,
            location,
            attempts: meta.attempts,
            queue: meta.queue,
            delay_warned: meta.delay_warned,
            envelope: encode(&meta.envelope, strings),
        }
    }

    /// The message's metadata as the rest of mailroom knows it (no follow-up).
    pub fn meta(&self, strings: &Interner) -> MessageMeta {
        MessageMeta {
            envelope: self.envelope(strings),
            queue: self.queue,
            next_attempt: self.next_attempt,
            attempts: self.attempts,
            delay_warned: self.delay_warned,
            follow_up: None,
        }
    }

    pub fn envelope(&self, strings: &Interner) -> Envelope {
        let mut parts = Parts::parse(self.envelope.as_slice());
        let s = |r: Str<'_>| r.resolve(strings);
        let mut recipients = Vec::with_capacity(parts.count);
        while let Some(r) = parts.next_recipient() {
            recipients.push(Recipient {
                address: s(r.address),
                orcpt: r.orcpt.map(s),
                notify: r.notify.map(s),
                state: match r.state {
                    StateParts::Pending => RecipientState::Pending,
                    StateParts::Sent => RecipientState::Sent,
                    StateParts::Deferred(reason) => RecipientState::Deferred { reason: s(reason) },
                    StateParts::Bounced(status, reason) => RecipientState::Bounced {
                        status: s(status),
                        reason: s(reason),
                    },
                },
            });
        }
        Envelope {
            sender: s(parts.sender),
            recipients,
            arrival_time: parts.arrival_time,
            envid: parts.envid.map(s),
            ret: parts.ret.map(s),
            origin: s(parts.origin),
            filter: parts.filter.map(s),
        }
    }

    /// Sets recipient states (`(index, state)`; a later pair for the same index wins; an
    /// out-of-range index is ignored). Re-encodes from the blob itself: unchanged strings
    /// keep their ids, so only the new states' strings are looked up. New references are
    /// taken before the old ones are dropped, so a string both use is never forgotten.
    pub fn set_states(&mut self, states: &[(usize, RecipientState)], strings: &mut Interner) {
        let old = self.envelope.as_slice();
        let mut parts = Parts::parse(old);
        let mut w = Writer {
            out: Vec::with_capacity(old.len() + 16),
            strings,
        };
        w.varint(parts.arrival_time);
        w.same(parts.sender);
        w.same(parts.origin);
        w.out
            .push(head_flags(&[parts.envid, parts.ret, parts.filter]));
        parts
            .envid
            .into_iter()
            .chain(parts.ret)
            .chain(parts.filter)
            .for_each(|x| w.same(x));
        w.varint(parts.count as u64);
        let mut changed: Vec<Option<&RecipientState>> = vec![None; parts.count];
        for (idx, state) in states {
            if let Some(c) = changed.get_mut(*idx) {
                *c = Some(state);
            }
        }
        let mut changed = changed.into_iter();
        while let Some(r) = parts.next_recipient() {
            let new = changed.next().flatten();
            let state = new.map_or(r.state.bits(), state_bits);
            w.out
                .push(state | flag_bits(r.orcpt.is_some(), r.notify.is_some()));
            w.same(r.address);
            r.orcpt.into_iter().chain(r.notify).for_each(|x| w.same(x));
            match new {
                Some(st) => w.state(st),
                None => r.state.for_each(|x| w.same(x)),
            }
        }
        let blob = Blob::new(&w.out);
        Parts::parse(old).for_each_id(|id| w.strings.release(id));
        self.envelope = blob;
    }

    /// The message's arrival time (the blob's first field; nothing else is decoded).
    pub fn arrival_time(&self) -> u64 {
        Reader {
            buf: self.envelope.as_slice(),
            at: 0,
        }
        .varint()
    }

    /// Calls `f(address, reason)` for each open (pending or deferred) recipient; the
    /// reason is empty for a pending one. Allocates only for an inline non-UTF-8 string.
    pub fn for_each_open(&self, strings: &Interner, mut f: impl FnMut(&str, &str)) {
        let text = |s| text_of(s, strings);
        let mut parts = Parts::parse(self.envelope.as_slice());
        while let Some(r) = parts.next_recipient() {
            match r.state {
                StateParts::Pending => f(&text(r.address), ""),
                StateParts::Deferred(reason) => f(&text(r.address), &text(reason)),
                StateParts::Sent | StateParts::Bounced(..) => {}
            }
        }
    }

    /// Drops the slot's references; call once when the message leaves the index.
    pub fn release(&self, strings: &mut Interner) {
        Parts::parse(self.envelope.as_slice()).for_each_id(|id| strings.release(id));
    }
}

fn text_of<'a>(s: Str<'a>, strings: &'a Interner) -> std::borrow::Cow<'a, str> {
    match s {
        Str::Id(id) => std::borrow::Cow::Borrowed(strings.get(id)),
        Str::Inline(bytes) => String::from_utf8_lossy(bytes),
    }
}

const STATE_PENDING: u8 = 0;
const STATE_SENT: u8 = 1;
const STATE_DEFERRED: u8 = 2;
const STATE_BOUNCED: u8 = 3;
const HAS_ORCPT: u8 = 4;
const HAS_NOTIFY: u8 = 8;
const HAS_ENVID: u8 = 1;
const HAS_RET: u8 = 2;
const HAS_FILTER: u8 = 4;

fn state_bits(state: &RecipientState) -> u8 {
    match state {
        RecipientState::Pending => STATE_PENDING,
        RecipientState::Sent => STATE_SENT,
        RecipientState::Deferred { .. } => STATE_DEFERRED,
        RecipientState::Bounced { .. } => STATE_BOUNCED,
    }
}

fn flag_bits(orcpt: bool, notify: bool) -> u8 {
    u8::from(orcpt) * HAS_ORCPT + u8::from(notify) * HAS_NOTIFY
}

/// The head's flag byte: which of envid, ret and filter follow, in that order.
fn head_flags<T>(present: &[Option<T>; 3]) -> u8 {
    [HAS_ENVID, HAS_RET, HAS_FILTER]
        .iter()
        .zip(present)
        .filter(|(_, field)| field.is_some())
        .fold(0, |flags, (bit, _)| flags | bit)
}

fn encode(env: &Envelope, strings: &mut Interner) -> Blob {
    let mut w = Writer {
        out: Vec::with_capacity(32),
        strings,
    };
    w.varint(env.arrival_time);
    w.shared(&env.sender);
    w.shared(&env.origin);
    w.out.push(head_flags(
        &[&env.envid, &env.ret, &env.filter].map(Option::as_ref),
    ));
    if let Some(envid) = &env.envid {
        w.inline(envid.as_bytes());
    }
    if let Some(ret) = &env.ret {
        w.shared(ret);
    }
    if let Some(filter) = &env.filter {
        w.shared(filter);
    }
    w.varint(env.recipients.len() as u64);
    for r in &env.recipients {
        w.out
            .push(state_bits(&r.state) | flag_bits(r.orcpt.is_some(), r.notify.is_some()));
        w.shared(&r.address);
        if let Some(orcpt) = &r.orcpt {
            w.inline(orcpt.as_bytes());
        }
        if let Some(notify) = &r.notify {
            w.shared(notify);
        }
        w.state(&r.state);
    }
    Blob::new(&w.out)
}

struct Writer<'a> {
    out: Vec<u8>,
    strings: &'a mut Interner,
}

impl Writer<'_> {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// An interned string (the empty string is cheaper inline).
    fn shared(&mut self, s: &str) {
        if s.is_empty() {
            return self.inline(b"");
        }
        let id = self.strings.acquire(s);
        self.varint(u64::from(id) << 1);
    }

    fn inline(&mut self, s: &[u8]) {
        self.varint(((s.len() as u64) << 1) | 1);
        self.out.extend_from_slice(s);
    }

    /// A string copied from the blob being replaced: one more reference if interned.
    fn same(&mut self, s: Str<'_>) {
        match s {
            Str::Id(id) => {
                self.strings.retain(id);
                self.varint(u64::from(id) << 1);
            }
            Str::Inline(bytes) => self.inline(bytes),
        }
    }

    /// The strings of a recipient state (the state itself is in the tag).
    fn state(&mut self, state: &RecipientState) {
        match state {
            RecipientState::Pending | RecipientState::Sent => {}
            RecipientState::Deferred { reason } => self.shared(reason),
            RecipientState::Bounced { status, reason } => {
                self.shared(status);
                self.shared(reason);
            }
        }
    }
}

/// A string field of a blob.
#[derive(Debug, Clone, Copy)]
enum Str<'a> {
    Id(u32),
    Inline(&'a [u8]),
}

impl Str<'_> {
    fn resolve(self, strings: &Interner) -> String {
        match self {
            Str::Id(id) => strings.get(id).to_string(),
            Str::Inline(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        }
    }
}

enum StateParts<'a> {
    Pending,
    Sent,
    Deferred(Str<'a>),
    Bounced(Str<'a>, Str<'a>),
}

impl<'a> StateParts<'a> {
    fn bits(&self) -> u8 {
        match self {
            StateParts::Pending => STATE_PENDING,
            StateParts::Sent => STATE_SENT,
            StateParts::Deferred(_) => STATE_DEFERRED,
            StateParts::Bounced(..) => STATE_BOUNCED,
        }
    }

    fn for_each(&self, mut f: impl FnMut(Str<'a>)) {
        match *self {
            StateParts::Pending | StateParts::Sent => {}
            StateParts::Deferred(reason) => f(reason),
            StateParts::Bounced(status, reason) => {
                f(status);
                f(reason);
            }
        }
    }
}

struct RecipientParts<'a> {
    address: Str<'a>,
    orcpt: Option<Str<'a>>,
    notify: Option<Str<'a>>,
    state: StateParts<'a>,
}

/// A blob's head fields, strings not yet resolved; the recipients follow one at a time
/// ([`Parts::next_recipient`]), so reading a blob allocates nothing.
struct Parts<'a> {
    arrival_time: u64,
    sender: Str<'a>,
    origin: Str<'a>,
    envid: Option<Str<'a>>,
    ret: Option<Str<'a>>,
    filter: Option<Str<'a>>,
    /// Recipients in the blob (at most its length, so a bad count cannot over-allocate).
    count: usize,
    left: usize,
    reader: Reader<'a>,
}

impl<'a> Parts<'a> {
    fn parse(blob: &'a [u8]) -> Parts<'a> {
        let mut r = Reader { buf: blob, at: 0 };
        let arrival_time = r.varint();
        let sender = r.string();
        let origin = r.string();
        let flags = r.byte();
        let envid = (flags & HAS_ENVID != 0).then(|| r.string());
        let ret = (flags & HAS_RET != 0).then(|| r.string());
        let filter = (flags & HAS_FILTER != 0).then(|| r.string());
        let count = (r.varint() as usize).min(blob.len());
        Parts {
            arrival_time,
            sender,
            origin,
            envid,
            ret,
            filter,
            count,
            left: count,
            reader: r,
        }
    }

    fn next_recipient(&mut self) -> Option<RecipientParts<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let r = &mut self.reader;
        let tag = r.byte();
        let address = r.string();
        let orcpt = (tag & HAS_ORCPT != 0).then(|| r.string());
        let notify = (tag & HAS_NOTIFY != 0).then(|| r.string());
        let state = match tag & 3 {
            STATE_PENDING => StateParts::Pending,
            STATE_SENT => StateParts::Sent,
            STATE_DEFERRED => StateParts::Deferred(r.string()),
            _ => {
                let status = r.string();
                StateParts::Bounced(status, r.string())
            }
        };
        Some(RecipientParts {
            address,
            orcpt,
            notify,
            state,
        })
    }

    /// Every interned string id in the blob.
    fn for_each_id(mut self, mut f: impl FnMut(u32)) {
        let mut one = |s: Str<'_>| {
            if let Str::Id(id) = s {
                f(id)
            }
        };
        one(self.sender);
        one(self.origin);
        self.envid
            .into_iter()
            .chain(self.ret)
            .chain(self.filter)
            .for_each(&mut one);
        while let Some(r) = self.next_recipient() {
            one(r.address);
            r.orcpt.into_iter().chain(r.notify).for_each(&mut one);
            r.state.for_each(&mut one);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let b = self.buf.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn varint(&mut self) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte();
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }

    fn string(&mut self) -> Str<'a> {
        let head = self.varint();
        if head & 1 == 0 {
            return Str::Id((head >> 1) as u32);
        }
        let start = self.at.min(self.buf.len());
        let end = start
            .saturating_add((head >> 1) as usize)
            .min(self.buf.len());
        self.at = end;
        Str::Inline(&self.buf[start..end])
    }
}

#[cfg(test)]
mod tests;
