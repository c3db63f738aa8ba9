//! The admission rule and the fairness between new and deferred mail, as pure tests of the
//! index: what `QueueManager::admit` takes in, in which order.

use super::{choose, room, Due, Lane};
use envelope::QueueId;

/// `n` fresh IDs in the index's order (IDs made in the same microsecond are ordered by
/// their random bits, not by creation).
fn ids(n: usize) -> Vec<QueueId> {
    let mut ids: Vec<QueueId> = (0..n).map(|_| QueueId::generate()).collect();
    ids.sort();
    ids
}

/// What the manager's loop does: pops while the active queue has room; returns the ids
/// taken, in order. `active` grows by one per message taken.
fn admit(due: &Due, active: &mut usize, limit: usize, now: u64) -> Vec<QueueId> {
    let mut taken = Vec::new();
    loop {
        if room(*active, limit) == 0 {
            due.full();
            return taken;
        }
        let Some((id, _)) = due.pop(now) else {
            return taken;
        };
        *active += 1;
        taken.push(id);
    }
}

#[test]
fn room_is_the_limit_less_the_active_queue_and_never_negative() {
    assert_eq!(room(0, 20_000), 20_000);
    assert_eq!(room(19_999, 20_000), 1);
    assert_eq!(room(20_000, 20_000), 0);
    // After a SIGHUP lowered the limit below what is active: no room, no underflow.
    assert_eq!(room(500, 20), 0);
    // A limit of 0 cannot reach here (config refuses it), and still admits one at a time.
    assert_eq!(room(0, 0), 1);
}

#[test]
fn the_lane_whose_turn_it_is_goes_first_else_the_other() {
    use Lane::*;
    assert_eq!(choose(Incoming, true, true), Some(Incoming));
    assert_eq!(choose(Deferred, true, true), Some(Deferred));
    assert_eq!(choose(Incoming, false, true), Some(Deferred));
    assert_eq!(choose(Deferred, true, false), Some(Incoming));
    assert_eq!(choose(Incoming, false, false), None);
    assert_eq!(choose(Deferred, false, false), None);
}

#[test]
fn a_flush_of_300_with_limit_20_admits_20_and_the_rest_as_room_frees() {
    let backlog = ids(300);
    let due = Due::new(Vec::new());
    due.force(&backlog);
    let mut active = 0;
    let first = admit(&due, &mut active, 20, 1000);
    assert_eq!(first, backlog[..20]);
    assert_eq!(active, 20);
    assert_eq!(due.len(), 280, "the rest wait in the index");
    // Nothing more while full.
    assert!(admit(&due, &mut active, 20, 1000).is_empty());
    // Three messages leave the active queue: three more come in, in queue-ID order.
    active -= 3;
    assert_eq!(admit(&due, &mut active, 20, 1000), backlog[20..23]);
    // Draining to the end takes every message exactly once.
    let mut all = backlog[..23].to_vec();
    while all.len() < 300 {
        active = 0;
        all.extend(admit(&due, &mut active, 20, 1000));
    }
    assert_eq!(all, backlog);
    assert_eq!(due.pop(1000), None);
}

#[test]
fn new_mail_is_not_starved_behind_a_flushed_backlog() {
    let backlog = ids(200_000);
    let due = Due::new(Vec::new());
    due.force(&backlog);
    let mut active = 0;
    assert_eq!(admit(&due, &mut active, 20_000, 1000).len(), 20_000);
    // New mail arrives while the active queue is full of the backlog.
    let new = ids(3);
    for &id in &new {
        due.schedule(id, 0, Lane::Incoming);
    }
    // One message leaves: the first one in is new mail (the incoming lane's turn once
    // the active queue was full), not the 180,000 deferred ones queued before it.
    active -= 1;
    assert_eq!(admit(&due, &mut active, 20_000, 1000), [new[0]]);
    // Full again: new mail first again, then the lanes take turns until new mail runs out.
    active -= 5;
    let next = admit(&due, &mut active, 20_000, 1000);
    let expected = [
        new[1],
        backlog[20_000],
        new[2],
        backlog[20_001],
        backlog[20_002],
    ];
    assert_eq!(next, expected);
}

#[test]
fn lanes_alternate_when_both_have_mail_due_and_one_lane_alone_takes_every_turn() {
    let old = ids(4);
    let new = ids(4);
    let mut entries: Vec<_> = old.iter().map(|&id| (100, id, Lane::Deferred)).collect();
    entries.extend(new.iter().map(|&id| (0, id, Lane::Incoming)));
    let due = Due::new(entries);
    let mut active = 0;
    let order = admit(&due, &mut active, 100, 1000);
    let expected = [
        new[0], old[0], new[1], old[1], new[2], old[2], new[3], old[3],
    ];
    assert_eq!(order, expected);

    // Only deferred mail due: it takes every admission.
    let due = Due::new(old.iter().map(|&id| (100, id, Lane::Deferred)).collect());
    let mut active = 0;
    assert_eq!(admit(&due, &mut active, 100, 1000), old);
}

#[test]
fn mail_not_due_yet_is_not_admitted_whatever_the_room() {
    let later = ids(2);
    let due = Due::new(vec![
        (2000, later[0], Lane::Deferred),
        (2000, later[1], Lane::Incoming),
    ]);
    let mut active = 0;
    assert!(admit(&due, &mut active, 20, 1000).is_empty());
    assert_eq!(admit(&due, &mut active, 20, 2000).len(), 2);
}

#[test]
fn a_forced_entry_says_so_once() {
    let id = QueueId::generate();
    let due = Due::new(vec![(5000, id, Lane::Deferred)]);
    due.force(&[id]);
    assert_eq!(due.pop(1000), Some((id, true)));
    // The retry-time entry left behind is stale and not forced.
    assert_eq!(due.pop(5000), Some((id, false)));
}
