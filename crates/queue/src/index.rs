//! The in-memory index of live messages, rebuilt from the log at start.
//!
//! The index is the only thing the rest of mailroom consults; it changes only when a batch
//! of records is durable (see `store.rs`), so it never shows a state a crash could undo.
//!
//! Each message is kept compact (see `compact.rs`): about a hundred bytes for a typical
//! deferred message instead of a full [`Entry`], which is built on demand by [`Index::get`]
//! and [`Index::chunk`].

pub use crate::compact::Location;
use crate::compact::{Interner, Slot};
use crate::record::{FollowUp, MessageMeta, Update};
use crate::tally::{Tally, View};
use crate::QueueName;
use envelope::{QueueId, RecipientState};
use std::collections::BTreeMap;
use std::ops::Bound;

/// One live message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: QueueId,
    pub meta: MessageMeta,
    /// Size of the message bytes (headers and body).
    pub size: u64,
    pub location: Location,
}

/// Per-segment accounting: a segment may be deleted once no live message's latest full record
/// lives in it and every older segment is gone. Deletion is strictly oldest-first, so a
/// message's full record is always deleted before the remove record that ended it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentStats {
    pub live: u64,
    pub live_bytes: u64,
    pub size: u64,
}

#[derive(Debug, Default)]
pub struct Index {
    entries: BTreeMap<QueueId, Slot>,
    strings: Interner,
    pub segments: BTreeMap<u64, SegmentStats>,
    /// Running totals, kept from [`Index::start_tally`] on (the store's; not a snapshot's).
    tally: Option<Tally>,
}

impl Index {
    /// A full message record: a new message, or a relocated copy replacing an older one.
    /// Its follow-up, if any, is applied here and not kept: it happened exactly once.
    pub fn put(&mut self, id: QueueId, meta: &MessageMeta, size: u64, location: Location) {
        match &meta.follow_up {
            Some(FollowUp::Remove(other)) => {
                self.remove(*other);
            }
            Some(FollowUp::SetRecipients(other, states)) => {
                self.set_recipients(*other, states);
            }
            None => {}
        }
        let slot = Slot::new(meta, size, location, &mut self.strings);
        self.account(location);
        if let Some(t) = &mut self.tally {
            t.count(&slot, &self.strings, true);
        }
        if let Some(old) = self.entries.insert(id, slot) {
            if let Some(t) = &mut self.tally {
                t.count(&old, &self.strings, false);
            }
            old.release(&mut self.strings);
            self.unaccount(old.location);
        }
    }

    /// Moves a message's latest full record without changing its state.
    pub fn relocate(&mut self, id: QueueId, location: Location) {
        let Some(slot) = self.entries.get_mut(&id) else {
            return;
        };
        let old = std::mem::replace(&mut slot.location, location);
        self.unaccount(old);
        self.account(location);
    }

    /// Applies an update; unknown IDs are ignored (their message was removed or relocated).
    pub fn update(&mut self, id: QueueId, update: &Update) {
        let Some(slot) = self.entries.get(&id) else {
            return;
        };
        // Recipient states count only in the deferred queue's rankings: an update that
        // neither leaves nor enters it, nor changes queue, changes no total.
        let counted = slot.queue != update.queue || update.queue == QueueName::Deferred;
        let counted = counted && self.tally.is_some();
        if counted {
            self.tally_slot(id, false);
        }
        if let Some(slot) = self.entries.get_mut(&id) {
            if !update.recipients.is_empty() {
                slot.set_states(&update.recipients, &mut self.strings);
            }
            slot.queue = update.queue;
            slot.next_attempt = update.next_attempt;
            slot.attempts = update.attempts;
            slot.delay_warned = update.delay_warned;
        }
        if counted {
            self.tally_slot(id, true);
        }
    }

    /// Adds a message's part to the tally, or takes it out.
    fn tally_slot(&mut self, id: QueueId, add: bool) {
        if let (Some(t), Some(slot)) = (&mut self.tally, self.entries.get(&id)) {
            t.count(slot, &self.strings, add);
        }
    }

    /// Starts the running totals from what the index holds now (once, after the scan at
    /// start): every change after this keeps them.
    pub fn start_tally(&mut self, now: u64) {
        let mut tally = Tally::at(now);
        for slot in self.entries.values() {
            tally.count(slot, &self.strings, true);
        }
        self.tally = Some(tally);
    }

    /// The running totals at `now` with the messages of `active` counted as active (see
    /// `tally.rs`); started here if [`Index::start_tally`] was not called.
    pub fn view(&mut self, now: u64, active: &[QueueId], top: usize) -> View {
        if self.tally.is_none() {
            self.start_tally(now);
        }
        let Some(tally) = self.tally.as_mut() else {
            return View::default();
        };
        let entries = &self.entries;
        tally.view(now, active, |id| entries.get(&id), &self.strings, top)
    }

