//! The dispatch state machine, driven by hand with a fake clock: windows, dead marks,
//! fairness, slots.

use super::*;
use crate::route::Transport;
use envelope::Envelope;
use envelope::Nexthop;
use queue::{Location, MessageMeta, QueueName};
use std::collections::BTreeMap;
use std::time::Duration;

const DEAD_TIME: Duration = Duration::from_secs(10);

fn limits(smtp: usize) -> Limits {
    Limits {
        local: 1,
        virtual_mailbox: 1,
        smtp,
        lmtp: 2,
        filter: 20,
        named: Vec::new(),
        default: 20,
        dead_time: DEAD_TIME,
    }
}

fn message(immediate: Vec<Timed>) -> Message {
    let env = Envelope::new("s@example.org", vec!["a@x".into(), "b@y".into()], 0);
    let meta = MessageMeta {
        envelope: env,
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
    Message {
        entry,
        outcomes: immediate,
        started: Instant::now(),
        hold: None,
        held_back: Vec::new(),
        recorded_early: false,
    }
}

fn item(id: QueueId, host: &str, recipient: usize, now: Instant) -> Item {
    let nexthop = Nexthop::parse(host).unwrap();
    let route = Route::Smtp {
        nexthop,
        filter: false,
        transport: None,
    };
    Item {
        id,
        destination: route.destination("").unwrap(),
        route,
        recipients: vec![recipient],
        queued: now,
    }
}

/// Pushes a message with one item per host (recipient 0, 1, ...); returns its id.
fn push(d: &mut Dispatch, hosts: &[&str], now: Instant) -> QueueId {
    let m = message(Vec::new());
    let id = m.entry.id;
    let items = hosts
        .iter()
        .enumerate()
        .map(|(i, h)| item(id, h, i, now))
        .collect();
    assert!(d.push(m, items, &limits(20)));
    id
}

fn split_starts(starts: Vec<Start>) -> (Vec<Item>, Vec<Message>) {
    let (mut items, mut done) = (Vec::new(), Vec::new());
    for s in starts {
        match s {
            Start::Deliver(i) => items.push(i),
            Start::Apply(m) => done.push(m),
        }
    }
    (items, done)
}

fn result(item: &Item, verdict: char, now: Instant) -> Delivery {
    let i = item.recipients[0];
    let (outcome, failure) = match verdict {
        's' => (Outcome::sent(i, "mx", "250 ok"), None),
        'd' => (Outcome::deferred(i, "4.2.0", "mx", "450 later"), None),
        _ => (
            Outcome::deferred(i, "4.4.1", "none", "refused"),
            Some("connection refused".to_string()),
        ),
    };
    Delivery {
        outcomes: vec![Timed::at(outcome, item.queued, now, Agent::Smtp)],
        failure,
        recorded: None,
    }
}

#[test]
fn the_window_starts_at_five_grows_by_one_per_success_and_stays_within_the_limit() {
    // (destination limit, verdicts of deliveries finished one by one, deliveries running)
    let table: &[(usize, &str, usize)] = &[
        (20, "", 5),
        (20, "s", 6),
        (20, "ss", 7),
        (20, "sss", 8),
        (20, "d", 5),
        (20, "ds", 6),
        (3, "", 3),
        (3, "ss", 3),
        (1, "", 1),
        (1, "s", 1),
    ];
    for &(limit, verdicts, running) in table {
        let now = Instant::now();
        let mut d = Dispatch::new(100);
        let lim = limits(limit);
        for _ in 0..30 {
            let m = message(Vec::new());
            let id = m.entry.id;
            d.push(m, vec![item(id, "far.example", 0, now)], &lim);
        }
        let (mut out, _) = split_starts(d.starts(now));
        for v in verdicts.chars() {
            let it = out.remove(0);
            d.finished(&it, result(&it, v, now), &lim, now);
            let (more, done) = split_starts(d.starts(now));
            assert_eq!(done.len(), 1, "the finished message is handed back");
            out.extend(more);
        }
        assert_eq!(out.len(), running, "limit {limit}, verdicts {verdicts:?}");
    }
}

#[test]
fn a_dead_destination_defers_its_waiting_and_new_items_until_the_mark_expires() {
    let now = Instant::now();
    let mut d = Dispatch::new(100);
    for _ in 0..10 {
        push(&mut d, &["dead.example"], now);
    }
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(running.len(), 5);
    d.finished(&running[0], result(&running[0], 'x', now), &limits(20), now);
    let (more, done) = split_starts(d.starts(now));
    assert!(
        more.is_empty(),
        "nothing new starts towards a dead destination"
    );
    assert_eq!(done.len(), 6, "the failed one and the 5 waiting ones");
    let deferred: Vec<&Timed> = done.iter().flat_map(|m| &m.outcomes).collect();
    let by_qmgr: Vec<&&Timed> = deferred.iter().filter(|t| t.agent == Agent::Qmgr).collect();
    assert_eq!(by_qmgr.len(), 5);
    for t in by_qmgr {
        assert_eq!(t.outcome.kind, OutcomeKind::Deferred);
        assert_eq!(t.outcome.dsn, "4.4.1");
        assert_eq!(
            t.outcome.text,
            "delivery temporarily suspended: connection refused"
        );
    }
    // Dead: the 4 still running come back and nothing starts.
    for it in &running[1..] {
        d.finished(it, result(it, 'd', now), &limits(20), now);
    }
    assert_eq!(split_starts(d.starts(now)).1.len(), 4);
    // (seconds after the failure, what a new item to the destination gets)
    for (after, starts) in [(1, false), (9, false), (10, true)] {
        let at = now + Duration::from_secs(after);
        push(&mut d, &["dead.example"], at);
        let (started, done) = split_starts(d.starts(at));
        assert_eq!(
            (started.len(), done.len()),
            if starts { (1, 0) } else { (0, 1) },
            "{after}s after"
        );
    }
}

#[test]
fn a_destination_back_from_the_dead_starts_at_the_initial_window_as_in_postfix() {
    // (lifted by a flush (else the mark runs out), deliveries still out when it is lifted,
    // deliveries that start then, and after one more success)
    for (flush, still_out, first, then) in [(true, 0, 5, 2), (false, 0, 5, 2), (true, 3, 0, 2)] {
        let now = Instant::now();
        let lim = limits(20);
        let mut d = Dispatch::new(100);
        for _ in 0..5 {
            push(&mut d, &["dead.example"], now);
        }
        let (mut running, _) = split_starts(d.starts(now));
        assert_eq!(running.len(), 5);
        let failed = running.remove(0);
        d.finished(&failed, result(&failed, 'x', now), &lim, now);
        while running.len() > still_out {
            let it = running.remove(0);
            d.finished(&it, result(&it, 'd', now), &lim, now);
        }
        let at = match flush {
            true => {
                d.forget_dead(|dest| dest.transport == Transport::Smtp);
                now
            }
            false => now + Duration::from_secs(10),
        };
        for _ in 0..20 {
            push(&mut d, &["dead.example"], at);
        }
        let (started, _) = split_starts(d.starts(at));
        assert_eq!(started.len(), first, "flush {flush}, {still_out} still out");
        let back = started.first().or(running.first()).unwrap().clone();
        d.finished(&back, result(&back, 's', at), &lim, at);
        let (more, _) = split_starts(d.starts(at));
        assert_eq!(
            more.len(),
            then,
            "flush {flush}, {still_out} still out, after a success"
        );
    }
}

#[test]
fn an_explicit_flush_forgets_dead_marks() {
    let now = Instant::now();
    let mut d = Dispatch::new(100);
    push(&mut d, &["dead.example"], now);
    let (running, _) = split_starts(d.starts(now));
    d.finished(&running[0], result(&running[0], 'x', now), &limits(20), now);
    d.forget_dead(|dest| dest.transport == Transport::Smtp);
    push(&mut d, &["dead.example"], now);
    let (started, _) = split_starts(d.starts(now));
    assert_eq!(started.len(), 1);
}

#[test]
fn destinations_take_turns_so_a_busy_one_cannot_starve_the_others() {
    // (global limit, items per destination in push order, first deliveries per destination)
    type Row<'a> = (usize, &'a [(&'a str, usize)], &'a [usize]);
    let table: &[Row] = &[
        (2, &[("a.example", 10), ("b.example", 1)], &[1, 1]),
        (4, &[("a.example", 10), ("b.example", 1)], &[3, 1]),
        (
            20,
            &[("a.example", 10), ("b.example", 10), ("c.example", 1)],
            &[5, 5, 1],
        ),
        (
            3,
            &[
                ("a.example", 1),
                ("b.example", 1),
                ("c.example", 1),
                ("d.example", 1),
            ],
            &[1, 1, 1, 0],
        ),
    ];
    for &(global, pushes, expected) in table {
        let now = Instant::now();
        let mut d = Dispatch::new(global);
        for &(host, n) in pushes {
            for _ in 0..n {
                push(&mut d, &[host], now);
            }
        }
        let (started, _) = split_starts(d.starts(now));
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for it in &started {
            *per.entry(it.destination.name.clone()).or_default() += 1;
        }
        let got: Vec<usize> = pushes
            .iter()
            .map(|(h, _)| per.get(*h).copied().unwrap_or(0))
            .collect();
        assert_eq!(got, expected, "global limit {global}, {pushes:?}");
    }
}

#[test]
fn a_slot_is_given_back_only_once_the_outcome_is_recorded() {
    let now = Instant::now();
    let mut d = Dispatch::new(1);
    let first = push(&mut d, &["a.example"], now);
    let second = push(&mut d, &["a.example"], now);
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(running.len(), 1);
    d.finished(&running[0], result(&running[0], 's', now), &limits(20), now);
    let (started, done) = split_starts(d.starts(now));
    assert!(started.is_empty(), "the slot is still held");
    assert_eq!(done[0].entry.id, first);
    assert!(d.is_inflight(first) && d.busy());
    d.recorded(first);
    assert!(!d.is_inflight(first));
    let (started, _) = split_starts(d.starts(now));
    assert_eq!(started[0].id, second);
}

#[test]
fn a_message_with_more_destinations_than_the_process_limit_is_delivered_to_all() {
    let now = Instant::now();
    let mut d = Dispatch::new(2);
    let hosts: Vec<String> = (0..21).map(|i| format!("d{i}.example")).collect();
    let hosts: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let id = push(&mut d, &hosts, now);
    let mut delivered = 0;
    let mut done = Vec::new();
    while done.is_empty() {
        let (running, applied) = split_starts(d.starts(now));
        done = applied;
        assert!(running.len() <= 2, "over default_process_limit");
        if running.is_empty() && done.is_empty() {
            panic!("stalled after {delivered} of 21 deliveries");
        }
        for item in &running {
            d.finished(item, result(item, 's', now), &limits(20), now);
            delivered += 1;
        }
    }
    assert_eq!(delivered, 21);
    assert_eq!(done[0].entry.id, id);
    assert_eq!(done[0].outcomes.len(), 21);
    d.recorded(id);
    assert!(!d.busy(), "every slot is back");
}

#[test]
fn a_message_is_handed_back_once_with_the_outcomes_of_all_its_items() {
    let now = Instant::now();
    let mut d = Dispatch::new(10);
    let routed = Timed::at(
        Outcome::sent(1, "none", "discarded"),
        now,
        now,
        Agent::Discard,
    );
    let m = message(vec![routed]);
    let id = m.entry.id;
    let items = vec![item(id, "a.example", 0, now), item(id, "b.example", 1, now)];
    assert!(d.push(m, items, &limits(20)));
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(running.len(), 2);
    d.finished(&running[0], result(&running[0], 's', now), &limits(20), now);
    assert!(split_starts(d.starts(now)).1.is_empty());
    d.finished(&running[1], result(&running[1], 'd', now), &limits(20), now);
    let (_, done) = split_starts(d.starts(now));
    assert_eq!(done.len(), 1);
    let agents: Vec<Agent> = done[0].outcomes.iter().map(|t| t.agent).collect();
    assert_eq!(agents, vec![Agent::Discard, Agent::Smtp, Agent::Smtp]);
}

#[test]
fn a_message_without_deliveries_is_handed_back_at_once_and_a_second_push_is_refused() {
    let now = Instant::now();
    let mut d = Dispatch::new(10);
    let m = message(Vec::new());
    let id = m.entry.id;
    assert!(d.push(m.clone(), Vec::new(), &limits(20)));
    assert!(!d.push(m, Vec::new(), &limits(20)), "already in delivery");
    let (_, done) = split_starts(d.starts(now));
    assert_eq!(done.len(), 1);
    assert!(d.is_inflight(id), "finishing until recorded");
}

#[test]
fn a_stop_drops_waiting_items_and_hands_back_what_is_not_in_delivery() {
    let now = Instant::now();
    let mut d = Dispatch::new(1);
    let running_id = push(&mut d, &["a.example"], now);
    let waiting_id = push(&mut d, &["a.example"], now);
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(running[0].id, running_id);
    let handed: Vec<QueueId> = d.stop().iter().map(|m| m.entry.id).collect();
    assert_eq!(handed, vec![waiting_id]);
    assert!(d.stopping());
    push(&mut d, &["b.example"], now);
    d.finished(&running[0], result(&running[0], 's', now), &limits(20), now);
    let (started, done) = split_starts(d.starts(now));
    assert!(started.is_empty(), "nothing starts after a stop");
    assert_eq!(done[0].entry.id, running_id);
}

#[test]
fn lmtp_deliveries_to_one_server_stay_within_lmtp_destination_concurrency_limit() {
    let now = Instant::now();
    let mut d = Dispatch::new(100);
    let lim = limits(20);
    let route = Route::Lmtp {
        nexthop: agents::LmtpNexthop::parse("unix:/run/dovecot/lmtp").unwrap(),
    };
    for user in 0..10 {
        let m = message(Vec::new());
        let item = Item {
            id: m.entry.id,
            destination: route.destination(&format!("u{user}@localhost")).unwrap(),
            route: route.clone(),
            recipients: vec![0],
            queued: now,
        };
        d.push(m, vec![item], &lim);
    }
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(
        running.len(),
        lim.lmtp,
        "every user shares the one LMTP server's limit"
    );
}

#[test]
fn a_finished_delivery_among_ten_thousand_destinations_costs_one_turn_not_a_scan() {
    // 10,000 destinations with mail waiting, the global limit of 100 taken: each delivery
    // that comes back starts the next destination in turn, looking at one or two of them
    // (the scan over every destination known was the cost per delivery).
    let now = Instant::now();
    let mut d = Dispatch::new(100);
    for n in 0..10_000 {
        push(&mut d, &[&format!("d{n}.example")], now);
    }
    let (mut running, _) = split_starts(d.starts(now));
    assert_eq!(running.len(), 100);
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    for _ in 0..50 {
        let it = running.remove(0);
        d.finished(&it, result(&it, 's', now), &limits(20), now);
        let (_, done) = split_starts(d.starts(now));
        d.recorded(done[0].entry.id);
        d.turns = 0;
        let (started, _) = split_starts(d.starts(now));
        assert_eq!(started.len(), 1, "the freed slot is used at once");
        assert!(d.turns <= 2, "{} destinations looked at", d.turns);
        assert!(
            seen.insert(started[0].destination.name.clone()),
            "each in turn"
        );
        running.extend(started);
    }
}

#[test]
fn items_to_a_dead_destination_are_deferred_even_while_every_slot_is_taken() {
    let now = Instant::now();
    let mut d = Dispatch::new(1);
    push(&mut d, &["dead.example"], now);
    let (running, _) = split_starts(d.starts(now));
    d.finished(&running[0], result(&running[0], 'x', now), &limits(20), now);
    push(&mut d, &["busy.example"], now);
    let (_, done) = split_starts(d.starts(now));
    assert_eq!(done.len(), 1);
    // busy.example has the only slot (the failed message's slot is still held).
    let waiting = push(&mut d, &["dead.example"], now);
    let (started, done) = split_starts(d.starts(now));
    assert!(started.is_empty());
    let ids: Vec<QueueId> = done.iter().map(|m| m.entry.id).collect();
    assert_eq!(ids, vec![waiting], "deferred without waiting for a slot");
}

#[test]
fn an_item_back_while_others_are_out_is_recorded_early_and_the_last_one_with_the_message() {
    let now = Instant::now();
    let mut d = Dispatch::new(10);
    let id = push(&mut d, &["a.example", "b.example"], now);
    let (running, _) = split_starts(d.starts(now));
    assert_eq!(running.len(), 2);
    // The first back: the other is still out, so its outcome is to be recorded now.
    let (meta, _) = d.others_out(id).expect("b.example is still out");
    assert_eq!(meta.envelope.recipients[0].state, RecipientState::Pending);
    let mut early = result(&running[0], 's', now);
    early.recorded = Some(vec![(0, RecipientState::Sent)]);
    d.finished(&running[0], early, &limits(20), now);
    assert!(split_starts(d.starts(now)).1.is_empty());
    // The last one back is recorded with the message, as a message with one item is.
    assert!(
        d.others_out(id).is_none(),
        "the last item is the message's record"
    );
    d.finished(&running[1], result(&running[1], 'd', now), &limits(20), now);
    let (_, done) = split_starts(d.starts(now));
    let m = &done[0];
    assert!(m.recorded_early);
    assert_eq!(
        m.entry.meta.envelope.recipients[0].state,
        RecipientState::Sent
    );
    let rest: Vec<usize> = m.outcomes.iter().map(|t| t.outcome.recipient).collect();
    assert_eq!(rest, [1], "only the last item's outcome is left to record");
    d.recorded(id);
    assert!(!d.busy());

    let single = push(&mut d, &["a.example"], now);
    split_starts(d.starts(now));
    assert!(
        d.others_out(single).is_none(),
        "one destination: one record"
    );
}
