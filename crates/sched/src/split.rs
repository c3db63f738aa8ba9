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

/// Routes each open recipient of `entry`.
pub(crate) fn split(entry: &Entry, router: &Router, now: Instant) -> Split {
    let env = &entry.meta.envelope;
    let mut out = Split::default();
    for (i, r) in env.recipients.iter().enumerate() {
        if !r.state.is_open() {
            continue;
        }
        let route = router.route(&r.address, &env.origin);
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
            Route::Local | Route::Smtp { .. } => {
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
