//! Issue 13, the `FILTER transport:destination` action: a header check (`header_checks`)
//! or an access table result (`check_sender_access`) sends that one message to the named
//! content filter instead of its normal route or the global `content_filter`. The filter
//! here is testkit's scripted server re-injecting into `reinject_listen` with an
//! `X-Filtered: yes` header, as in `content_filter_sees_mail_once.rs`; re-injected mail is
//! routed normally, so each message is delivered once. The choice is kept in the queue
//! record (`postcat -q` shows Postfix's `content_filter:` record), so it survives a restart
//! while the filter is down.

use std::fs;

use testkit::*;

/// A world with an SMTP listener, a re-injection listener, `relay` as relayhost and
/// `header_checks` (written to a file) plus `extra` configuration; started.
fn world(relay: &Peer, header_checks: &str, extra: &str, global: Option<&Peer>) -> World {
    let mut builder = World::builder().smtp().peer(relay);
    builder = match global {
        Some(filter) => builder.filter(filter),
        None => builder.reinject(),
    };
    let mut world = builder.build();
    let root = world.env.root.clone();
    fs::write(root.join("header_checks"), header_checks).unwrap();
    world.configure(&format!(
        "header_checks = [\"regexp:{}/header_checks\"]\n{extra}",
        root.display()
    ));
    world.start();
    world
}

fn scan_me(filter: &Peer) -> String {
    format!(
        "/^Subject:.*scan me/ FILTER smtp:[127.0.0.1]:{}\n",
        filter.port
    )
}

/// The queue ID of a `250 2.0.0 Ok: queued as ID` reply.
fn queued_id(reply: &Reply) -> String {
    assert_eq!(reply.code, 250, "{}", reply.text());
    reply.text().rsplit(' ').next().unwrap().to_string()
}

/// Subjects of what `peer` received, sorted.
fn subjects(peer: &Peer) -> Vec<String> {
    let mut subjects: Vec<String> = peer
        .messages()
        .iter()
        .map(|m| m.header("Subject").unwrap_or_default())
        .collect();
    subjects.sort();
    subjects
}

/// Waits until `relay` has `n` messages and the queue is empty; then nothing is in
/// flight that could still reach a filter.
fn all_delivered(world: &World, relay: &Peer, n: usize) {
    wait_until("every message relayed", || relay.messages().len() >= n);
    world.env.wait_queue_empty();
}

#[test]
fn a_header_check_filter_sends_only_that_message_through_the_filter_once() {
    let filter = Peer::start();
    let relay = Peer::start();
    let world = world(&relay, &scan_me(&filter), "", None);
    filter.set_dot(reinject_to(world.reinject.unwrap()));

    let id = queued_id(&world.data_reply(
        "a@test.example",
        "someone@far.example",
        "Subject: please scan me\n\nbody\n",
    ));
    world.submit("a@test.example", &["other@far.example"], &message("plain"));
    // sendmail mail (pickup) runs the same header checks.
    world.env.send_ok(
        &["-f", "b@test.example", "third@far.example"],
        b"Subject: local scan me\n\nbody\n",
    );
    all_delivered(&world, &relay, 3);

    assert_eq!(
        subjects(&filter),
        ["local scan me", "please scan me"],
        "only the matching messages, each once"
    );
    for m in relay.messages() {
        let subject = m.header("Subject").unwrap_or_default();
        let filtered = m.header("X-Filtered").is_some();
        assert_eq!(filtered, subject.contains("scan me"), "{subject}");
    }
    assert_eq!(relay.messages().len(), 3, "each delivered once, no loop");
    let port = filter.port;
    world.wait_lines(&[&format!("{id}: filter: header Subject: please scan me from unknown[127.0.0.1]; from=<a@test.example> to=<someone@far.example> proto=ESMTP helo=<client.test>: smtp:[127.0.0.1]:{port}")], 1);
    world.wait_lines(
        &[
            "filter: header Subject: local scan me from local; from=<b@test.example> to=<third@far.example>:",
            &format!("smtp:[127.0.0.1]:{port}"),
        ],
        1,
    );
    // The hop's own line may be written after the re-injected copy was relayed: waited for.
    let via_filter = world.wait_lines(
        &[
            &format!("{id}: to=<someone@far.example>"),
            &format!("relay=127.0.0.1[127.0.0.1]:{port}"),
            "status=sent",
        ],
        1,
    );
    assert_eq!(via_filter.len(), 1, "{via_filter:?}");
}

