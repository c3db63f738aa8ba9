//! Issue 14 part 4: `mailroom suspend` / `postqueue -S` pause deliveries to a destination.
//! Its mail stays queued without a connection to the destination (smtp-sink counts every
//! session), mailq says why, other destinations still flow, resume delivers at once, a
//! `--for` suspension ends by itself, and the suspension outlives a kill -9 of the daemon
//! and is changed by the CLI while no daemon runs.

use testkit::*;

const HELD: &str = "held in the queue: delivery suspended by the operator";

/// A world relaying to an smtp-sink (its counters kept in the world's directory).
fn sink_world() -> (Sink, World) {
    let port = free_port();
    let world = World::builder().smtp().peer(&port).build();
    let sink = Sink::start_on(&world.env.root, port, &[]);
    (sink, world)
}

/// The `delay_reason` postqueue -j gives each recipient of the queued messages.
fn reasons(world: &World) -> Vec<String> {
    let rows = world.env.queue_json();
    let recipients = rows
        .iter()
        .flat_map(|r| r["recipients"].as_array().cloned());
    let reasons = recipients
        .flatten()
        .map(|r| r["delay_reason"].as_str().map(str::to_string));
    reasons.map(Option::unwrap_or_default).collect()
}

#[test]
fn a_suspended_domain_gets_no_connection_and_resume_delivers_at_once() {
    let (sink, mut world) = sink_world();
    world.start();
    let out = world.run_ok(&[
        "suspend",
        "Example.NET",
        "--reason",
        "their MX asked us to wait",
    ]);
    assert!(
        out.contains("example.net: delivery suspended by the operator until resumed"),
        "{out}"
    );
    world.submit(
        "s@test.example",
        &["a@example.net"],
        "Subject: one\r\n\r\nbody\r\n",
    );
    world.wait_lines(&[HELD, "their MX asked us to wait"], 1);
    assert_eq!(
        sink.sessions(),
        0,
        "no connection for a suspended destination"
    );
    let expected = "delivery suspended by the operator until resumed: their MX asked us to wait";
    assert_eq!(reasons(&world), vec![expected.to_string()]);
    assert!(
        world.env.mailq().contains(expected),
        "{}",
        world.env.mailq()
    );

    // Other destinations still flow through the same relay.
    world.submit(
        "s@test.example",
        &["b@other.example"],
        "Subject: two\r\n\r\nbody\r\n",
    );
    world.wait_lines(&["to=<b@other.example>", "status=sent"], 1);
    wait_until("the sink to count it", || sink.messages() == 1);
    let listed = world.run_ok(&["suspend", "--list", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["destination"], "example.net");

    let out = world.env.run(&["postqueue", "-U", "example.net"], b"");
    assert_success(&out, "postqueue -U");
    world.wait_lines(&["to=<a@example.net>", "status=sent"], 1);
    wait_until("the sink to count both messages", || sink.messages() == 2);
    world.env.wait_queue_empty();
    assert!(
        world.lines_with(&["status=deferred"]).is_empty(),
        "no attempt was made while suspended"
    );
    assert!(world
        .run_ok(&["suspend", "--list"])
        .contains("No destination is suspended"));
}

#[test]
fn a_timed_suspension_ends_by_itself() {
    let (sink, mut world) = sink_world();
    world.start();
    // Long enough that the message is surely queued and held back before it ends.
    let out = world.env.run(&["postqueue", "-S", "example.net"], b"");
    assert_success(&out, "postqueue -S");
    world.run_ok(&[
        "suspend",
        "example.net",
        "--for",
        "20s",
        "--reason",
        "short pause",
    ]);
    world.submit(
        "s@test.example",
        &["a@example.net"],
        "Subject: one\r\n\r\nbody\r\n",
    );
    world.wait_lines(&[HELD, "short pause"], 1);
    assert_eq!(sink.sessions(), 0);
    let sent = world.wait_lines(&["to=<a@example.net>", "status=sent"], 1);
    let log = world.env.log();
    let ended = log.find("deliveries to example.net resumed: the suspension ended");
    let delivered = log.find(&sent[0]);
    assert!(
        ended.is_some() && ended < delivered,
        "sent only after the end:\n{log}"
    );
    wait_until("the sink to count it", || sink.messages() == 1);
}

#[test]
fn the_suspension_survives_a_restart_and_the_cli_changes_it_with_the_daemon_down() {
    let (sink, mut world) = sink_world();
    world.start(); // the queue directory exists from the first start on
    world.daemon.take().unwrap().kill9();
    // Daemon down: the CLI writes the file the daemon reads when it starts.
    world.run_ok(&["suspend", "example.net", "--reason", "planned"]);
    world
        .env
        .send_ok(&["a@example.net"], b"Subject: one\r\n\r\nbody\r\n");
    world.start();
    world.wait_lines(&[HELD, "planned"], 1);
    assert_eq!(sink.sessions(), 0);

    // kill -9 and start again: still suspended, the message held back again.
    world.daemon.take().unwrap().kill9();
    world.start();
    world.wait_lines(&[HELD, "planned"], 2);
    assert_eq!(sink.sessions(), 0);
    // A next hop (the relayhost itself) can be suspended too, through the running daemon.
    let relay = format!("[127.0.0.1]:{}", sink.port);
    world.run_ok(&["suspend", &relay, "--reason", "relay maintenance"]);
    world.submit(
        "s@test.example",
        &["b@other.example"],
        "Subject: two\r\n\r\nbody\r\n",
    );
    world.wait_lines(&[HELD, "relay maintenance"], 1);
    assert_eq!(sink.sessions(), 0);
    world.run_ok(&["resume", &relay]);
    world.wait_lines(&["to=<b@other.example>", "status=sent"], 1);
    // Its removal durable before the kill, or the restart would send it again.
    wait_until("only the suspended message left", || {
        world.queue().len() == 1
    });

    // Daemon down again: resume in the file; the next start delivers.
    world.daemon.take().unwrap().kill9();
    world.run_ok(&["resume", "example.net"]);
    let mailq = world.env.mailq();
    assert!(!mailq.contains("suspended"), "{mailq}");
    world.start();
    world.wait_lines(&["to=<a@example.net>", "status=sent"], 1);
    wait_until("the sink to count both messages", || sink.messages() == 2);
}
