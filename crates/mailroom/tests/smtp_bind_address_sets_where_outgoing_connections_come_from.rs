//! `smtp_bind_address`: the real daemon relays to Postfix's smtp-sink, which writes the
//! client address of each transaction (`X-Client-Addr:`): 127.0.0.2 with
//! `smtp_bind_address = "127.0.0.2"`, 127.0.0.1 (the system's choice) without it. An
//! address that is on no interface is Postfix's `warning: smtp_connect_addr: bind …`, and
//! with `smtp_bind_address_enforce` the mail is deferred, not lost.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use testkit::*;

/// Relays one message through a world configured with `extra` to a dumping smtp-sink and
/// returns its messages by client address.
fn relayed_from(extra: &str) -> BTreeMap<String, usize> {
    let root = TestEnv::new();
    let (sink, dumps) = Sink::start_dumping(&root.root, Ipv4Addr::LOCALHOST, free_port(), &[]);
    let world = World::builder().smtp().peer(&sink).config(extra).start();
    world.submit(
        "sender@test.example",
        &["someone@example.net"],
        &message("bind"),
    );
    world.wait_lines(&["to=<someone@example.net>", "status=sent"], 1);
    wait_until("smtp-sink to write the message", || sink.messages() >= 1);
    sink.wait_sessions_closed();
    messages_by_client(&dumps)
}

#[test]
fn with_smtp_bind_address_the_sink_sees_that_address() {
    let by_client = relayed_from("smtp_bind_address = \"127.0.0.2\"\n");
    assert_eq!(by_client, BTreeMap::from([("127.0.0.2".to_string(), 1)]));
}

#[test]
fn without_it_the_connection_comes_from_the_systems_choice() {
    let by_client = relayed_from("");
    assert_eq!(by_client, BTreeMap::from([("127.0.0.1".to_string(), 1)]));
}

#[test]
fn an_address_on_no_interface_warns_and_under_enforce_defers() {
    // 192.0.2.1 (TEST-NET-1) is on no interface: bind(2) fails.
    let by_client = relayed_from("smtp_bind_address = \"192.0.2.1\"\n");
    assert_eq!(by_client, BTreeMap::from([("127.0.0.1".to_string(), 1)]));

    let root = TestEnv::new();
    let sink = Sink::start(&root.root, &[]);
    let world = World::builder()
        .smtp()
        .peer(&sink)
        .config("smtp_bind_address = \"192.0.2.1\"\nsmtp_bind_address_enforce = true\n")
        .start();
    world.submit(
        "sender@test.example",
        &["someone@example.net"],
        &message("enforce"),
    );
    let deferred = world.wait_lines(&["to=<someone@example.net>", "status=deferred"], 1);
    assert!(
        deferred[0].contains("dsn=4.4.0") && deferred[0].contains("server configuration error"),
        "{}",
        deferred[0]
    );
    let warning = world.lines_with(&["warning: smtp_connect_addr: bind 192.0.2.1:"]);
    assert!(
        !warning.is_empty(),
        "the bind failure is logged:\n{}",
        tail(&world.env.log(), 20)
    );
    assert_eq!(sink.sessions(), 0, "no connection was made");
    assert_eq!(world.queue().len(), 1, "the message stays queued");
}
