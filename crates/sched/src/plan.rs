//! What a message's outcomes mean, decided purely: the new recipient states, the queue and
//! retry time, which notices to send, what to write, and whether the message is finished.
//! `carry` then makes the plan durable, step by step; nothing here touches the store, the
//! clock or the log (`now` and the retry `jitter` are inputs, log lines are outputs).
//!
//! Rules, in order: each outcome sets its recipient's state (`soft_bounce` turns a bounce
//! into a deferral); deferred recipients of a message past its lifetime bounce (`4.4.7`,
//! `status=expired`); a held message stays in `hold`; a message with open recipients is
//! deferred until the retry time ([`retry::next_attempt`]) and gets its one "delayed mail"
//! warning when due; a message whose recipients are all final is finished: removed, or
//! replaced by its bounce. When finishing needs no other record (nothing held, no notice),
//! the removal is the only write: one fsync per delivered message instead of two; a crash
//! before it repeats this delivery, the window RFC 5321 allows, exactly as a crash before an
//! update would.

use crate::notify::{self, Bounce, Delivered, Notice};
use crate::retry;
use crate::settings::Settings;
use crate::timed::Timed;
use envelope::{Envelope, OutcomeKind, Recipient, RecipientState};
use queue::{MessageMeta, QueueName, Update};

/// One delivery attempt of a message, as it came back.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    /// The message as it was dispatched.
    pub meta: MessageMeta,
    pub outcomes: Vec<Timed>,
    /// Why a transport_maps `hold:` route held it.
    pub hold: Option<String>,
    /// The operator held it meanwhile (`postsuper -h`).
    pub held: bool,
    /// Recipients a suspended destination held back: they do not expire in this pass.
    pub held_back: Vec<usize>,
    /// Some items' outcomes were recorded on their own already ([`early`]): the attempt
    /// counts even if no outcome is left for this plan.
    pub recorded_early: bool,
}

/// A log line the plan calls for (logged when the plan is carried out).
#[derive(Debug, Clone)]
pub(crate) enum Line {
    /// `to=<..>, orig_to=<..>, relay=.., status=..`: one per outcome; `orig_to` is the
    /// address cleanup rewrote this recipient from (a virtual alias, a canonical map).
    Outcome {
        to: String,
        orig_to: Option<String>,
        timed: Timed,
    },
    /// `to=<..>, status=expired, returned to sender (..)`.
    Expired { to: String, reason: String },
}

/// What the outcomes mean, and what is to be made durable.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub lines: Vec<Line>,
    /// The envelope with the new recipient states (notices quote it).
    pub envelope: Envelope,
    /// The state record to write (none when the removal alone is enough).
    pub update: Option<Update>,
    /// Why the message was held by its route (logged once the update is durable).
    pub hold: Option<String>,
    /// Success and delay notices to queue, in this order.
    pub notices: Vec<Notice>,
    pub then: Then,
}

/// The last step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Then {
    /// Deferred: due again at this Unix time.
    Retry(u64),
    /// Held: stays until released.
    Stay,
    /// Every recipient final: remove the message, or replace it with its bounce.
    Finish(Bounce),
}

/// The plan for one attempt; `None` if nothing happened (a clean stop dropped the message
/// before any attempt). `jitter` is a random number in `[0, 1)` for the retry time.
pub(crate) fn plan(attempt: Attempt, settings: &Settings, now: u64, jitter: f64) -> Option<Plan> {
    let Attempt {
        mut meta,
        outcomes,
        hold,
        held,
        held_back,
        recorded_early,
    } = attempt;
    let has_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
    if outcomes.is_empty() && hold.is_none() && has_open && !recorded_early {
        return None;
    }
    let mut lines = Vec::new();
    let (mut changes, delivered) = new_states(
        &mut meta.envelope,
        outcomes,
        settings.soft_bounce,
        &mut lines,
    );
    let expiry = Expiry {
        settings,
        now,
        held_back: &held_back,
    };
    expire(&mut meta.envelope, &mut changes, &expiry, &mut lines);
    let still_open = meta.envelope.recipients.iter().any(|r| r.state.is_open());
    let held = hold.is_some() || held;
    let warn_now = still_open && !held && notify::delay_warning_due(settings, &meta, now);
    let attempts = meta.attempts + 1;
    let (queue, then) = where_next(&meta, held, still_open, settings, now, jitter);
    let next_attempt = match then {
        Then::Retry(next) => next,
        _ => 0,
    };
    let removal_is_enough =
        !still_open && !held && !warn_now && !notify::wants_success(&meta.envelope, &delivered);
    let update = (!removal_is_enough).then_some(Update {
        recipients: changes,
        queue,
        next_attempt,
        attempts,
        delay_warned: meta.delay_warned || warn_now,
    });
    let success = notify::success(&meta.envelope, &delivered);
    let delay = warn_now.then(|| notify::delay(&meta.envelope)).flatten();
    Some(Plan {
        lines,
        envelope: meta.envelope,
        update,
        hold,
        notices: success.into_iter().chain(delay).collect(),
        then,
    })
}

