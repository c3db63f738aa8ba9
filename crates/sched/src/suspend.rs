//! Suspended destinations, as the queue manager applies them (the table and its file are
//! `queue::suspend`'s).
//!
//! A recipient a suspension holds back is taken out of its message's work before dispatch
//! ([`hold_back`], pure): no connection is opened, nothing is recorded for it, so its retry
//! count, retry time and state stay what they were, and it cannot expire while suspended —
//! `plan` does not bounce a recipient held back in the same pass for its age (an operator's
//! pause is not the destination's failure; Postfix's `postsuper -h` hold works the same way).
//! When the suspension ends (resumed, or a `--for` that ran out) every message held back is
//! due at once; if a message is then past `maximal_queue_lifetime` and its first real
//! attempt defers, it bounces as usual. A message with nothing left to do is "parked": the
//! manager remembers its ID and forgets it until then.
//!
//! After a restart nothing is parked: every message is due at its stored retry time, and
//! is held back again then, from the table read back from the file.

use crate::dispatch::Item;
use crate::route::Transport;
use envelope::split_address;
use queue::{Entry, Suspensions};
use std::collections::HashSet;

/// The table in force and the messages parked by it.
#[derive(Debug, Default)]
pub(crate) struct Suspended {
    pub table: Suspensions,
    pub parked: HashSet<envelope::QueueId>,
}

/// The destination name a next-hop suspension is compared with: the scheduler's key for
/// network routes (`example.net`, `[10.0.0.1]:2525`); local deliveries have none.
pub(crate) fn nexthop_name(item: &Item) -> Option<&str> {
    match item.destination.transport {
        Transport::Smtp | Transport::Filter | Transport::Lmtp | Transport::Named(_) => {
            Some(&item.destination.name)
        }
        Transport::Local | Transport::Virtual => None,
    }
}

/// What [`hold_back`] took out.
#[derive(Debug, Default)]
pub(crate) struct HeldBack {
    pub recipients: Vec<usize>,
    /// The reason of the first suspension that held one back (for the log line).
    pub reason: Option<String>,
}

/// Takes the recipients a suspension holds back out of `items` (dropping items left empty).
pub(crate) fn hold_back(
    items: &mut Vec<Item>,
    entry: &Entry,
    table: &Suspensions,
    now: u64,
) -> HeldBack {
    let mut held = HeldBack::default();
    if table.list.is_empty() {
        return held;
    }
    let recipients = &entry.meta.envelope.recipients;
    for item in items.iter_mut() {
        let nexthop = nexthop_name(item).map(str::to_string);
        item.recipients.retain(|&i| {
            let domain = recipients.get(i).map(|r| split_address(&r.address).1);
            let by = domain.and_then(|d| table.matching(&d, nexthop.as_deref(), now));
            let Some(s) = by else {
                return true;
            };
            held.recipients.push(i);
            held.reason.get_or_insert_with(|| s.text());
            false
        });
    }
    items.retain(|item| !item.recipients.is_empty());
    held
}

/// The operator's levers, acting on the manager's [`Context`]: each change is written to
/// the file first, so what the daemon applies is what a restart reads back. Writers take
/// turns on `suspend_writes` and hold the table's lock only to install the table they
/// wrote: the file's fsyncs (or a CLI holding the queue directory's lock) never stall the
/// dispatch loop, which takes the table's lock for every message it starts.
pub(crate) mod levers {
    use super::*;
    use crate::clock::unix_now;
    use crate::context::Context;
    use crate::sync::lock;
    use queue::Suspension;
    use tracing::{info, warn};

    /// Reads the file at start or on SIGHUP; anything no longer suspended is due again.
    pub fn reload(cx: &Context) {
        let layout = cx.shared.settings().layout.clone();
        let _writing = lock(&cx.suspend_writes);
        match Suspensions::load(&layout) {
            Ok(table) => {
                lock(&cx.suspended).table = table;
                release(cx);
            }
            Err(e) => {
                warn!(target: "qmgr", "cannot read the suspended destinations, keeping the ones in force: {e}")
            }
        }
    }

    /// Suspends `destination` (normalized by the caller) for `seconds`, or until resumed.
    pub fn suspend(
        cx: &Context,
        destination: &str,
        seconds: Option<u64>,
        reason: &str,
    ) -> Result<Suspension, String> {
        let now = unix_now();
        let s = Suspension {
            destination: destination.to_string(),
            reason: reason.to_string(),
            since: now,
            until: seconds.map(|n| now.saturating_add(n)),
        };
        let layout = cx.shared.settings().layout.clone();
        let _writing = lock(&cx.suspend_writes);
        // The fleet hears first: a table it reads back before it sent this change must
        // not undo it (it adopts nothing while a change of ours is unsent).
        let fleet = cx.shared.fleet();
        let before = (lock(&cx.suspended).table.list.iter())
            .find(|x| x.destination == destination)
            .cloned();
        fleet.inspect(|f| f.suspended(&s));
        let updated = Suspensions::update(&layout, |t| {
            t.prune(now);
            t.insert(s.clone());
            Ok(())
        });
        let (table, ()) = updated.inspect_err(|_| match (fleet, &before) {
            (Some(f), Some(old)) => f.suspended(old),
            (Some(f), None) => f.resumed(destination),
            (None, _) => {}
        })?;
        lock(&cx.suspended).table = table;
        info!(target: "qmgr", "deliveries to {destination} suspended by the operator: {}", s.text());
        Ok(s)
    }

