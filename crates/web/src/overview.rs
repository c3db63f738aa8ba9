//! The queue page's read-only summaries: the doctor history ring (`GET /api/v1/history`),
//! the qshape matrix (`GET /api/v1/qshape`) and the top deferral reasons with the
//! destinations they hold back (`GET /api/v1/reasons`).
//!
//! None computes anything of its own that a tool already computes: the history is
//! [`admin::history`]'s ring as `doctor` reads it, the matrix is the admin engine's qshape
//! (the very request `qshape` sends the daemon). Only the reason × destination table is
//! new here (`doctor`'s statistics count reasons and destinations apart); its counters stop
//! taking new keys at [`admin::stats::MAX_KEYS`] like doctor's, so a queue of a million
//! distinct reasons cannot blow up the daemon's memory.

use crate::Daemon;
use admin::engine::{Backend, Context};
use admin::protocol::{Event, Request};
use admin::qshape::{Options, Shape};
use admin::row::State;
use envelope::RecipientState;
use serde::Serialize;
use std::collections::HashMap;

/// Rows of the qshape matrix sent at most by default (after `TOTAL`); `limit` changes it.
pub const QSHAPE_ROWS: usize = 50;
const MAX_ROWS: usize = 1000;
/// Reasons sent at most by default, and destinations per reason.
pub const REASONS: usize = 10;
const DESTINATIONS_PER_REASON: usize = 5;

/// `GET /api/v1/history`: every sample of the ring, oldest first, each an object, and the
/// counts now (doctor's statistics over the live store, so the page's figures are current
/// between samples).
pub fn history(daemon: &dyn Daemon, now: u64) -> Result<serde_json::Value, String> {
    let path = queue::Layout::new(daemon.queue_directory()).history();
    let samples = admin::history::read(&path)
        .map_err(|e| format!("cannot read the history {}: {e}", path.display()))?;
    let named = |pair: &Option<(String, u64)>| {
        pair.as_ref()
            .map(|(name, count)| serde_json::json!({ "name": name, "count": count }))
    };
    let rows: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "t": s.t, "incoming": s.incoming, "active": s.active,
                "deferred": s.deferred, "hold": s.hold, "maildrop": s.maildrop,
                "refused": s.refused, "delivered": s.delivered, "bounced": s.bounced,
                "top_destination": named(&s.top_destination),
                "top_reason": named(&s.top_reason),
            })
        })
        .collect();
    let stats = stats(daemon, now)?;
    let mut current = serde_json::json!({ "t": now });
    for state in State::ALL {
        current[state.as_str()] = stats.count(state).into();
    }
    Ok(serde_json::json!({ "now": current, "samples": rows }))
}

/// The admin engine's statistics (what `doctor` and the history sampler count).
fn stats(daemon: &dyn Daemon, now: u64) -> Result<admin::stats::Stats, String> {
    let mut stats = None;
    run(daemon, now, &Request::Stats, &mut |event| {
        if let Event::Stats(s) = event {
            stats = Some(s);
        }
    })
    .map_err(|e| format!("cannot count the queue: {e}"))?;
    stats.ok_or_else(|| "cannot count the queue: no statistics were produced".into())
}

/// Runs an admin-engine request over the live store, as the control socket would.
fn run(
    daemon: &dyn Daemon,
    now: u64,
    request: &Request,
    emit: &mut dyn FnMut(Event),
) -> std::io::Result<()> {
    let ctx = Context {
        backend: Backend::Store(daemon.store()),
        scheduler: &crate::Scheduler(daemon),
        maildrop: queue::Layout::new(daemon.queue_directory()).maildrop(),
        now,
    };
    ctx.run(request, None, &mut |event| {
        emit(event);
        Ok(())
    })
}

/// A parsed `GET /api/v1/qshape` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QshapeQuery {
    pub options: Options,
    pub queues: Vec<State>,
    pub limit: usize,
}

/// Parses `senders`, `queue` (default `deferred`), `tick` (minutes), `buckets`, `limit`
/// strictly: an unknown parameter or a value out of range is an error.
pub fn parse_qshape(query: &str) -> Result<QshapeQuery, String> {
    let mut q = QshapeQuery {
        options: Options::default(),
        queues: Vec::new(),
        limit: QSHAPE_ROWS,
    };
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "senders" => {
                q.options.senders = match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err("senders must be true or false".into()),
                }
            }
            "queue" => {
                for name in value.split(',') {
                    q.queues.push(State::parse(name).ok_or_else(|| {
                        format!(
                            "unknown queue {name:?} (maildrop, incoming, active, deferred, hold)"
                        )
                    })?);
                }
            }
            "tick" => q.options.tick_minutes = number(&value, 1, 1440, "tick")? as u64,
            "buckets" => q.options.buckets = number(&value, 1, 30, "buckets")?,
            "limit" => q.limit = number(&value, 1, MAX_ROWS, "limit")?,
            other => return Err(format!("unknown parameter {other:?}")),
        }
    }
    if q.queues.is_empty() {
        q.queues.push(State::Deferred);
    }
    Ok(q)
}

