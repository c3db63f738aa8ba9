//! Carrying out a message's plan (`plan.rs`) against the store: the state record, the
//! notices, then the retry time, or the removal (or the bounce that replaces the message).
//!
//! Failure rules (issue 8): a step that fails (disk full, I/O error) is logged as a warning
//! and retried with backoff ([`retry::durable_step_delay`]) — never logged as done. Steps
//! already done are not repeated, so a notice is queued once and an outcome line is logged
//! once. While the steps are retried the message stays in the active set with its delivery
//! slots held, and its new states are known only here, in memory: it is not delivered again
//! while the daemon runs, and since at most `default_process_limit` slots exist, at most that
//! many delivered-but-unrecorded messages can be delivered a second time after a crash.
//!
//! A message with several destinations is not all one record: each item that comes back
//! while others of its message are still out has its outcomes recorded on their own first
//! ([`record_early`]), so a crash while a slow destination is still being tried does not
//! deliver the fast ones again; the last item back is recorded with the message's fate.

use crate::clock::unix_now;
use crate::context::Context;
use crate::dispatch::Message;
use crate::due::Lane;
use crate::notify::{Bounce, Notice};
use crate::plan::{plan, Attempt, Changes, Early, Line, Plan, Then};
use crate::retry;
use crate::timed::log_outcome;
use bounce::Kind;
use envelope::{Envelope, QueueId};
use queue::{FollowUp, QueueName, StoreError};
use std::time::Instant;
use tracing::{info, warn};

/// A step that failed, for the warning line.
struct Failed {
    what: &'static str,
    error: StoreError,
}