    /// Sets recipient states; out-of-range indexes are ignored (they cannot come from our own
    /// writers; ignoring beats panicking on a bad file).
    fn set_recipients(&mut self, id: QueueId, states: &[(usize, RecipientState)]) {
        if states.is_empty() {
            return;
        }
        if !self.entries.contains_key(&id) {
            return;
        }
        self.tally_slot(id, false);
        if let Some(slot) = self.entries.get_mut(&id) {
            slot.set_states(states, &mut self.strings);
        }
        self.tally_slot(id, true);
    }

    /// Removes a message; false if it was not there.
    pub fn remove(&mut self, id: QueueId) -> bool {
        let Some(slot) = self.entries.remove(&id) else {
            return false;
        };
        if let Some(t) = &mut self.tally {
            t.count(&slot, &self.strings, false);
        }
        slot.release(&mut self.strings);
        self.unaccount(slot.location);
        true
    }

    pub fn contains(&self, id: QueueId) -> bool {
        self.entries.contains_key(&id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// A full copy of one message's entry.
    pub fn get(&self, id: QueueId) -> Option<Entry> {
        self.entries.get(&id).map(|slot| self.entry(id, slot))
    }

    /// How many delivery attempts a message has had, without decoding its envelope.
    pub fn attempts(&self, id: QueueId) -> Option<u32> {
        self.entries.get(&id).map(|slot| slot.attempts)
    }

    /// A message's metadata (without follow-up).
    pub fn meta(&self, id: QueueId) -> Option<MessageMeta> {
        self.entries.get(&id).map(|slot| slot.meta(&self.strings))
    }

    /// Up to `max` entries after `after` (from the first if `None`), in queue-ID order.
    pub fn chunk(&self, after: Option<QueueId>, max: usize) -> Vec<Entry> {
        let range = match after {
            None => self.entries.range(..),
            Some(last) => self
                .entries
                .range((Bound::Excluded(last), Bound::Unbounded)),
        };
        let mut out = Vec::with_capacity(max.min(self.entries.len()));
        out.extend(range.take(max).map(|(&id, slot)| self.entry(id, slot)));
        out
    }

    /// Messages whose latest full record is in `segment`.
    pub fn ids_in_segment(&self, segment: u64) -> Vec<QueueId> {
        self.entries
            .iter()
            .filter(|(_, slot)| slot.location.segment == segment)
            .map(|(&id, _)| id)
            .collect()
    }

    /// Every entry, in queue-ID order (a read-only scan's result).
    pub fn into_entries(self) -> Vec<Entry> {
        let mut out = Vec::with_capacity(self.entries.len());
        for (&id, slot) in &self.entries {
            out.push(self.entry(id, slot));
        }
        out
    }

    /// Rebuilds the map with full nodes after the log scan: built record by record, nearly
    /// in ID order, its nodes end up about two-thirds full and scattered among the scan's
    /// freed buffers. The entries move to one sorted vector (the old nodes are freed as they
    /// are emptied), the freed memory goes back to the system, and the map is rebuilt
    /// bottom-up in fresh memory.
    pub fn pack(&mut self) {
        let mut sorted = Vec::with_capacity(self.entries.len());
        sorted.extend(std::mem::take(&mut self.entries));
        release_free_memory();
        // Already sorted: `from_iter` sees one run and builds full nodes bottom-up.
        self.entries = sorted.into_iter().collect();
    }

    /// Number of distinct interned strings.
    #[cfg(test)]
    pub fn interned(&self) -> usize {
        self.strings.len()
    }

    fn entry(&self, id: QueueId, slot: &Slot) -> Entry {
        Entry {
            id,
            meta: slot.meta(&self.strings),
            size: slot.size,
            location: slot.location,
        }
    }

    pub fn grow_segment(&mut self, segment: u64, new_size: u64) {
        self.segments.entry(segment).or_default().size = new_size;
    }

    fn account(&mut self, loc: Location) {
        let s = self.segments.entry(loc.segment).or_default();
        s.live += 1;
        s.live_bytes += loc.record_len;
    }

    fn unaccount(&mut self, loc: Location) {
        if let Some(s) = self.segments.get_mut(&loc.segment) {
            s.live = s.live.saturating_sub(1);
            s.live_bytes = s.live_bytes.saturating_sub(loc.record_len);
        }
    }
}

/// Returns free heap memory to the system: glibc keeps memory freed in the middle of its
/// heap unless asked, and the daemon should not carry the log scan's garbage for its lifetime.
fn release_free_memory() {
    sys::release_free_memory();
}

/// Applies an update to a message's metadata; out-of-range recipient indexes are ignored.
pub fn apply_update(meta: &mut MessageMeta, update: &Update) {
    for (idx, state) in &update.recipients {
        if let Some(r) = meta.envelope.recipients.get_mut(*idx) {
            r.state = state.clone();
        }
    }
    meta.queue = update.queue;
    meta.next_attempt = update.next_attempt;
    meta.attempts = update.attempts;
    meta.delay_warned = update.delay_warned;
}