fn number(text: &str, low: usize, high: usize, name: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (low..=high).contains(&n) => Ok(n),
        _ => Err(format!("{name} must be a number from {low} to {high}")),
    }
}

#[derive(Debug, Serialize)]
pub struct QshapeAnswer {
    #[serde(flatten)]
    pub shape: Shape,
    /// Domain rows in the whole matrix (`rows` holds `TOTAL` and the first `limit`).
    pub domains: usize,
}

/// The admin engine's qshape over the live store, cut to `TOTAL` and `limit` domains.
pub fn qshape(daemon: &dyn Daemon, q: &QshapeQuery, now: u64) -> Result<QshapeAnswer, String> {
    let request = Request::Qshape {
        options: q.options.clone(),
        queues: q.queues.clone(),
    };
    let mut shape = None;
    let mut refused = None;
    run(daemon, now, &request, &mut |event| match event {
        Event::Shape(s) => shape = Some(s),
        Event::Error(why) => refused = Some(why),
        _ => {}
    })
    .map_err(|e| format!("cannot compute the queue shape: {e}"))?;
    let mut shape = match (shape, refused) {
        (Some(shape), _) => shape,
        (None, why) => return Err(why.unwrap_or_else(|| "no queue shape was produced".into())),
    };
    let domains = shape.rows.len().saturating_sub(1);
    shape.rows.truncate(q.limit + 1);
    Ok(QshapeAnswer { shape, domains })
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Reason {
    pub reason: String,
    /// Deferred recipients whose last attempt failed with this reason.
    pub recipients: u64,
    /// The recipient domains they go to, most first (at most five).
    pub destinations: Vec<(String, u64)>,
}

/// `GET /api/v1/reasons`: the commonest deferral reasons of deferred recipients, most
/// first, each with the domains it holds back.
pub fn reasons(daemon: &dyn Daemon) -> Vec<Reason> {
    let mut table: HashMap<String, (u64, HashMap<String, u64>)> = HashMap::new();
    daemon.store().for_each(|e| {
        if State::of(e.meta.queue, daemon.is_active(e.id)) != State::Deferred {
            return;
        }
        for r in &e.meta.envelope.recipients {
            let RecipientState::Deferred { reason } = &r.state else {
                continue;
            };
            if reason.is_empty() || (!table.contains_key(reason) && table.len() >= MAX_KEYS) {
                continue;
            }
            let (count, domains) = table.entry(reason.clone()).or_default();
            *count += 1;
            let domain = envelope::split_address(&r.address).1.to_ascii_lowercase();
            if let Some(n) = domains.get_mut(&domain) {
                *n += 1;
            } else if domains.len() < MAX_KEYS {
                domains.insert(domain, 1);
            }
        }
    });
    let mut all: Vec<Reason> = table
        .into_iter()
        .map(|(reason, (recipients, domains))| Reason {
            reason,
            recipients,
            destinations: top(domains.into_iter().collect(), DESTINATIONS_PER_REASON),
        })
        .collect();
    all.sort_by(|a, b| {
        b.recipients
            .cmp(&a.recipients)
            .then(a.reason.cmp(&b.reason))
    });
    all.truncate(REASONS);
    all
}

const MAX_KEYS: usize = admin::stats::MAX_KEYS;

fn top(mut counts: Vec<(String, u64)>, n: usize) -> Vec<(String, u64)> {
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    counts.truncate(n);
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qshape_parameters_parse_strictly() {
        let q = parse_qshape("senders=true&queue=deferred,hold&tick=10&buckets=8&limit=3").unwrap();
        assert!(q.options.senders);
        assert_eq!(q.queues, vec![State::Deferred, State::Hold]);
        assert_eq!(
            (q.options.tick_minutes, q.options.buckets, q.limit),
            (10, 8, 3)
        );
        assert_eq!(parse_qshape("").unwrap().queues, vec![State::Deferred]);
        for bad in [
            "senders=1",
            "queue=x",
            "tick=0",
            "buckets=31",
            "limit=0",
            "frob=1",
        ] {
            assert!(parse_qshape(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn top_is_most_first_then_by_name() {
        let counts = vec![("b".into(), 2), ("a".into(), 2), ("c".into(), 5)];
        let names: Vec<String> = top(counts, 2).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["c", "a"]);
    }
}