/// Plans a message's outcomes, logs them, and carries the plan out. Returns only once every
/// step is durable, the message is gone, or a clean stop gave up: see the module doc.
pub(crate) async fn apply(cx: &Context, done: Message) {
    let id = done.entry.id;
    let held = cx
        .shared
        .store
        .get(id)
        .is_some_and(|e| e.meta.queue == QueueName::Hold);
    let attempt = Attempt {
        meta: done.entry.meta,
        outcomes: done.outcomes,
        hold: done.hold,
        held,
        held_back: done.held_back,
        recorded_early: done.recorded_early,
    };
    let settings = cx.shared.settings();
    let Some(mut plan) = plan(attempt, &settings, unix_now(), fastrand::f64()) else {
        return;
    };
    log_lines(id, &plan.lines, done.started);
    count_outcomes(cx, &plan.lines);
    let mut failures = 0;
    while let Err(f) = carry_out(cx, id, &mut plan).await {
        if cx.stopping() {
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

/// Makes one item's outcomes durable on their own, while other items of its message are
/// still out (`Dispatch::others_out`): the new recipient states alone (the store keeps the
/// message's queue and retry time as they are, so an operator's hold meanwhile stands), or,
/// when they call for a success notice, that notice queued with the states as its follow-up
/// (one record: the notice goes exactly once, as Postfix sends one per delivery request).
/// Once durable the outcomes are logged and counted, and their states returned for the
/// message (the final plan sees them, and writes only the outcomes that came after). A
/// record that fails is not retried here: `None`, and the outcomes go with the rest of the
/// message, recorded (with its retries) by [`apply`].
pub(crate) async fn record_early(
    cx: &Context,
    id: QueueId,
    early: Early,
    started: Instant,
) -> Option<Changes> {
    if early.changes.is_empty() {
        return None;
    }
    let store = &cx.shared.store;
    let result = match &early.success {
        Some((notice, envelope)) => {
            let follow = FollowUp::SetRecipients(id, early.changes.clone());
            queue_notice(cx, id, envelope, notice, Some(follow)).await
        }
        None => store.set_recipients_async(id, early.changes.clone()).await,
    };
    match result {
        // Deleted by the operator meanwhile: the delivery happened all the same.
        Ok(()) | Err(StoreError::NotFound(_)) => {
            log_lines(id, &early.lines, started);
            count_outcomes(cx, &early.lines);
            Some(early.changes)
        }
        Err(e) => {
            warn!(target: "qmgr", "{id}: cannot record delivery status: {e}; it is recorded with the rest of the message");
            None
        }
    }
}

/// Adds the plan's final outcomes to the daemon's totals.
fn count_outcomes(cx: &Context, lines: &[Line]) {
    use std::sync::atomic::Ordering::Relaxed;
    for line in lines {
        match line {
            Line::Outcome { timed, .. } => match timed.outcome.kind {
                envelope::OutcomeKind::Sent => cx.delivered.fetch_add(1, Relaxed),
                envelope::OutcomeKind::Bounced => cx.bounced.fetch_add(1, Relaxed),
                envelope::OutcomeKind::Deferred => 0,
            },
            Line::Expired { .. } => cx.bounced.fetch_add(1, Relaxed),
        };
    }
}

fn log_lines(id: QueueId, lines: &[Line], started: Instant) {
    for line in lines {
        match line {
            Line::Outcome { to, orig_to, timed } => {
                log_outcome(id, to, orig_to.as_deref(), timed, started)
            }
            Line::Expired { to, reason } => {
                info!(target: "qmgr", "{id}: to=<{to}>, status=expired, returned to sender ({reason})");
                telemetry::get().qmgr_messages_expired.inc();
            }
        }
    }
}

/// Carries out what is left of `plan`; each step done is taken off it, so a retry resumes
/// at the step that failed.
async fn carry_out(cx: &Context, id: QueueId, plan: &mut Plan) -> Result<(), Failed> {
    if let Some(update) = plan.update.clone() {
        match cx.shared.store.update_async(id, update).await {
            Ok(()) => plan.update = None,
            // The operator deleted the message meanwhile: nothing left to do.
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(error) => {
                return Err(Failed {
                    what: "cannot record delivery status",
                    error,
                })
            }
        }
        if let Some(reason) = &plan.hold {
            info!(target: "qmgr", "{id}: hold: {reason}");
        }
    }
    while let Some(notice) = plan.notices.first() {
        let what = match notice.kind {
            Kind::Delay => "cannot queue the delayed mail notification",
            _ => "cannot queue the success notification",
        };
        queue_notice(cx, id, &plan.envelope, notice, None)
            .await
            .map_err(|error| Failed { what, error })?;
        plan.notices.remove(0);
    }
    match &plan.then {
        Then::Retry(next) => cx.due.schedule(id, *next, Lane::Deferred),
        Then::Stay => {}
        Then::Finish(bounce) => finish(cx, id, &plan.envelope, bounce).await?,
    }
    Ok(())
}

/// A notice through cleanup's address rewriting, as Postfix's bounce mail goes through
/// cleanup: a sender in a virtual alias domain gets it where that address expands to.
fn rewritten(cx: &Context, (mut env, message): (Envelope, Vec<u8>)) -> (Envelope, Vec<u8>) {
    match cx
        .shared
        .cleanup()
        .and_then(|cleanup| cleanup(&mut env, &message))
    {
        Some(rewritten) => (env, rewritten),
        None => (env, message),
    }
}

/// Queues a success or delay notice (null sender) about message `id`, with `follow` made
/// durable in the same record.
async fn queue_notice(
    cx: &Context,
    id: QueueId,
    env: &Envelope,
    notice: &Notice,
    follow: Option<FollowUp>,
) -> Result<(), StoreError> {
    let (nenv, message) = rewritten(cx, compose(cx, id, env, notice).await);
    let new_id = QueueId::generate();
    cx.shared
        .store
        .enqueue_async(new_id, nenv, &message, follow)
        .await?;
    let what = if notice.kind == Kind::Delay {
        "delayed mail"
    } else {
        "delivery status"
    };
    info!(target: "bounce", "{id}: sender {what} notification: {new_id}");
    cx.due.schedule(new_id, 0, Lane::Incoming);
    Ok(())
}

/// Every recipient is final: queue a bounce (replacing the original atomically) or remove
/// the message. Logs `removed` only once that is durable.
async fn finish(cx: &Context, id: QueueId, env: &Envelope, bounce: &Bounce) -> Result<(), Failed> {
    let notice = match bounce {
        Bounce::Send(notice) => notice,
        Bounce::Discarded | Bounce::Nothing => {
            if *bounce == Bounce::Discarded {
                warn!(target: "qmgr", "{id}: postmaster notice undeliverable; discarded");
            }
            return remove(cx, id).await;
        }
    };
    let (benv, message) = rewritten(cx, compose(cx, id, env, notice).await);
    let bounce_id = QueueId::generate();
    let follow = Some(FollowUp::Remove(id));
    let store = &cx.shared.store;
    match store.enqueue_async(bounce_id, benv, &message, follow).await {
        Ok(()) => {
            info!(target: "bounce", "{id}: sender non-delivery notification: {bounce_id}");
            info!(target: "qmgr", "{id}: removed");
            telemetry::get().qmgr_messages_removed.inc();
            cx.due.schedule(bounce_id, 0, Lane::Incoming);
            Ok(())
        }
        Err(error) => Err(Failed {
            what: "cannot queue the non-delivery notification",
            error,
        }),
    }
}

async fn remove(cx: &Context, id: QueueId) -> Result<(), Failed> {
    match cx.shared.store.remove_async(id, "done").await {
        Ok(()) => {
            info!(target: "qmgr", "{id}: removed");
            telemetry::get().qmgr_messages_removed.inc();
            Ok(())
        }
        Err(StoreError::NotFound(_)) => Ok(()), // deleted by the operator meanwhile
        Err(error) => Err(Failed {
            what: "cannot remove the delivered message from the queue",
            error,
        }),
    }
}

/// A notification about message `id`, with the original read back from the store (as much
/// of it as `bounce_size_limit` and RET allow), and its null-sender envelope.
async fn compose(
    cx: &Context,
    id: QueueId,
    env: &Envelope,
    notice: &Notice,
) -> (Envelope, Vec<u8>) {
    let settings = cx.shared.settings();
    let store = cx.shared.store.clone();
    let read = tokio::task::spawn_blocking(move || store.read_message(id)).await;
    let read = read
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    // The notice still goes (its reports are what matters), but not silently without it.
    let original = read.unwrap_or_else(|e| {
        warn!(target: "qmgr", "{id}: cannot read the message for the notification: {e}; it is sent without the original");
        Vec::new()
    });
    let message = bounce::build(&bounce::Input {
        id,
        envelope: env,
        original: &original,
        myhostname: &settings.myhostname,
        reports: &notice.reports,
        kind: notice.kind,
        to: &notice.to,
        size_limit: settings.bounce_size_limit as usize,
    });
    let mut envelope = Envelope::new("", vec![notice.to.clone()], unix_now());
    envelope.origin = notice.origin.into();
    (envelope, message)
}

#[cfg(test)]
mod tests;
