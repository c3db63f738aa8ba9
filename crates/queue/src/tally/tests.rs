//! The running totals against a walk of the store, over random changes, reopens and a
//! moving clock.

use super::*;
use crate::{Entry, Store, StoreOptions, Update};
use envelope::{Envelope, RecipientState};

/// The totals as the whole-store walk of `/metrics` and doctor computed them.
fn walked(store: &Store, now: u64, active: &[QueueId], top: usize) -> View {
    let mut view = View::default();
    let mut dest: HashMap<String, u64> = HashMap::new();
    let mut rdom: HashMap<String, u64> = HashMap::new();
    let mut reasons: HashMap<String, u64> = HashMap::new();
    store.for_each(|e: &Entry| {
        let is_active = active.contains(&e.id) && e.meta.queue != QueueName::Hold;
        let totals = match (is_active, e.meta.queue) {
            (_, QueueName::Hold) => &mut view.hold,
            (true, _) => &mut view.active,
            (false, QueueName::Incoming) => &mut view.incoming,
            (false, QueueName::Deferred) => &mut view.deferred,
        };
        let arrival = e.meta.envelope.arrival_time;
        totals.count(arrival, e.size, now, true);
        let oldest = totals.oldest_arrival.map_or(arrival, |o| o.min(arrival));
        totals.oldest_arrival = Some(oldest);
        if is_active || e.meta.queue != QueueName::Deferred {
            return;
        }
        let mut seen: Vec<String> = Vec::new();
        let mut last = "";
        for r in e
            .meta
            .envelope
            .recipients
            .iter()
            .filter(|r| r.state.is_open())
        {
            let domain = envelope::split_address(&r.address).1;
            *rdom.entry(domain.clone()).or_default() += 1;
            if !seen.contains(&domain) {
                *dest.entry(domain.clone()).or_default() += 1;
                seen.push(domain);
            }
            if let RecipientState::Deferred { reason } = &r.state {
                if reason != last && !reason.is_empty() {
                    *reasons.entry(reason.clone()).or_default() += 1;
                    last = reason;
                }
            }
        }
    });
    let ranked = |m: HashMap<String, u64>| {
        let mut v: Vec<(String, u64)> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        v
    };
    let all = ranked(dest);
    view.deferred_destinations_rest = all.iter().skip(top).map(|(_, n)| n).sum();
    view.deferred_destinations = all.into_iter().take(top).collect();
    view.deferred_recipient_domains = ranked(rdom).into_iter().take(top).collect();
    view.deferred_reasons = ranked(reasons).into_iter().take(top).collect();
    view
}

/// xorshift: repeatable randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

const DOMAINS: [&str; 5] = [
    "a.example",
    "B.example",
    "b.example",
    "c.example",
    "d.example",
];
const REASONS: [&str; 3] = ["421 busy", "connection refused", "450 greylisted"];

fn random_change(store: &Store, rng: &mut Rng, ids: &mut Vec<QueueId>, base: u64) {
    let pick = rng.below(10);
    if ids.is_empty() || pick < 3 {
        let n = 1 + rng.below(4) as usize;
        let rcpts = (0..n)
            .map(|_| format!("u{}@{}", rng.below(3), DOMAINS[rng.below(5) as usize]))
            .collect();
        let arrival = base - rng.below(7 * 86400) + rng.below(30);
        let id = QueueId::generate();
        let body = vec![b'x'; rng.below(200_000) as usize];
        store
            .enqueue(id, Envelope::new("s@x", rcpts, arrival), &body)
            .unwrap();
        ids.push(id);
        return;
    }
    let id = ids[rng.below(ids.len() as u64) as usize];
    let e = store.get(id).unwrap();
    if pick == 3 {
        store.remove(id, "deleted").unwrap();
        ids.retain(|x| *x != id);
        return;
    }
    let queue = match pick {
        4 => QueueName::Hold,
        5 => QueueName::Incoming,
        _ => QueueName::Deferred,
    };
    let mut recipients = Vec::new();
    for i in 0..e.meta.envelope.recipients.len() {
        let state = match rng.below(5) {
            0 => continue,
            1 => RecipientState::Sent,
            2 => RecipientState::Pending,
            _ => RecipientState::Deferred {
                reason: REASONS[rng.below(3) as usize].into(),
            },
        };
        recipients.push((i, state));
    }
    let update = Update {
        recipients,
        queue,
        ..Update::keep(&e.meta)
    };
    store.update(id, update).unwrap();
}

#[test]
fn running_totals_equal_a_walk_of_the_store_after_any_changes_and_a_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut ids = Vec::new();
    let base = 1_800_000_000;
    for round in 0..6 {
        let (store, _) = Store::open(tmp.path(), StoreOptions::default()).unwrap();
        for step in 0..150 {
            random_change(&store, &mut rng, &mut ids, base);
            if step % 25 == 0 {
                // The clock moves forward in jumps, and once back (a stepped clock).
                let now = base + round * 3000 + step * 97 - if round == 3 { 5000 } else { 0 };
                let active: Vec<QueueId> =
                    ids.iter().copied().filter(|_| rng.below(4) == 0).collect();
                for top in [2, 50] {
                    let kept = store.view(now, &active, top);
                    assert_eq!(
                        kept,
                        walked(&store, now, &active, top),
                        "round {round} step {step}"
                    );
                }
            }
        }
    }
}
