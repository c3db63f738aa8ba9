//! Issue 4, "dead destination": 1,000 messages for a destination where nothing answers
//! cost a handful of connection attempts, not 1,000 — the scheduler marks the destination
//! dead after the first failures and defers the rest without connecting — and every message
//! is deferred (kept), none bounced. Meanwhile mail for a live destination still flows (fair
//! round-robin between destinations: one dead domain cannot starve the others).

use std::process::Command;

use testkit::*;

/// Long enough that no retry happens while the test runs, however slow the box (1,000
/// messages through smtp-source can take more than 30 s under load): only the first wave
/// connects, and each message is deferred exactly once.
const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

fn smtp_source(port: u16, count: usize, to: &str) {
    let out = run_with_input(
        Command::new("smtp-source").args([
            "-s",
            "5",
            "-m",
            &count.to_string(),
            "-f",
            "sender@test.example",
            "-t",
            to,
            &format!("127.0.0.1:{port}"),
        ]),
        b"",
    );
    assert_success(&out, "smtp-source");
}

#[test]
fn a_thousand_messages_to_a_closed_port_make_a_handful_of_connection_attempts() {
    let closed = free_port();
    let world = World::builder()
        .smtp()
        .peer(&closed)
        .config(BACKOFF)
        .start();
    smtp_source(world.port, 1000, "someone@dead.example");

    let deferred = world.wait_lines(&["to=<someone@dead.example>", "status=deferred"], 1000);
    assert_eq!(deferred.len(), 1000, "each message deferred once");
    let attempts = deferred
        .iter()
        .filter(|l| l.contains(&format!("(connect to 127.0.0.1[127.0.0.1]:{closed}")))
        .count();
    let suspended = deferred
        .iter()
        .filter(|l| l.contains("delivery temporarily suspended"))
        .count();
    eprintln!("1000 messages: {attempts} connection attempts, {suspended} deferred without one");
    assert!(
        (1..=10).contains(&attempts),
        "a handful of connection attempts, not one per message: {attempts}"
    );
    assert_eq!(
        attempts + suspended,
        1000,
        "the others are deferred without a connection"
    );
    assert!(world.lines_with(&["status=bounced"]).is_empty());
    let queue = world.queue();
    assert_eq!(queue.len(), 1000, "nothing lost");
    assert!(
        queue.iter().all(|(q, _, _)| q == "deferred"),
        "all deferred: {:?}",
        queue.iter().find(|(q, _, _)| q != "deferred")
    );
}

#[test]
fn a_dead_server_sees_a_handful_of_connections_and_live_mail_still_flows() {
    // The dead one accepts and hangs up at once (a crashed MTA behind a live port).
    let dead = Peer::start_with(OnConnect::Close, accept_all());
    let live = Peer::start();
    let env_probe = TestEnv::new();
    let transport = env_probe.root.join("transport");
    std::fs::write(
        &transport,
        format!(
            "dead.example smtp:[127.0.0.1]:{}\nlive.example smtp:[127.0.0.1]:{}\n",
            dead.port, live.port
        ),
    )
    .unwrap();
    let world = World::started(&format!(
        "transport_maps = [\"{}\"]\n{BACKOFF}",
        transport.display()
    ));
    smtp_source(world.port, 300, "someone@dead.example");
    smtp_source(world.port, 20, "someone@live.example");

    wait_until("20 messages at the live destination", || {
        live.messages().len() >= 20
    });
    world.wait_lines(&["to=<someone@dead.example>", "status=deferred"], 300);
    eprintln!(
        "300 messages: {} connections to the dead server",
        dead.connections()
    );
    assert!(
        (1..=10).contains(&dead.connections()),
        "the dead server saw {} connections for 300 messages",
        dead.connections()
    );
    let lost = world.lines_with(&["to=<someone@dead.example>", "lost connection with"]);
    assert!(!lost.is_empty(), "Postfix's wording for a hang-up");
    assert_eq!(live.messages().len(), 20);
    // The peer records a message before its 250; the daemon logs status=sent after it.
    assert_eq!(
        world
            .wait_lines(&["to=<someone@live.example>", "status=sent"], 20)
            .len(),
        20
    );
    // Each is removed from the queue once its removal is durable, a moment after status=sent
    // (on a loaded machine, long enough to be seen still queued).
    world.wait_lines(&["qmgr", ": removed"], 20);
    let queue = world.queue();
    assert_eq!(queue.len(), 300, "the dead destination's mail is kept");
    assert!(queue
        .iter()
        .all(|(q, _, r)| q == "deferred" && r.iter().all(|a| a == "someone@dead.example")));
}