/// One item's outcomes, recorded before the rest of its message's (other items are still
/// out): the new states alone, their log lines, and the success notice they call for. The
/// message's queue, retry time, expiry, delay warning and bounce are the final plan's.
#[derive(Debug, Clone)]
pub(crate) struct Early {
    pub lines: Vec<Line>,
    pub changes: Changes,
    /// The success notice, with the envelope it quotes (the new states in it).
    pub success: Option<(Notice, Envelope)>,
}

/// The [`Early`] record of one item's outcomes for the message `meta`. Costs the item's
/// recipients, not the message's: the envelope is copied only for a success notice.
pub(crate) fn early(meta: &MessageMeta, outcomes: Vec<Timed>, settings: &Settings) -> Early {
    let env = &meta.envelope;
    let (mut lines, mut changes, mut delivered) = (Vec::new(), Vec::new(), Vec::new());
    for t in outcomes {
        let i = t.outcome.recipient;
        let Some(mut rcpt) = env.recipients.get(i).cloned() else {
            continue;
        };
        let (sent, line) = new_state(&mut rcpt, t, settings.soft_bounce);
        changes.push((i, rcpt.state));
        delivered.extend(sent);
        lines.push(line);
    }
    let success = notify::success(env, &delivered).map(|notice| {
        let mut env = env.clone();
        for (i, state) in &changes {
            env.recipients[*i].state = state.clone();
        }
        (notice, env)
    });
    Early {
        lines,
        changes,
        success,
    }
}

/// The queue a message goes to after an attempt, and what follows.
fn where_next(
    meta: &MessageMeta,
    held: bool,
    still_open: bool,
    settings: &Settings,
    now: u64,
    jitter: f64,
) -> (QueueName, Then) {
    if held && still_open {
        return (QueueName::Hold, Then::Stay);
    }
    if !still_open {
        let queue = if held { QueueName::Hold } else { meta.queue };
        return (
            queue,
            Then::Finish(notify::bounce(settings, &meta.envelope)),
        );
    }
    let next = retry::next_attempt(
        now,
        meta.attempts + 1,
        settings.minimal_backoff_time,
        settings.maximal_backoff_time,
        jitter,
    );
    (QueueName::Deferred, Then::Retry(next))
}

/// `(recipient index, new state)` pairs of an update.
pub(crate) type Changes = Vec<(usize, RecipientState)>;

/// Sets each outcome's recipient's new state; returns the changes and the recipients just
/// delivered. `soft_bounce` turns bounces into deferrals (the safety switch).
fn new_states(
    env: &mut Envelope,
    outcomes: Vec<Timed>,
    soft_bounce: bool,
    lines: &mut Vec<Line>,
) -> (Changes, Vec<Delivered>) {
    let mut changes = Vec::new();
    let mut delivered = Vec::new();
    for t in outcomes {
        let i = t.outcome.recipient;
        let Some(rcpt) = env.recipients.get_mut(i) else {
            continue;
        };
        let (sent, line) = new_state(rcpt, t, soft_bounce);
        changes.push((i, rcpt.state.clone()));
        delivered.extend(sent);
        lines.push(line);
    }
    (changes, delivered)
}

/// One outcome's new state for its recipient, its log line, and the delivery if it is one.
fn new_state(rcpt: &mut Recipient, mut t: Timed, soft_bounce: bool) -> (Option<Delivered>, Line) {
    let o = &mut t.outcome;
    if o.kind == OutcomeKind::Bounced && soft_bounce {
        o.kind = OutcomeKind::Deferred;
        o.dsn = o.dsn.replacen('5', "4", 1);
    }
    let o = &t.outcome;
    let mut delivered = None;
    rcpt.state = match o.kind {
        OutcomeKind::Sent => {
            delivered = Some(Delivered {
                outcome: o.clone(),
                agent: t.agent,
            });
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
    let to = rcpt.address.clone();
    let orig_to = rewrite::original_recipient(rcpt).map(str::to_string);
    let line = Line::Outcome {
        to,
        orig_to,
        timed: t,
    };
    (delivered, line)
}

/// What decides whether a deferred recipient expires.
struct Expiry<'a> {
    settings: &'a Settings,
    now: u64,
    /// Held back by a suspension: the operator's pause does not age them out.
    held_back: &'a [usize],
}

/// Deferred recipients of a message past its lifetime become bounced (`status=expired`).
fn expire(env: &mut Envelope, changes: &mut Changes, x: &Expiry<'_>, lines: &mut Vec<Line>) {
    let (settings, now) = (x.settings, x.now);
    let lifetime = if env.is_null_sender() {
        settings.bounce_queue_lifetime
    } else {
        settings.maximal_queue_lifetime
    };
    if !retry::expired(env.arrival_time, now, lifetime) {
        return;
    }
    for (i, r) in env.recipients.iter_mut().enumerate() {
        if x.held_back.contains(&i) {
            continue;
        }
        if let RecipientState::Deferred { reason } = &r.state {
            let reason = format!(
                "message expired after {}s in the queue; last error: {reason}",
                lifetime.as_secs()
            );
            r.state = RecipientState::Bounced {
                status: "4.4.7".into(),
                reason: reason.clone(),
            };
            changes.retain(|(idx, _)| *idx != i);
            changes.push((i, r.state.clone()));
            let to = r.address.clone();
            lines.push(Line::Expired { to, reason });
        }
    }
}

#[cfg(test)]
mod tests;
