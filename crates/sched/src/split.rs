//! A due message split by route: items for the destinations that need a delivery, and the
//! outcomes decided by routing alone (`discard:`, `error:`, `retry:`, `hold:`). Pure: the
//! router is a table, `now` is an input.

use crate::dispatch::Item;
use crate::route::{Route, Router};
use crate::timed::{Agent, Timed};
use envelope::Outcome;
use queue::Entry;
use std::time::Instant;

/// One message's work.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// One per destination, in the order the recipients first name them.
    pub items: Vec<Item>,
    /// Outcomes routing decided without a delivery.
    pub outcomes: Vec<Timed>,
    /// Why a `hold:` route holds the message.
    pub hold: Option<String>,
}

/// Routes each open recipient of `entry`; `is_alias` says whether a local address is an
/// alias (aliases stay with the local agent even when `mailbox_transport` is set).
pub(crate) fn split(
    entry: &Entry,
    router: &Router,
    is_alias: &dyn Fn(&str) -> bool,
    now: Instant,
) -> Split {
    let env = &entry.meta.envelope;
    let mut out = Split::default();
    for (i, r) in env.recipients.iter().enumerate() {
        if !r.state.is_open() {
            continue;
        }
        let route = router.route_message(&r.address, env);
        let route = router.mailbox_handoff(route, &r.address, is_alias);
        let decided = match &route {
            Route::Discard(text) => (
                Agent::Discard,
                Outcome::sent(i, "none", format!("discarded: {text}")),
            ),
            Route::Error { dsn, text } => {
                (Agent::Error, Outcome::bounced(i, dsn, "none", text.clone()))
            }
            Route::Retry { dsn, text } => (
                Agent::Retry,
                Outcome::deferred(i, dsn, "none", text.clone()),
            ),
            Route::Hold(text) => {
                out.hold = Some(text.clone());
                continue;
            }
            Route::Local | Route::Virtual | Route::Smtp { .. } | Route::Lmtp { .. } => {
                add(&mut out.items, entry, i, &r.address, route, now);
                continue;
            }
        };
        let (agent, outcome) = decided;
        out.outcomes.push(Timed::at(outcome, now, now, agent));
    }
    out
}

/// Adds recipient `i` to its destination's item.
fn add(items: &mut Vec<Item>, entry: &Entry, i: usize, address: &str, route: Route, now: Instant) {
    let Some(destination) = route.destination(address) else {
        return;
    };
    match items.iter_mut().find(|x| x.destination == destination) {
        Some(item) => item.recipients.push(i),
        None => items.push(Item {
            id: entry.id,
            destination,
            route,
            recipients: vec![i],
            queued: now,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envelope::{Envelope, OutcomeKind, QueueId, RecipientState};
    use queue::{Location, MessageMeta, QueueName};

    #[test]
    fn recipients_group_by_destination_and_routing_decides_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("transport");
        let lines = "spam.example discard:\nold.example error:5.1.1 moved\n\
                     slow.example retry:4.4.1 later\nq.example hold:\n";
        std::fs::write(&map, lines).unwrap();
        let mut cfg = config::Config::embedded_default();
        cfg.transport_maps = vec![map.display().to_string()];
        cfg.mydestination = vec!["localhost".into()];
        let router = Router::new(&crate::route::Routing::from_config(&cfg)).unwrap();
        let rcpts = [
            "alice@localhost",
            "bob@localhost",
            "ALICE@localhost",
            "x@far.example",
            "y@far.example",
            "z@spam.example",
            "w@old.example",
            "v@slow.example",
            "u@q.example",
            "done@far.example",
        ];
        let mut envelope = Envelope::new("s@a.example", rcpts.map(String::from).to_vec(), 0);
        envelope.recipients[9].state = RecipientState::Sent;
        let meta = MessageMeta {
            envelope,
            queue: QueueName::Incoming,
            next_attempt: 0,
            attempts: 0,
            delay_warned: false,
            follow_up: None,
        };
        let location = Location {
            segment: 0,
            record_offset: 0,
            record_len: 0,
        };
        let entry = Entry {
            id: QueueId::generate(),
            meta,
            size: 1,
            location,
        };
        let work = split(&entry, &router, &|_| false, Instant::now());
        let items: Vec<(String, Vec<usize>)> = work
            .items
            .iter()
            .map(|i| (i.destination.to_string(), i.recipients.clone()))
            .collect();
        let want = [
            ("local:alice", vec![0, 2]),
            ("local:bob", vec![1]),
            ("smtp:far.example", vec![3, 4]),
        ];
        assert_eq!(items, want.map(|(d, r)| (d.to_string(), r)).to_vec());
        let decided: Vec<(Agent, usize, OutcomeKind, &str)> = work
            .outcomes
            .iter()
            .map(|t| {
                (
                    t.agent,
                    t.outcome.recipient,
                    t.outcome.kind.clone(),
                    t.outcome.dsn.as_str(),
                )
            })
            .collect();
        assert_eq!(
            decided,
            vec![
                (Agent::Discard, 5, OutcomeKind::Sent, "2.0.0"),
                (Agent::Error, 6, OutcomeKind::Bounced, "5.1.1"),
                (Agent::Retry, 7, OutcomeKind::Deferred, "4.4.1"),
            ]
        );
        assert_eq!(work.hold.as_deref(), Some("held by transport_maps"));
    }
}
