//! The engine over a real store: listing, selectors, every postsuper action, qshape, postcat.

use super::*;
use crate::qshape::Options;
use crate::select::Selector;
use crate::superop::Request as Super;
use envelope::Envelope;
use queue::{QueueName, StoreOptions, Update};

struct World {
    _dir: tempfile::TempDir,
    store: Store,
    maildrop: PathBuf,
    ids: Vec<QueueId>,
}

/// Four messages: two deferred to example.com (one old, from cron), one incoming, one held.
fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let now = crate::duration::unix_now();
    let specs = [
        (
            "cron@host",
            "root@example.com",
            now - 2 * 86_400,
            QueueName::Deferred,
        ),
        ("alice@host", "bob@example.com", now, QueueName::Deferred),
        ("alice@host", "carol@other.org", now, QueueName::Incoming),
        ("", "dave@other.org", now, QueueName::Hold),
    ];
    let mut ids = Vec::new();
    for (sender, rcpt, arrival, queue) in specs {
        let id = QueueId::generate();
        let env = Envelope::new(sender, vec![rcpt.to_string()], arrival);
        store.enqueue(id, env, b"Subject: t\n\nbody\n").unwrap();
        let recipients = match queue {
            QueueName::Deferred => vec![(
                0,
                RecipientState::Deferred {
                    reason: "connection refused".into(),
                },
            )],
            _ => vec![],
        };
        store
            .update(
                id,
                Update {
                    recipients,
                    queue,
                    next_attempt: now + 3600,
                    attempts: 1,
                    delay_warned: false,
                },
            )
            .unwrap();
        ids.push(id);
    }
    World {
        maildrop: queue::Layout::new(dir.path()).maildrop(),
        _dir: dir,
        store,
        ids,
    }
}

fn run(w: &World, req: Request, ids: &str) -> Vec<Event> {
    let ctx = Context {
        backend: Backend::Store(&w.store),
        scheduler: &NoScheduler,
        maildrop: w.maildrop.clone(),
        now: crate::duration::unix_now(),
    };
    let mut events = Vec::new();
    let mut reader = io::Cursor::new(ids.as_bytes().to_vec());
    let ids: Option<&mut dyn BufRead> = if ids.is_empty() {
        None
    } else {
        Some(&mut reader)
    };
    ctx.run(&req, ids, &mut |e| {
        events.push(e);
        Ok(())
    })
    .unwrap();
    events
}

fn rows(events: &[Event]) -> Vec<Row> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Row(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn summary(events: &[Event]) -> u64 {
    events
        .iter()
        .find_map(|e| match e {
            Event::Summary(s) => Some(s.count),
            _ => None,
        })
        .unwrap()
}

#[test]
fn list_in_id_order_with_reasons_and_selectors() {
    let w = world();
    let all = rows(&run(
        &w,
        Request::List {
            selector: Selector::default(),
            compact_rows: false,
        },
        "",
    ));
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].queue_id, w.ids[0].to_string());
    assert_eq!(all[0].recipients[0].delay_reason, "connection refused");
    assert_eq!(all[3].queue_name, State::Hold);
    let sel = Selector {
        to: Some("root".into()),
        older_than: Some(86_400),
        ..Default::default()
    };
    let some = rows(&run(
        &w,
        Request::List {
            selector: sel,
            compact_rows: true,
        },
        "",
    ));
    assert_eq!(some.len(), 1);
    assert_eq!(some[0].sender, "cron@host");
    assert!(matches!(
        run(&w, Request::Stats, "").last(),
        Some(Event::End { count: 4 })
    ));
}

#[test]
fn delete_named_ids_from_a_stream_and_warn_on_garbage() {
    let w = world();
    let input = format!("{}\nnot-an-id\n{}\n", w.ids[0], w.ids[2]);
    let req = Super {
        action: superop::Action::Delete,
        all: false,
        ids: vec![],
        ids_follow: true,
        selector: Selector::default(),
        dry_run: false,
    };
    let events = run(&w, Request::Super(req), &input);
    assert_eq!(summary(&events), 2);
    assert!(events.contains(&Event::Warning("invalid mail queue id: not-an-id".into())));
    assert!(events.contains(&Event::Done {
        id: w.ids[0].to_string(),
        what: "removed".into()
    }));
    assert_eq!(w.store.len(), 2);
}

#[test]
fn all_deferred_dry_run_then_for_real() {
    let w = world();
    let mut req = Super {
        action: superop::Action::Delete,
        all: true,
        ids: vec![],
        ids_follow: false,
        selector: Selector {
            queues: vec![State::Deferred],
            ..Default::default()
        },
        dry_run: true,
    };
    let events = run(&w, Request::Super(req.clone()), "");
    assert_eq!(
        (summary(&events), rows(&events).len(), w.store.len()),
        (2, 2, 4)
    );
    req.dry_run = false;
    assert_eq!(summary(&run(&w, Request::Super(req), "")), 2);
    assert_eq!(w.store.len(), 2);
}

#[test]
fn hold_release_requeue() {
    let w = world();
    let op = |action, all| Super {
        action,
        all,
        ids: vec![],
        ids_follow: false,
        selector: Selector::default(),
        dry_run: false,
    };
    assert_eq!(
        summary(&run(
            &w,
            Request::Super(op(superop::Action::Hold, true)),
            ""
        )),
        3
    );
    assert!(w
        .ids
        .iter()
        .all(|id| w.store.get(*id).unwrap().meta.queue == QueueName::Hold));
    assert_eq!(
        summary(&run(
            &w,
            Request::Super(op(superop::Action::Release, true)),
            ""
        )),
        4
    );
    let e = w.store.get(w.ids[0]).unwrap();
    assert_eq!((e.meta.queue, e.meta.attempts), (QueueName::Deferred, 1));
    let named = Super {
        ids: vec![w.ids[1].to_string()],
        ..op(superop::Action::Requeue, false)
    };
    let events = run(&w, Request::Super(named), "");
    assert!(events.contains(&Event::Done {
        id: w.ids[1].to_string(),
        what: "requeued".into()
    }));
    let e = w.store.get(w.ids[1]).unwrap();
    assert_eq!(
        (e.meta.queue, e.meta.next_attempt),
        (QueueName::Incoming, 0)
    );
}

#[test]
fn qshape_and_postcat() {
    let w = world();
    let events = run(
        &w,
        Request::Qshape {
            options: Options::default(),
            queues: vec![State::Deferred],
        },
        "",
    );
    let Some(Event::Shape(shape)) = events.first() else {
        panic!("{events:?}")
    };
    assert_eq!(shape.rows[0].domain, "TOTAL");
    assert_eq!(shape.rows[1].domain, "example.com");
    assert_eq!(shape.rows[1].counts[0], 2);
    let events = run(
        &w,
        Request::Cat {
            id: w.ids[0].to_string(),
        },
        "",
    );
    let Some(Event::Body { text, hex }) = events.get(1) else {
        panic!("{events:?}")
    };
    assert_eq!(Event::body_bytes(text, hex), b"Subject: t\n\nbody\n");
    let events = run(
        &w,
        Request::Cat {
            id: "0000000000000000".into(),
        },
        "",
    );
    // No such message: no envelope and a count of 0 (postcat exits 1), not an error.
    assert!(
        matches!(events.as_slice(), [Event::End { count: 0 }]),
        "{events:?}"
    );
}
