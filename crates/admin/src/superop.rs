//! postsuper's operations: delete (`-d`), hold (`-h`), release (`-H`), requeue (`-r`), on
//! named queue IDs, `ALL`, or a [`Selector`], with Postfix's per-queue defaults and wording.
//!
//! Inputs → outputs: a [`Request`] (+ IDs streamed one per line) and the store → batches of
//! [`queue::Op`]s, each batch one write and one fdatasync ([`queue::Store::apply_many`]),
//! then `Done` events for explicitly named IDs (`ID: removed`) and one [`Summary`]
//! (`postsuper: Deleted: N messages`).
//!
//! Semantics: hold keeps the retry state, so a release puts the message back where it was
//! (deferred with its retry time, or incoming) and tells the scheduler. Requeue makes the
//! message due now (Postfix re-runs cleanup; we have nothing to re-run). Recipient states
//! are never rewritten here: a delivery racing the operation owns them, so no recipient can
//! be sent twice because of an operator command. A named ID that is not queued is skipped
//! silently, as in Postfix; a malformed one gets `warning: invalid mail queue id`.
//! `-d ... maildrop` also deletes files waiting in `maildrop/` (seed 000's full disk).

use crate::row::State;
use crate::select::Selector;
use queue::{Entry, Op, QueueName, Update};
use serde::{Deserialize, Serialize};

/// Messages per batch: one fdatasync each, bounded memory.
pub const BATCH: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Delete,
    Hold,
    Release,
    Requeue,
}

impl Action {
    /// Postfix's default queues for the action.
    pub fn default_queues(self) -> &'static [State] {
        match self {
            Action::Delete | Action::Requeue => {
                &[State::Hold, State::Incoming, State::Active, State::Deferred]
            }
            Action::Hold => &[State::Incoming, State::Active, State::Deferred],
            Action::Release => &[State::Hold],
        }
    }

    /// The per-message log word (`ID: removed`).
    pub fn done_word(self) -> &'static str {
        match self {
            Action::Delete => "removed",
            Action::Hold => "placed on hold",
            Action::Release => "released from hold",
            Action::Requeue => "requeued",
        }
    }

    /// The summary's word (`Deleted: 3 messages`).
    pub fn summary_word(self) -> &'static str {
        match self {
            Action::Delete => "Deleted",
            Action::Hold => "Placed on hold",
            Action::Release => "Released from hold",
            Action::Requeue => "Requeued",
        }
    }

    /// The store change for one message, or `None` when it does not apply (releasing a
    /// message that is not on hold).
    pub fn op(self, entry: &Entry) -> Option<Op> {
        let meta = &entry.meta;
        let update = |queue, next_attempt| {
            Op::Update(
                entry.id,
                Update {
                    queue,
                    next_attempt,
                    ..Update::keep(meta)
                },
            )
        };
        match self {
            Action::Delete => Some(Op::Remove(entry.id, "deleted by postsuper".into())),
            Action::Hold if meta.queue == QueueName::Hold => None,
            Action::Hold => Some(update(QueueName::Hold, meta.next_attempt)),
            Action::Release if meta.queue != QueueName::Hold => None,
            Action::Release => Some(update(released_queue(meta.attempts), meta.next_attempt)),
            Action::Requeue => Some(update(QueueName::Incoming, 0)),
        }
    }

    /// When the scheduler should look at the message after the change, if at all.
    pub fn due_after(self, entry: &Entry) -> Option<u64> {
        match self {
            Action::Release => Some(entry.meta.next_attempt),
            Action::Requeue => Some(0),
            Action::Delete | Action::Hold => None,
        }
    }
}

fn released_queue(attempts: u32) -> QueueName {
    if attempts > 0 {
        QueueName::Deferred
    } else {
        QueueName::Incoming
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub action: Action,
    /// `ALL`: every message in the selected queues.
    pub all: bool,
    /// Named queue IDs (besides any that follow the request line).
    #[serde(default)]
    pub ids: Vec<String>,
    /// IDs follow the request, one per line (`postsuper -d -`).
    #[serde(default)]
    pub ids_follow: bool,
    #[serde(default)]
    pub selector: Selector,
    #[serde(default)]
    pub dry_run: bool,
}

impl Request {
    /// Scan the whole queue (ALL or selectors) rather than look up named IDs.
    pub fn scans(&self) -> bool {
        self.all || (self.ids.is_empty() && !self.ids_follow)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub action: Action,
    pub count: u64,
    pub dry_run: bool,
}

impl Summary {
    /// Postfix's line, without the `postsuper: ` prefix; `None` when nothing was done.
    pub fn line(&self) -> Option<String> {
        if self.count == 0 && !self.dry_run {
            return None;
        }
        let s = if self.count == 1 { "" } else { "s" };
        let word = self.action.summary_word();
        Some(match self.dry_run {
            false => format!("{word}: {} message{s}", self.count),
            true => format!(
                "{word} (dry run, nothing changed): {} message{s}",
                self.count
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postfix_wording() {
        let s = |action, count| Summary {
            action,
            count,
            dry_run: false,
        };
        assert_eq!(s(Action::Delete, 3).line().unwrap(), "Deleted: 3 messages");
        assert_eq!(s(Action::Delete, 1).line().unwrap(), "Deleted: 1 message");
        assert_eq!(
            s(Action::Hold, 2).line().unwrap(),
            "Placed on hold: 2 messages"
        );
        assert_eq!(
            s(Action::Release, 1).line().unwrap(),
            "Released from hold: 1 message"
        );
        assert_eq!(
            s(Action::Requeue, 5).line().unwrap(),
            "Requeued: 5 messages"
        );
        assert_eq!(s(Action::Delete, 0).line(), None);
    }
}
