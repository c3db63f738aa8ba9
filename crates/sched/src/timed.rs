//! An agent's outcome for one recipient, with the agent that produced it and the times
//! Postfix's `delays=a/b/c/d` are made of; and the Postfix-style log line of it.

use envelope::{Outcome, OutcomeKind, QueueId};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tracing::info;

/// Who produced an outcome: the program name of its log line, as Postfix names its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Agent {
    Local,
    Virtual,
    Smtp,
    Lmtp,
    Discard,
    Error,
    Retry,
    /// What the queue manager decided itself (a dead destination's deferral).
    Qmgr,
}

/// An outcome with its times.
#[derive(Debug, Clone)]
pub(crate) struct Timed {
    pub outcome: Outcome,
    /// When the item was queued at its destination.
    pub queued: Instant,
    /// When a delivery slot took it.
    pub dispatched: Instant,
    pub finished: Instant,
    pub agent: Agent,
}

impl Timed {
    /// An outcome decided at `now`, without a delivery.
    pub fn at(outcome: Outcome, queued: Instant, now: Instant, agent: Agent) -> Timed {
        Timed {
            outcome,
            queued,
            dispatched: now,
            finished: now,
            agent,
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

/// `QUEUEID: to=<...>, relay=..., delay=..., delays=a/b/c/d, dsn=..., status=... (...)`.
/// a = time before this attempt (in the queue), b = waiting for a delivery slot (e.g. for the
/// content filter), c = 0 (connection setup is not measured apart), d = the delivery itself.
/// An expanded recipient (an alias) gets one line per final destination,
/// `to=<member>, orig_to=<alias>`, each with its own status, as Postfix logs them; a
/// recipient cleanup rewrote has `orig_to=<the address it was given as>`, which its
/// alias members keep too (Postfix's original recipient).
pub(crate) fn log_outcome(
    id: QueueId,
    to: &str,
    orig_to: Option<&str>,
    t: &Timed,
    started: Instant,
) {
    let o = &t.outcome;
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
    let timing = format!("delay={delay:.2}, delays={a:.2}/{b:.2}/0/{d:.2}");
    telemetry::delivery_delays(a, b, d);
    let (relay, agent) = (o.relay.as_str(), t.agent);
    if o.expanded.is_empty() {
        let line = Line {
            to,
            orig_to,
            kind: &o.kind,
            dsn: &o.dsn,
            text: &o.text,
        };
        line.log(id, agent, relay, &timing);
    }
    for member in &o.expanded {
        let line = Line {
            to: &member.to,
            orig_to: Some(orig_to.unwrap_or(to)),
            kind: &member.kind,
            dsn: &member.dsn,
            text: &member.text,
        };
        line.log(id, agent, relay, &timing);
    }
}

/// What differs between the lines of one outcome.
struct Line<'a> {
    to: &'a str,
    orig_to: Option<&'a str>,
    kind: &'a OutcomeKind,
    dsn: &'a str,
    text: &'a str,
}

impl Line<'_> {
    fn log(&self, id: QueueId, agent: Agent, relay: &str, timing: &str) {
        let status = match self.kind {
            OutcomeKind::Sent => "sent",
            OutcomeKind::Deferred => "deferred",
            OutcomeKind::Bounced => "bounced",
        };
        if agent == Agent::Smtp {
            telemetry::smtp_processed(status);
        }
        let (to, dsn) = (self.to, self.dsn);
        let orig_to = self
            .orig_to
            .map(|o| format!(", orig_to=<{o}>"))
            .unwrap_or_default();
        let line = format!(
            "{id}: to=<{to}>{orig_to}, relay={relay}, {timing}, dsn={dsn}, status={status} ({})",
            self.text
        );
        // Postfix logs delivery lines under the agent's name; tracing targets must be constant.
        macro_rules! line {
            ($target:literal) => {
                info!(target: $target, queue_id = %id, to = to, relay = %relay, dsn = %dsn, status = status, "{line}")
            };
        }
        match agent {
            Agent::Local => line!("local"),
            Agent::Virtual => line!("virtual"),
            Agent::Smtp => line!("smtp"),
            Agent::Lmtp => line!("lmtp"),
            Agent::Discard => line!("discard"),
            Agent::Error => line!("error"),
            Agent::Retry => line!("retry"),
            Agent::Qmgr => line!("qmgr"),
        }
    }
}