    /// Ends the suspension of `destination`; its mail is due at once. False if there was
    /// none in force.
    pub fn resume(cx: &Context, destination: &str) -> Result<bool, String> {
        let now = unix_now();
        let layout = cx.shared.settings().layout.clone();
        let writing = lock(&cx.suspend_writes);
        if let Some(fleet) = cx.shared.fleet() {
            fleet.resumed(destination); // first, as in `suspend`
        }
        let (table, was) = Suspensions::update(&layout, |t| {
            let was = t.remove(destination, now);
            t.prune(now);
            Ok(was)
        })?;
        lock(&cx.suspended).table = table;
        drop(writing);
        if was {
            info!(target: "qmgr", "deliveries to {destination} resumed by the operator");
        }
        release(cx);
        Ok(was)
    }

    /// The fleet's table replaces this node's (file first); what it no longer holds is due.
    pub fn adopt(cx: &Context, list: Vec<Suspension>) {
        let now = unix_now();
        let mut wanted = Suspensions::default();
        list.into_iter().for_each(|s| wanted.insert(s));
        wanted.prune(now);
        let mut current = lock(&cx.suspended).table.clone();
        current.prune(now);
        if same_table(&current, &wanted) {
            return;
        }
        let layout = cx.shared.settings().layout.clone();
        let _writing = lock(&cx.suspend_writes);
        let replaced = Suspensions::update(&layout, |t| {
            *t = wanted.clone();
            Ok(())
        });
        match replaced {
            Ok((table, ())) => lock(&cx.suspended).table = table,
            Err(e) => {
                warn!(target: "qmgr", "cannot write the fleet's suspended destinations to the file: {e}; in force until the next start");
                lock(&cx.suspended).table = wanted;
            }
        }
        for s in &current.list {
            if !lock(&cx.suspended)
                .table
                .list
                .iter()
                .any(|w| w.destination == s.destination)
            {
                info!(target: "qmgr", "deliveries to {} resumed through the fleet", s.destination);
            }
        }
        for s in lock(&cx.suspended).table.list.clone() {
            if !current.list.iter().any(|c| c.destination == s.destination) {
                info!(target: "qmgr", "deliveries to {} suspended through the fleet: {}", s.destination, s.text());
            }
        }
        release(cx);
    }

    /// The same suspensions, in whatever order.
    fn same_table(a: &Suspensions, b: &Suspensions) -> bool {
        a.list.len() == b.list.len() && a.list.iter().all(|s| b.list.contains(s))
    }

    /// Timed suspensions that ran out end here (called by the loop each pass).
    pub fn end_expired(cx: &Context, now: u64) {
        let mut state = lock(&cx.suspended);
        let ended: Vec<String> = (state.table.list.iter())
            .filter(|s| !s.in_force(now))
            .map(|s| s.destination.clone())
            .collect();
        if ended.is_empty() {
            return;
        }
        state.table.prune(now);
        drop(state);
        for d in ended {
            info!(target: "qmgr", "deliveries to {d} resumed: the suspension ended");
        }
        release(cx);
    }

    /// Every parked message is due now; those still suspended are parked again.
    fn release(cx: &Context) {
        let ids: Vec<_> = lock(&cx.suspended).parked.drain().collect();
        cx.due.force(&ids);
    }

    /// The suspensions in force.
    pub fn list(cx: &Context) -> Vec<Suspension> {
        let now = unix_now();
        let state = lock(&cx.suspended);
        state
            .table
            .list
            .iter()
            .filter(|s| s.in_force(now))
            .cloned()
            .collect()
    }

    /// Why recipient `i` of `entry` waits, if a suspension holds it back (mailq's reason).
    pub fn reason(cx: &Context, entry: &Entry, i: usize) -> Option<String> {
        let state = lock(&cx.suspended);
        if state.table.list.is_empty() {
            return None;
        }
        let r = entry.meta.envelope.recipients.get(i)?;
        let route = cx
            .shared
            .router()
            .route_message(&r.address, &entry.meta.envelope);
        let destination = route.destination(&r.address);
        let nexthop = destination
            .as_ref()
            .filter(|d| !matches!(d.transport, Transport::Local | Transport::Virtual))
            .map(|d| d.name.as_str());
        let domain = split_address(&r.address).1;
        (state.table.matching(&domain, nexthop, unix_now())).map(|s| s.text())
    }
}
