//! The in-memory index of live messages, rebuilt from the log at start.
//!
//! The index is the only thing the rest of mailroom consults; it changes only when a batch
//! of records is durable (see `store.rs`), so it never shows a state a crash could undo.

use crate::record::{FollowUp, MessageMeta, Update};
use envelope::QueueId;
use std::collections::BTreeMap;

/// Where a message's latest full record lives in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: u64,
    pub record_offset: u64,
    pub record_len: u64,
}

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
    pub entries: BTreeMap<QueueId, Entry>,
    pub segments: BTreeMap<u64, SegmentStats>,
}

impl Index {
    /// A full message record: a new message, or a relocated copy replacing an older one.
    /// Its follow-up, if any, is applied here and not kept: it happened exactly once.
    pub fn put(&mut self, id: QueueId, mut meta: MessageMeta, size: u64, location: Location) {
        match meta.follow_up.take() {
            Some(FollowUp::Remove(other)) => {
                self.remove(other);
            }
            Some(FollowUp::SetRecipients(other, states)) => {
                if let Some(e) = self.entries.get_mut(&other) {
                    for (idx, state) in states {
                        if let Some(r) = e.meta.envelope.recipients.get_mut(idx) {
                            r.state = state;
                        }
                    }
                }
            }
            None => {}
        }
        if let Some(old) = self.entries.get(&id) {
            let old_loc = old.location;
            self.unaccount(old_loc);
        }
        self.account(location);
        self.entries.insert(
            id,
            Entry {
                id,
                meta,
                size,
                location,
            },
        );
    }

    /// Moves a message's latest full record without changing its state.
    pub fn relocate(&mut self, id: QueueId, location: Location) {
        let Some(old) = self.entries.get(&id).map(|e| e.location) else {
            return;
        };
        self.unaccount(old);
        self.account(location);
        if let Some(e) = self.entries.get_mut(&id) {
            e.location = location;
        }
    }

    /// Applies an update; unknown IDs are ignored (their message was removed or relocated).
    pub fn update(&mut self, id: QueueId, update: &Update) {
        if let Some(entry) = self.entries.get_mut(&id) {
            apply_update(&mut entry.meta, update);
        }
    }

    pub fn remove(&mut self, id: QueueId) -> Option<Entry> {
        let entry = self.entries.remove(&id)?;
        self.unaccount(entry.location);
        Some(entry)
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

/// Applies an update to a message's metadata; out-of-range recipient indexes are ignored
/// (they cannot come from our own writers; ignoring beats panicking on a bad file).
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
