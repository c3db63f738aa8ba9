//! One delivery attempt of one work item, and applying a message's outcomes: durable state,
//! Postfix-style log lines, retry or finish.

use crate::dispatch::{InFlight, Item};
use crate::manager::{unix_now, QueueManager};
use crate::notify;
use crate::retry;
use crate::route::Route;
use envelope::{Envelope, Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, FollowUp, QueueName, StoreError, Update};
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
                self.quarantine(&entry, &why).await;
                return (Vec::new(), None);
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

    /// Turns a message's outcomes into durable state, logs them, and decides: retry, finish
    /// (bounce or remove), or hold.
    pub(crate) async fn apply(self: &Arc<Self>, done: InFlight) {
        let InFlight {
            entry,
            outcomes,
            started,
            hold,
            ..
        } = done;
        let id = entry.id;
        let mut meta = entry.meta.clone();
        let has_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
        if outcomes.is_empty() && hold.is_none() && has_open {
            return; // a clean stop dropped it before any attempt: nothing happened
        }
        let cfg = self.shared.config();
        let now = unix_now();
        let mut changes = Vec::new();
        let mut delivered = Vec::new();
        for mut t in outcomes {
            let o = &mut t.outcome;
            if o.kind == OutcomeKind::Bounced && cfg.soft_bounce {
                o.kind = OutcomeKind::Deferred; // soft_bounce: the safety switch
                o.dsn = o.dsn.replacen('5', "4", 1);
            }
            let Some(rcpt) = meta.envelope.recipients.get_mut(o.recipient) else {
                continue;
            };
            log_outcome(id, &rcpt.address, &t, started);
            let o = &t.outcome;
            rcpt.state = match o.kind {
                OutcomeKind::Sent => {
                    delivered.push((o.recipient, o.clone()));
                    RecipientState::Sent
                }
                OutcomeKind::Deferred => RecipientState::Deferred {
                    reason: o.text.clone(),
                },
                OutcomeKind::Bounced => RecipientState::Bounced {
                    status: o.dsn.clone(),
                    reason: o.text.clone(),
                },
            };
            changes.push((o.recipient, rcpt.state.clone()));
        }
        self.expire(id, &mut meta.envelope, &mut changes, now);
        let still_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
        let held = hold.is_some()
            || self
                .shared
                .store
                .get(id)
                .is_some_and(|e| e.meta.queue == QueueName::Hold);
        let warn_now = still_open && !held && notify::delay_warning_due(&cfg, &meta, now);
        let attempts = meta.attempts + 1;
        let (queue, next) = if held {
            (QueueName::Hold, 0)
        } else if still_open {
            let next = retry::next_attempt(
                now,
                attempts,
                cfg.minimal_backoff_time,
                cfg.maximal_backoff_time,
                fastrand::f64(),
            );
            (QueueName::Deferred, next)
        } else {
            (meta.queue, 0)
        };
        if !still_open && !held && !warn_now && !notify::wants_success(&meta.envelope, &delivered) {
            // Every recipient is final and nobody asked to hear of it: the removal (or the
            // bounce that replaces the message) is the only record needed. One fsync per
            // delivered message instead of two; a crash before it repeats this delivery, the
            // window RFC 5321 allows, exactly as a crash before the update would.
            self.finalize(id, &meta.envelope).await;
            return;
        }
        let update = Update {
            recipients: changes,
            queue,
            next_attempt: next,
            attempts,
            delay_warned: meta.delay_warned || warn_now,
        };
        let store = self.shared.store.clone();
        match store.update_async(id, update).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return, // deleted by the operator meanwhile
            Err(e) => {
                warn!(target: "qmgr", "{id}: cannot record delivery status: {e}; will retry");
                self.schedule(id, now + cfg.minimal_backoff_time.as_secs());
                return;
            }
        }
        if let Some(reason) = &hold {
            info!(target: "qmgr", "{id}: hold: {reason}");
        }
        notify::success(self, &entry, &meta.envelope, &delivered).await;
        if warn_now {
            notify::delay(self, &entry, &meta.envelope).await;
        }
        if held && still_open {
            // stays in hold until released
        } else if still_open {
            self.schedule(id, next);
        } else {
            self.finalize(id, &meta.envelope).await;
        }
    }

    /// Deferred recipients of a message past its lifetime become bounced (`status=expired`).
    fn expire(
        &self,
        id: QueueId,
        env: &mut Envelope,
        changes: &mut Vec<(usize, RecipientState)>,
        now: u64,
    ) {
        let cfg = self.shared.config();
        let lifetime = if env.is_null_sender() {
            cfg.bounce_queue_lifetime
        } else {
            cfg.maximal_queue_lifetime
        };
        if !retry::expired(env.arrival_time, now, lifetime) {
            return;
        }
        for (i, r) in env.recipients.iter_mut().enumerate() {
            if let RecipientState::Deferred { reason } = &r.state {
                let reason = format!(
                    "message expired after {}s in the queue; last error: {reason}",
                    lifetime.as_secs()
                );
                info!(target: "qmgr", "{id}: to=<{}>, status=expired, returned to sender ({reason})", r.address);
                r.state = RecipientState::Bounced {
                    status: "4.4.7".into(),
                    reason,
                };
                changes.retain(|(idx, _)| *idx != i);
                changes.push((i, r.state.clone()));
            }
        }
    }

    /// Every recipient is final: queue a bounce (replacing the original atomically) or
    /// remove the message.
    async fn finalize(&self, id: QueueId, env: &Envelope) {
        let cfg = self.shared.config();
        let store = self.shared.store.clone();
        let plan = notify::bounce_plan(&cfg, id, env);
        let Some((to, kind, origin, reports)) = plan else {
            let _ = store.remove_async(id, "done").await;
            info!(target: "qmgr", "{id}: removed");
            return;
        };
        let (benv, message) = notify::compose(self, id, env, kind, &reports, &to, origin).await;
        let bounce_id = QueueId::generate();
        let follow = Some(FollowUp::Remove(id));
        match store.enqueue_async(bounce_id, benv, &message, follow).await {
            Ok(()) => {
                info!(target: "bounce", "{id}: sender non-delivery notification: {bounce_id}");
                info!(target: "qmgr", "{id}: removed");
                self.schedule(bounce_id, 0);
            }
            Err(e) => {
                warn!(target: "bounce", "{id}: cannot queue non-delivery notification: {e}; will retry");
                self.schedule(id, unix_now() + cfg.minimal_backoff_time.as_secs());
            }
        }
    }

    /// A message whose record fails its checksum: its envelope goes to `corrupt/`, the
    /// message leaves the queue, one error line is logged; the daemon carries on.
    async fn quarantine(&self, entry: &Entry, why: &str) {
        let cfg = self.shared.config();
        let dir = cfg.queue_directory.join("corrupt");
        let path = dir.join(format!("{}.envelope.json", entry.id));
        let json = serde_json::to_vec_pretty(&entry.meta).unwrap_or_default();
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, json));
        error!(target: "qmgr", "{}: queue file is corrupt ({why}); envelope saved to {}, message removed from the queue", entry.id, path.display());
        let store = self.shared.store.clone();
        let id = entry.id;
        let _ = store.remove_async(id, "corrupt").await;
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
fn log_outcome(id: QueueId, to: &str, t: &Timed, started: Instant) {
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
