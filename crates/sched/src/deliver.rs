//! One delivery attempt of one work item (its outcomes are applied in `apply.rs`), and the
//! Postfix-style outcome log line.

use crate::dispatch::Item;
use crate::manager::{unix_now, QueueManager};
use crate::route::Route;
use envelope::{Envelope, Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, FollowUp, StoreError};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tracing::{error, info, warn};

/// An outcome with the times Postfix's `delays=a/b/c/d` are made of.
pub(crate) struct Timed {
    pub outcome: Outcome,
    /// When the item was queued at its destination.
    pub queued: Instant,
    /// When a delivery slot took it.
    pub dispatched: Instant,
    pub finished: Instant,
    /// The program name of the log line, as Postfix names its agents: `local`, `smtp`,
    /// `discard`, `error`, `retry`, or `qmgr` for what the queue manager decided itself.
    pub program: &'static str,
}

impl Timed {
    pub fn now(outcome: Outcome, queued: Instant, program: &'static str) -> Timed {
        let now = Instant::now();
        Timed {
            outcome,
            queued,
            dispatched: now,
            finished: now,
            program,
        }
    }
}

fn seconds_since_id(id: QueueId) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    now.saturating_sub(id.unix_micros()) as f64 / 1e6
}

impl QueueManager {
    pub(crate) async fn run_item(self: Arc<Self>, item: Item) {
        let dispatched = Instant::now();
        let (outcomes, failure) = self.attempt(&item).await;
        let finished = Instant::now();
        let timed = complete_set(&item, outcomes)
            .into_iter()
            .map(|outcome| Timed {
                outcome,
                queued: item.queued,
                dispatched,
                finished,
                program: match item.route {
                    Route::Local => "local",
                    _ => "smtp",
                },
            })
            .collect();
        self.item_done(&item, timed, failure);
    }

    /// Runs the agent for one item. Panics inside agents are contained: the item is deferred.
    async fn attempt(&self, item: &Item) -> (Vec<Outcome>, Option<String>) {
        let Some(entry) = self.shared.store.get(item.id) else {
            return (Vec::new(), None);
        };
        let store = self.shared.store.clone();
        let id = item.id;
        let body = match tokio::task::spawn_blocking(move || store.read_message(id)).await {
            Ok(Ok(b)) => b,
            Ok(Err(StoreError::Corrupt(why))) => {
                return (self.quarantine(&entry, &item.recipients, &why).await, None);
            }
            other => {
                let why = format!("cannot read queue file: {:?}", other.map(|r| r.err()));
                return (defer_all(&item.recipients, &why), None);
            }
        };
        match &item.route {
            Route::Local => (self.run_local(&entry, &item.recipients, body).await, None),
            Route::Smtp { nexthop, .. } => {
                let remote = self.shared.remote();
                let (hop, env, rcpts) = (
                    nexthop.clone(),
                    entry.meta.envelope.clone(),
                    item.recipients.clone(),
                );
                let task = tokio::spawn(async move {
                    let r = remote.deliver(&hop, id, &env, &rcpts, &body).await;
                    (r.outcomes, r.destination_failure)
                });
                match task.await {
                    Ok(result) => result,
                    Err(e) => {
                        error!(target: "smtp", "{id}: delivery agent failed: {e}; message deferred");
                        (
                            defer_all(&item.recipients, "internal error in the SMTP client"),
                            None,
                        )
                    }
                }
            }
            _ => (Vec::new(), None),
        }
    }

    async fn run_local(&self, entry: &Entry, recipients: &[usize], body: Vec<u8>) -> Vec<Outcome> {
        let agent = self.shared.local();
        let (id, env, rcpts) = (entry.id, entry.meta.envelope.clone(), recipients.to_vec());
        match tokio::task::spawn_blocking(move || agent.deliver(id, &env, &rcpts, &body)).await {
            Ok(delivery) => {
                let forwarded = self.resubmit(entry, delivery.resubmit).await;
                delivery
                    .outcomes
                    .into_iter()
                    .map(|o| merge_forward(o, &forwarded))
                    .collect()
            }
            Err(e) => {
                error!(target: "local", "{id}: delivery agent failed: {e}; message deferred");
                defer_all(recipients, "internal error in the local delivery agent")
            }
        }
    }

    /// Queues forwarded copies; each marks its alias recipient sent in the same record.
    async fn resubmit(
        &self,
        entry: &Entry,
        list: Vec<agents::Resubmission>,
    ) -> Vec<(usize, Result<QueueId, String>)> {
        let mut results = Vec::new();
        for r in list {
            let new_id = QueueId::generate();
            let mut env = Envelope::new(r.sender, r.recipients, unix_now());
            env.origin = "forward".into();
            let follow =
                FollowUp::SetRecipients(entry.id, vec![(r.for_recipient, RecipientState::Sent)]);
            let store = self.shared.store.clone();
            let msg = r.message;
            let res = store
                .enqueue_async(new_id, env, &msg, Some(follow))
                .await
                .map_err(|e| e.to_string());
            if res.is_ok() {
                self.schedule(new_id, 0);
            }
            results.push((r.for_recipient, res.map(|_| new_id)));
        }
        results
    }

