//! Applying a message's outcomes: first decide what they mean (new recipient states, the
//! queue and retry time, which notices, whether the message is finished), then carry the
//! decision out against the store, step by step.
//!
//! Failure rules (issue 8): a step that fails (disk full, I/O error) is logged as a warning
//! and retried with backoff ([`retry::durable_step_delay`]) — never logged as done. Steps
//! already done are not repeated, so a notice is queued once and an outcome line is logged
//! once. While the steps are retried the message stays in the active set with its delivery
//! slots held, and its new states are known only here, in memory: it is not delivered again
//! while the daemon runs, and since at most `default_process_limit` slots exist, at most that
//! many delivered-but-unrecorded messages can be delivered a second time after a crash.

use crate::deliver::{log_outcome, Timed};
use crate::dispatch::InFlight;
use crate::manager::{lock, unix_now, QueueManager};
use crate::notify;
use crate::retry;
use envelope::{Envelope, Outcome, OutcomeKind, QueueId, RecipientState};
use queue::{Entry, FollowUp, QueueName, StoreError, Update};
use std::sync::Arc;
use tracing::{info, warn};

/// What a message's outcomes mean, and what is still to be made durable.
struct Plan {
    /// The entry as it was dispatched (notices quote its envelope).
    entry: Entry,
    /// The envelope with the new recipient states.
    envelope: Envelope,
    /// The state record still to write (none when the removal alone is enough).
    update: Option<Update>,
    hold: Option<String>,
    /// Just delivered recipients whose success notice is still to be queued.
    delivered: Delivered,
    /// The "delayed mail" notice is still to be queued.
    warn_now: bool,
    then: Then,
}

/// The last step of a plan.
#[derive(Clone, Copy)]
enum Then {
    /// Deferred: due again at this Unix time.
    Retry(u64),
    /// Held: stays until released.
    Stay,
    /// Every recipient final: remove the message, or replace it with its bounce.
    Finish,
    /// The message left the queue meanwhile (the operator deleted it): nothing to do.
    Gone,
}

/// A step that failed, for the warning line.
struct Failed {
    what: &'static str,
    error: StoreError,
}

impl QueueManager {
    /// Turns a message's outcomes into durable state, logs them, and decides: retry, finish
    /// (bounce or remove), or hold. Returns only once every step is durable (or the message
    /// is gone): see the module doc.
    pub(crate) async fn apply(self: &Arc<Self>, done: InFlight) {
        let Some(mut plan) = self.decide(done) else {
            return;
        };
        let id = plan.entry.id;
        let mut failures = 0;
        while let Err(f) = self.carry_out(&mut plan).await {
            if lock(&self.dispatch).stopping() {
                // A clean stop does not wait for a disk to come back: what was not
                // recorded is redone at the next start (the store holds the older state).
                warn!(target: "qmgr", "{id}: {}: {}; given up at the stop, the message stays queued",
                    f.what, f.error);
                return;
            }
            failures += 1;
            let wait = retry::durable_step_delay(failures);
            warn!(target: "qmgr", "{id}: {}: {}; will retry in {}s (recipients already delivered are not delivered again)",
                f.what, f.error, wait.as_secs());
            tokio::time::sleep(wait).await;
        }
    }

