//! The changes: hold, release, delete, requeue (postsuper's `-h`, `-H`, `-d`, `-r`) and
//! flush (`postqueue -f` / `-i ID`), on one message or on every message a selector picks.
//!
//! The four postsuper operations run [`admin::engine`] against the daemon's store, exactly
//! as `postsuper` through the control socket does (same defaults per queue, same batches of
//! one fdatasync, same `postsuper: Placed on hold: N messages` log line); flush uses the
//! queue manager's levers, as `postqueue` does. A selector with no criterion must say
//! `"all": true`, as postsuper needs `ALL`: an empty body never means "everything".

use crate::Daemon;
use admin::engine::{Backend, Context};
use admin::protocol::{Event, Request};
use admin::row::State;
use admin::superop::{self, Action};
use admin::Selector;
use envelope::QueueId;
use serde::{Deserialize, Serialize};
use tracing::info;

/// What a change applies to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(default)]
    pub ids: Vec<String>,
    #[serde(default)]
    pub all: bool,
    #[serde(default)]
    pub queue: Vec<String>,
    #[serde(default, deserialize_with = "present")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub to: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub domain: Option<String>,
    /// `3600`, `90m`, `2h`, `7d`.
    #[serde(default, deserialize_with = "present")]
    pub older_than: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub reason: Option<String>,
}

impl Target {
    /// One named message.
    pub fn id(id: QueueId) -> Target {
        Target {
            ids: vec![id.to_string()],
            ..Target::default()
        }
    }

    fn selector(&self) -> Result<Selector, String> {
        let mut queues = Vec::new();
        for name in &self.queue {
            queues.push(State::parse(name).ok_or_else(|| format!("unknown queue {name:?}"))?);
        }
        let older_than = match &self.older_than {
            Some(t) => Some(admin::duration::parse_seconds(t)?),
            None => None,
        };
        Ok(Selector {
            queues,
            from: self.from.clone(),
            to: self.to.clone(),
            domain: self.domain.clone(),
            older_than,
            reason: self.reason.as_deref().map(crate::listing::reason_pattern),
        })
    }
}

/// A criterion given is a string; `null` is refused rather than read as "not given", so
/// `{"reason": null}` cannot turn into a selector that names nothing.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Hold,
    Release,
    Delete,
    Requeue,
    Flush,
}

impl Verb {
    pub fn parse(word: &str) -> Option<Verb> {
        Some(match word {
            "hold" => Verb::Hold,
            "release" => Verb::Release,
            "delete" => Verb::Delete,
            "requeue" => Verb::Requeue,
            "flush" => Verb::Flush,
            _ => return None,
        })
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Messages changed (or made due, for a flush).
    pub count: u64,
    pub warnings: Vec<String>,
}

/// Carries out `verb` on `target`; an error is a refused request (bad selector, no target).
pub fn run(daemon: &dyn Daemon, verb: Verb, target: &Target, now: u64) -> Result<Outcome, String> {
    let selector = target.selector()?;
    if target.ids.is_empty()
        && !target.all
        && selector.is_queue_only()
        && selector.queues.is_empty()
    {
        return Err("name the messages: ids, a selector, or \"all\": true".into());
    }
    let action = match verb {
        Verb::Flush => return flush(daemon, target, &selector, now),
        Verb::Hold => Action::Hold,
        Verb::Release => Action::Release,
        Verb::Delete => Action::Delete,
        Verb::Requeue => Action::Requeue,
    };
    postsuper(daemon, action, target, selector, now)
}

fn postsuper(
    daemon: &dyn Daemon,
    action: Action,
    target: &Target,
    selector: Selector,
    now: u64,
) -> Result<Outcome, String> {
    let request = Request::Super(superop::Request {
        action,
        all: target.all,
        ids: target.ids.clone(),
        ids_follow: false,
        selector,
        dry_run: false,
    });
    let ctx = Context {
        backend: Backend::Store(daemon.store()),
        scheduler: &crate::Scheduler(daemon),
        maildrop: queue::Layout::new(daemon.queue_directory()).maildrop(),
        now,
    };
    let mut outcome = Outcome::default();
    let mut refused = None;
    let result = ctx.run(&request, None, &mut |event| {
        match event {
            Event::Summary(s) => {
                outcome.count = s.count;
                if let Some(line) = s.line() {
                    info!(target: "postsuper", "{line} (HTTP API)");
                }
            }
            Event::Warning(w) => outcome.warnings.push(w),
            Event::Error(why) => refused = Some(why),
            _ => {}
        }
        Ok(())
    });
    result.map_err(|e| format!("the queue operation failed: {e}"))?;
    match refused {
        Some(why) => Err(why),
        None => Ok(outcome),
    }
}

/// Flush: everything deferred (`all`), the named messages, or the deferred ones selected.
fn flush(
    daemon: &dyn Daemon,
    target: &Target,
    selector: &Selector,
    now: u64,
) -> Result<Outcome, String> {
    let mut outcome = Outcome::default();
    if target.all && selector.is_queue_only() && selector.queues.is_empty() {
        outcome.count = daemon.flush() as u64;
        info!(target: "qmgr", "flush requested (HTTP API): {} deferred messages due now", outcome.count);
        return Ok(outcome);
    }
    if !target.ids.is_empty() {
        for text in &target.ids {
            match QueueId::parse(text) {
                Ok(id) => outcome.count += u64::from(daemon.flush_id(id)),
                Err(_) => outcome
                    .warnings
                    .push(format!("invalid mail queue id: {text}")),
            }
        }
        return Ok(outcome);
    }
    let m = selector.compile(&[State::Deferred, State::Incoming], now)?;
    let mut due = Vec::new();
    daemon.store().for_each(|e| {
        let state = State::of(e.meta.queue, daemon.is_active(e.id));
        let env = &e.meta.envelope;
        if m.matches(
            state,
            env.arrival_time,
            &env.sender,
            crate::listing::open(e),
        ) {
            due.push(e.id);
        }
    });
    outcome.count = due
        .into_iter()
        .map(|id| u64::from(daemon.flush_id(id)))
        .sum();
    Ok(outcome)
}