    /// A message whose record fails its checksum: its envelope and the damaged record go to
    /// `corrupt/` (durably), then the message leaves the queue, with one error line; the
    /// daemon carries on. If the copy cannot be saved the message stays queued, deferred,
    /// and is tried again later; a removal that fails is retried with backoff.
    async fn quarantine(&self, entry: &Entry, recipients: &[usize], why: &str) -> Vec<Outcome> {
        let id = entry.id;
        let dir = self.shared.config().queue_directory.join("corrupt");
        let json = serde_json::to_vec_pretty(&entry.meta).unwrap_or_default();
        let store = self.shared.store.clone();
        let target = dir.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let raw = store.raw_record(id).unwrap_or_default();
            queue::write_durably(&target, &format!("{id}.record"), &raw)?;
            queue::write_durably(&target, &format!("{id}.envelope.json"), &json)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        if let Err(e) = saved {
            error!(target: "qmgr", "{id}: queue file is corrupt ({why}); cannot save it to {}: {e}; it stays in the queue", dir.display());
            return defer_all(
                recipients,
                "queue file is corrupt and cannot be saved to corrupt/",
            );
        }
        let mut failures = 0;
        loop {
            match self.shared.store.remove_async(id, "corrupt").await {
                Ok(()) | Err(StoreError::NotFound(_)) => break,
                Err(e) if crate::manager::lock(&self.dispatch).stopping() => {
                    warn!(target: "qmgr", "{id}: cannot remove the corrupt queue file from the queue: {e}; it stays queued until the next start");
                    return Vec::new();
                }
                Err(e) => {
                    failures += 1;
                    let wait = crate::retry::durable_step_delay(failures);
                    warn!(target: "qmgr", "{id}: cannot remove the corrupt queue file from the queue: {e}; will retry in {}s", wait.as_secs());
                    tokio::time::sleep(wait).await;
                }
            }
        }
        error!(target: "qmgr", "{id}: queue file is corrupt ({why}); envelope and record saved to {}, message removed from the queue", dir.join(format!("{id}.*")).display());
        Vec::new()
    }
}

fn defer_all(recipients: &[usize], why: &str) -> Vec<Outcome> {
    recipients
        .iter()
        .map(|&i| Outcome::deferred(i, "4.3.0", "none", why))
        .collect()
}

/// Exactly one outcome per requested recipient: extras are dropped, missing ones deferred.
fn complete_set(item: &Item, outcomes: Vec<Outcome>) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(item.recipients.len());
    for &i in &item.recipients {
        match outcomes.iter().find(|o| o.recipient == i) {
            Some(o) => out.push(o.clone()),
            None if outcomes.is_empty() => {}
            None => out.push(Outcome::deferred(
                i,
                "4.3.0",
                "none",
                "delivery agent gave no result",
            )),
        }
    }
    out
}

/// A recipient forwarded as a new message: sent once the forward is queued, else deferred.
fn merge_forward(o: Outcome, forwarded: &[(usize, Result<QueueId, String>)]) -> Outcome {
    match forwarded.iter().find(|(i, _)| *i == o.recipient) {
        Some((_, Err(e))) => Outcome::deferred(
            o.recipient,
            "4.3.0",
            &o.relay,
            format!("cannot queue forwarded message: {e}"),
        ),
        Some((_, Ok(new_id))) if o.kind == OutcomeKind::Sent => Outcome::sent(
            o.recipient,
            &o.relay,
            format!("{}; forwarded as {new_id}", o.text),
        ),
        _ => o,
    }
}

/// `QUEUEID: to=<...>, relay=..., delay=..., delays=a/b/c/d, dsn=..., status=... (...)`.
/// a = time before this attempt (in the queue), b = waiting for a delivery slot (e.g. for the
/// content filter), c = 0 (connection setup is not measured apart), d = the delivery itself.
pub(crate) fn log_outcome(id: QueueId, to: &str, t: &Timed, started: Instant) {
    let o = &t.outcome;
    let status = match o.kind {
        OutcomeKind::Sent => "sent",
        OutcomeKind::Deferred => "deferred",
        OutcomeKind::Bounced => "bounced",
    };
    let delay = seconds_since_id(id);
    let b = t
        .dispatched
        .saturating_duration_since(t.queued.min(started))
        .as_secs_f64();
    let d = t
        .finished
        .saturating_duration_since(t.dispatched)
        .as_secs_f64();
    let a = (delay - b - d).max(0.0);
    let line = format!("{id}: to=<{to}>, relay={}, delay={delay:.2}, delays={a:.2}/{b:.2}/0/{d:.2}, dsn={}, status={status} ({})", o.relay, o.dsn, o.text);
    // Postfix logs delivery lines under the agent's name; tracing targets must be constant.
    macro_rules! line {
        ($target:literal) => {
            info!(target: $target, queue_id = %id, to = to, relay = %o.relay, dsn = %o.dsn, status = status, "{line}")
        };
    }
    match t.program {
        "local" => line!("local"),
        "smtp" => line!("smtp"),
        "discard" => line!("discard"),
        "error" => line!("error"),
        "retry" => line!("retry"),
        _ => line!("qmgr"),
    }
}
