//! Issue 4, the after-queue content filter (seed 003): `content_filter =
//! "smtp:[127.0.0.1]:FILTERPORT"` sends each new message once to a test filter — a scripted
//! SMTP server that re-injects what it receives, with an `X-Filtered: yes` header, into
//! mailroom's `reinject_listen` port before answering the final dot (as amavis does).
//! Re-injected mail skips the filter: it is delivered once, with the header, no loop.
//! A filter answering 4xx keeps the mail deferred (nothing lost) until it recovers; the
//! filter transport has its own concurrency limit, and the time mail waits for it shows in
//! the log's `delays=a/b/c/d`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testkit::*;

/// `delays=a/b/c/d` of a log line, as four numbers.
fn delays(line: &str) -> Vec<f64> {
    let field = line
        .split("delays=")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no delays= in {line}"));
    let parts: Vec<f64> = field
        .split('/')
        .map(|p| {
            p.parse()
                .unwrap_or_else(|_| panic!("bad delays {field:?} in {line}"))
        })
        .collect();
    assert_eq!(parts.len(), 4, "delays=a/b/c/d: {line}");
    parts
}

/// A started world with the filter `filter` and its re-injection listener (whose port is
/// returned); relayhost `relay`.
fn filtered_world(filter: &Peer, relay: &Peer, extra: &str) -> (World, u16) {
    let world = World::builder()
        .smtp()
        .filter(filter)
        .peer(relay)
        .config(extra)
        .start();
    let reinject = world.reinject.expect("a re-injection listener");
    (world, reinject)
}

#[test]
fn filtered_mail_is_delivered_once_with_the_filters_header() {
    let filter = Peer::start();
    let relay = Peer::start();
    let (world, reinject) = filtered_world(&filter, &relay, "");
    filter.set_dot(reinject_to(reinject));

    world.submit(
        "sender@test.example",
        &["user@test.example", "someone@far.example"],
        &message("to-be-filtered"),
    );
    world.env.wait_mbox("user", 1);
    wait_until("the relayed copy", || !relay.messages().is_empty());
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1000)); // a loop would show by now

    // The filter saw the message once, with both recipients; it was not sent back to it.
    let seen = filter.messages();
    assert_eq!(seen.len(), 1, "through the filter exactly once");
    let mut rcpts = seen[0].recipients.clone();
    rcpts.sort();
    assert_eq!(rcpts, ["someone@far.example", "user@test.example"]);
    assert!(seen[0].header("X-Filtered").is_none());

    // Local and remote copies carry the filter's header, once each.
    let local = world.env.mbox_messages("user");
    assert_eq!(local.len(), 1, "delivered once");
    assert_eq!(local[0].header("X-Filtered").as_deref(), Some("yes"));
    assert_eq!(local[0].subject.as_deref(), Some("to-be-filtered"));
    let remote = relay.messages();
    assert_eq!(remote.len(), 1, "relayed once");
    assert_eq!(remote[0].recipients, ["someone@far.example"]);
    assert_eq!(remote[0].header("X-Filtered").as_deref(), Some("yes"));

    // The log: the hop to the filter, then the final deliveries, each with delays=a/b/c/d.
    let to_filter = world.lines_with(&[
        &format!("relay=127.0.0.1[127.0.0.1]:{}", filter.port),
        "status=sent",
    ]);
    assert_eq!(to_filter.len(), 2, "one line per recipient: {to_filter:?}");
    for line in world.lines_with(&["status=sent"]) {
        delays(&line);
    }
    assert_eq!(
        world
            .lines_with(&["to=<user@test.example>", "status=sent"])
            .len(),
        2,
        "filter hop + local delivery"
    );
}

#[test]
fn a_filter_answering_4xx_keeps_the_mail_deferred_until_it_recovers() {
    let filter = Peer::start_with(
        OnConnect::Greet,
        rcpt_reply("451 4.3.0 filter overloaded, try again later"),
    );
    let relay = Peer::start();
    let (world, reinject) = filtered_world(&filter, &relay, "");
    world.submit(
        "sender@test.example",
        &["user@test.example"],
        &message("filter-is-down"),
    );
    let deferred = world.wait_lines(&["to=<user@test.example>", "status=deferred"], 2);
    assert!(
        deferred[0].contains("451 4.3.0 filter overloaded"),
        "{}",
        deferred[0]
    );
    delays(&deferred[0]);
    assert_eq!(
        world.env.count_mbox("user"),
        0,
        "not delivered around the filter"
    );
    let queue = world.queue();
    assert_eq!(queue.len(), 1, "nothing lost: {queue:?}");

    // The filter recovers: the next retry goes through it, once.
    filter.set_rcpt(accept_all());
    filter.set_dot(reinject_to(reinject));
    world.env.wait_mbox("user", 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(filter.messages().len(), 1);
    let got = world.env.mbox_messages("user");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("X-Filtered").as_deref(), Some("yes"));
    assert!(world.lines_with(&["status=bounced"]).is_empty());
}

#[test]
fn the_filter_has_its_own_concurrency_limit_and_the_wait_shows_in_delays() {
    let filter = Peer::start();
    let relay = Peer::start();
    let (world, reinject) = filtered_world(
        &filter,
        &relay,
        "filter_destination_concurrency_limit = 2\n",
    );
    // A slow filter that measures how many deliveries it is given at once.
    let inner = reinject_to(reinject);
    let (now, max) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n, m) = (now.clone(), max.clone());
    filter.set_dot(Arc::new(move |r: &Received| {
        let cur = n.fetch_add(1, Ordering::SeqCst) + 1;
        m.fetch_max(cur, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(250));
        n.fetch_sub(1, Ordering::SeqCst);
        inner(r)
    }));
    let users: Vec<String> = (0..10).map(|i| format!("f{i}")).collect();
    std::thread::scope(|s| {
        for u in &users {
            let world = &world;
            s.spawn(move || {
                let rcpt = format!("{u}@test.example");
                world.submit("sender@test.example", &[&rcpt], &message(u));
            });
        }
    });
    world.env.wait_all(&users, 10);
    world.env.wait_queue_empty();
    assert_eq!(filter.messages().len(), 10);
    let max = max.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&max),
        "at most filter_destination_concurrency_limit at once, saw {max}"
    );
    // Ten messages, two at a time, 250 ms each: the last ones waited about a second for a
    // filter slot, and delays' b (waiting for a delivery slot) says so.
    let to_filter = world.lines_with(&[
        &format!("relay=127.0.0.1[127.0.0.1]:{}", filter.port),
        "status=sent",
    ]);
    assert_eq!(to_filter.len(), 10);
    let waited = to_filter
        .iter()
        .map(|l| delays(l)[1])
        .fold(0.0f64, f64::max);
    assert!(
        waited >= 0.5,
        "the wait for the filter is visible in delays=a/b/c/d: {to_filter:#?}"
    );
}