#[test]
fn an_access_table_filter_sends_the_senders_mail_through_the_filter() {
    let filter = Peer::start();
    let relay = Peer::start();
    let mut world = World::builder().smtp().peer(&relay).reinject().build();
    let senders = world.env.root.join("senders");
    let port = filter.port;
    fs::write(
        &senders,
        format!("scan@example.org FILTER smtp:[127.0.0.1]:{port}\nbad@example.org FILTER\n"),
    )
    .unwrap();
    world.configure(&format!(
        "smtpd_recipient_restrictions = \"check_sender_access hash:{}, permit_mynetworks, reject\"\n",
        senders.display()
    ));
    world.start();
    filter.set_dot(reinject_to(world.reinject.unwrap()));

    world.submit(
        "scan@example.org",
        &["x@far.example"],
        &message("from-scan"),
    );
    world.submit("bad@example.org", &["y@far.example"], &message("from-bad"));
    world.submit(
        "plain@example.org",
        &["z@far.example"],
        &message("from-plain"),
    );
    all_delivered(&world, &relay, 3);

    assert_eq!(subjects(&filter), ["from-scan"]);
    assert_eq!(relay.messages().len(), 3, "each delivered once, no loop");
    for m in relay.messages() {
        let filtered = m.header("X-Filtered").is_some();
        assert_eq!(filtered, m.sender == "scan@example.org", "{}", m.sender);
    }
    world.wait_lines(&[&format!("NOQUEUE: filter: RCPT from unknown[127.0.0.1]: <scan@example.org>: Sender address triggers FILTER smtp:[127.0.0.1]:{port}; from=<scan@example.org> to=<x@far.example> proto=ESMTP helo=<client.test>")], 1);
    world.wait_lines(
        &[
            "access table",
            "entry \"FILTER\" has FILTER entry without value",
        ],
        1,
    );
}

#[test]
fn a_filter_wins_over_the_global_content_filter() {
    let own = Peer::start();
    let global = Peer::start();
    let relay = Peer::start();
    let world = world(&relay, &scan_me(&own), "", Some(&global));
    let reinject = world.reinject.unwrap();
    own.set_dot(reinject_to(reinject));
    global.set_dot(reinject_to(reinject));

    world.submit("a@test.example", &["x@far.example"], &message("scan me"));
    world.submit("a@test.example", &["y@far.example"], &message("plain"));
    all_delivered(&world, &relay, 2);

    assert_eq!(subjects(&own), ["scan me"]);
    assert_eq!(
        subjects(&global),
        ["plain"],
        "the other message, not this one"
    );
    assert_eq!(relay.messages().len(), 2, "each delivered once");
    assert!(relay
        .messages()
        .iter()
        .all(|m| m.header("X-Filtered").is_some()));
}

#[test]
fn the_filter_choice_survives_a_restart_while_the_filter_is_down() {
    let filter = Peer::start_with(
        OnConnect::Greet,
        rcpt_reply("451 4.3.0 filter overloaded, try again later"),
    );
    let relay = Peer::start();
    let mut world = world(&relay, &scan_me(&filter), "", None);
    let id = queued_id(&world.data_reply(
        "a@test.example",
        "someone@far.example",
        "Subject: scan me\n\nbody\n",
    ));
    let deferred = [
        &format!("{id}: to=<someone@far.example>") as &str,
        &format!("relay=127.0.0.1[127.0.0.1]:{}", filter.port),
        "status=deferred",
    ];
    world.wait_lines(&deferred, 1);
    let record = world.run_ok(&["postcat", "-e", "-q", &id]);
    let expected = format!("content_filter: smtp:[127.0.0.1]:{}", filter.port);
    assert!(
        record.lines().any(|l| l == expected),
        "postcat shows the queue record's filter:\n{record}"
    );

    world.daemon.take().expect("daemon running").kill9();
    let before = world.lines_with(&deferred).len();
    world.start();
    // After the restart the queue record alone says where it goes: the filter, still down.
    world.wait_lines(&deferred, before + 1);
    assert!(
        relay.messages().is_empty(),
        "not delivered around the filter"
    );

    filter.set_rcpt(accept_all());
    filter.set_dot(reinject_to(world.reinject.unwrap()));
    all_delivered(&world, &relay, 1);
    assert_eq!(subjects(&filter), ["scan me"]);
    let got = relay.messages();
    assert_eq!(got.len(), 1, "delivered once");
    assert_eq!(got[0].header("X-Filtered").as_deref(), Some("yes"));
}