    /// Logs the outcomes and works out their meaning; `None` if nothing happened.
    fn decide(&self, done: InFlight) -> Option<Plan> {
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
            return None; // a clean stop dropped it before any attempt: nothing happened
        }
        let cfg = self.shared.config();
        let now = unix_now();
        let (mut changes, delivered) =
            new_states(id, &mut meta.envelope, outcomes, started, cfg.soft_bounce);
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
        let (queue, then) = self.where_next(meta.queue, held, still_open, attempts, now);
        let next_attempt = match then {
            Then::Retry(next) => next,
            _ => 0,
        };
        // Every recipient final and nobody asked to hear of it: the removal (or the bounce
        // that replaces the message) is the only record needed. One fsync per delivered
        // message instead of two; a crash before it repeats this delivery, the window RFC
        // 5321 allows, exactly as a crash before the update would.
        let removal_is_enough =
            !still_open && !held && !warn_now && !notify::wants_success(&meta.envelope, &delivered);
        let update = (!removal_is_enough).then_some(Update {
            recipients: changes,
            queue,
            next_attempt,
            attempts,
            delay_warned: meta.delay_warned || warn_now,
        });
        Some(Plan {
            entry,
            envelope: meta.envelope,
            update,
            hold,
            delivered,
            warn_now,
            then,
        })
    }

    /// The queue a message goes to after an attempt, and what follows.
    fn where_next(
        &self,
        queue: QueueName,
        held: bool,
        still_open: bool,
        attempts: u32,
        now: u64,
    ) -> (QueueName, Then) {
        if held && still_open {
            return (QueueName::Hold, Then::Stay);
        }
        if !still_open {
            let queue = if held { QueueName::Hold } else { queue };
            return (queue, Then::Finish);
        }
        let cfg = self.shared.config();
        let next = retry::next_attempt(
            now,
            attempts,
            cfg.minimal_backoff_time,
            cfg.maximal_backoff_time,
            fastrand::f64(),
        );
        (QueueName::Deferred, Then::Retry(next))
    }

    /// Carries out what is left of `plan`; each step done is taken off it, so a retry
    /// resumes at the step that failed.
    async fn carry_out(&self, plan: &mut Plan) -> Result<(), Failed> {
        let id = plan.entry.id;
        if let Some(update) = plan.update.clone() {
            match self.shared.store.update_async(id, update).await {
                Ok(()) => plan.update = None,
                Err(StoreError::NotFound(_)) => plan.then = Then::Gone,
                Err(error) => {
                    return Err(Failed {
                        what: "cannot record delivery status",
                        error,
                    })
                }
            }
            if let (Some(reason), false) = (&plan.hold, matches!(plan.then, Then::Gone)) {
                info!(target: "qmgr", "{id}: hold: {reason}");
            }
        }
        if matches!(plan.then, Then::Gone) {
            return Ok(());
        }
        if !plan.delivered.is_empty() {
            notify::success(self, &plan.entry, &plan.envelope, &plan.delivered)
                .await
                .map_err(|error| Failed {
                    what: "cannot queue the success notification",
                    error,
                })?;
            plan.delivered.clear();
        }
        if plan.warn_now {
            notify::delay(self, &plan.entry, &plan.envelope)
                .await
                .map_err(|error| Failed {
                    what: "cannot queue the delayed mail notification",
                    error,
                })?;
            plan.warn_now = false;
        }
        match plan.then {
            Then::Retry(next) => self.schedule(id, next),
            Then::Stay | Then::Gone => {}
            Then::Finish => self.finalize(id, &plan.envelope).await?,
        }
        Ok(())
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
    /// remove the message. Logs `removed` only once that is durable.
    async fn finalize(&self, id: QueueId, env: &Envelope) -> Result<(), Failed> {
        let cfg = self.shared.config();
        let store = self.shared.store.clone();
        let Some((to, kind, origin, reports)) = notify::bounce_plan(&cfg, id, env) else {
            return match store.remove_async(id, "done").await {
                Ok(()) => {
                    info!(target: "qmgr", "{id}: removed");
                    Ok(())
                }
                Err(StoreError::NotFound(_)) => Ok(()), // deleted by the operator meanwhile
                Err(error) => Err(Failed {
                    what: "cannot remove the delivered message from the queue",
                    error,
                }),
            };
        };
        let (benv, message) = notify::compose(self, id, env, kind, &reports, &to, origin).await;
        let bounce_id = QueueId::generate();
        let follow = Some(FollowUp::Remove(id));
        match store.enqueue_async(bounce_id, benv, &message, follow).await {
            Ok(()) => {
                info!(target: "bounce", "{id}: sender non-delivery notification: {bounce_id}");
                info!(target: "qmgr", "{id}: removed");
                self.schedule(bounce_id, 0);
                Ok(())
            }
            Err(error) => Err(Failed {
                what: "cannot queue the non-delivery notification",
                error,
            }),
        }
    }
}

/// `(recipient index, new state)` pairs of an update.
type Changes = Vec<(usize, RecipientState)>;
/// Recipients just delivered, with their outcomes (for NOTIFY=SUCCESS).
type Delivered = Vec<(usize, Outcome)>;

/// Logs each outcome and sets its recipient's new state; returns the changes and the
/// recipients just delivered. `soft_bounce` turns bounces into deferrals (the safety switch).
fn new_states(
    id: QueueId,
    env: &mut Envelope,
    outcomes: Vec<Timed>,
    started: std::time::Instant,
    soft_bounce: bool,
) -> (Changes, Delivered) {
    let mut changes = Vec::new();
    let mut delivered = Vec::new();
    for mut t in outcomes {
        let o = &mut t.outcome;
        if o.kind == OutcomeKind::Bounced && soft_bounce {
            o.kind = OutcomeKind::Deferred;
            o.dsn = o.dsn.replacen('5', "4", 1);
        }
        let Some(rcpt) = env.recipients.get_mut(o.recipient) else {
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
    (changes, delivered)
}

#[cfg(test)]
mod tests;
