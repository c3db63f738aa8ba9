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
use std::collections::{HashMap, HashSet};
use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;

/// One live message as the census sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brief {
    pub queue: QueueName,
    pub arrival_time: u64,
    pub sender: Arc<str>,
    /// Every recipient in envelope order, with whether it is still open (pending or
    /// deferred, [`envelope::RecipientState::is_open`]).
    pub recipients: Vec<(Arc<str>, bool)>,
}

impl Brief {
    /// The recipients still open.
    pub fn open_recipients(&self) -> impl Iterator<Item = &str> {
        self.recipients
            .iter()
            .filter(|(_, open)| *open)
            .map(|(a, _)| &**a)
    }
}

/// The live messages of a log.
#[derive(Debug, Default)]
pub struct Census {
    messages: HashMap<QueueId, Brief>,
    strings: HashSet<Arc<str>>,
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
        let mut buf = Vec::new();
        for number in segment::list(&dir).map_err(io)? {
            buf.clear();
            match std::fs::File::open(segment::path(&dir, number)) {
                Ok(mut file) => file.read_to_end(&mut buf).map_err(io)?,
                // The daemon deleted a dead segment meanwhile: nothing live was there.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(e)),
            };
            census.read_segment(&buf).map_err(io)?;
        }
        census.strings = HashSet::new();
        Ok(census)
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// One message's brief.
    pub fn get(&self, id: QueueId) -> Option<&Brief> {
        self.messages.get(&id)
    }

    /// Every live message, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (QueueId, &Brief)> {
        self.messages.iter().map(|(&id, b)| (id, b))
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
                let Ok(meta) = serde_json::from_slice::<MetaView<'_>>(meta) else {
                    return false;
                };
                self.put(id, meta);
            }
            2 => {
                let Ok(update) = serde_json::from_slice::<UpdateView>(&payload[16..]) else {
                    return false;
                };
                self.set_states(id, &update.recipients);
                if let Some(brief) = self.messages.get_mut(&id) {
                    brief.queue = update.queue;
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
            Some(FollowUpView::SetRecipients(other, states)) => self.set_states(*other, states),
            None => {}
        }
        let env = meta.envelope;
        let recipients = env
            .recipients
            .iter()
            .map(|r| (self.intern(&r.address), r.state.is_open()))
            .collect();
        let brief = Brief {
            queue: meta.queue,
            arrival_time: env.arrival_time,
            sender: self.intern(&env.sender),
            recipients,
        };
        self.messages.insert(id, brief);
    }

    /// Out-of-range indexes and unknown IDs are ignored, as by the index.
    fn set_states(&mut self, id: QueueId, states: &[(usize, StateView)]) {
        let Some(brief) = self.messages.get_mut(&id) else {
            return;
        };
        for (i, state) in states {
            if let Some(r) = brief.recipients.get_mut(*i) {
                r.1 = state.is_open();
            }
        }
    }

    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(known) = self.strings.get(s) {
            return known.clone();
        }
        let new: Arc<str> = Arc::from(s);
        self.strings.insert(new.clone());
        new
    }
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
