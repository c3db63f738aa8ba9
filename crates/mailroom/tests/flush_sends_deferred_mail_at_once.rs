//! Issue 4, flush and control: with a long backoff, deferred mail waits; once the
//! destination is back, `postqueue -f` (or `sendmail -q`) makes it go out at once, through
//! the daemon's control socket — including a destination the scheduler had marked dead.
//! `postqueue -s site` and `postqueue -i id` narrow the flush to one site or one message.

use std::time::{Duration, Instant};

use testkit::*;

/// Long enough that nothing is retried on its own while a test runs, however slow the box.
const BACKOFF: &str = "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

/// How long flushed mail may take to arrive: only the flush can send it within the hour
/// of backoff, so the wait can be as generous as any other (a loaded CI box is slow).
const PROMPT: Duration = DEADLINE;

#[test]
fn postqueue_f_sends_deferred_mail_at_once_when_the_destination_is_back() {
    let port = free_port(); // down for now
    let world = World::builder().smtp().peer(&port).config(BACKOFF).start();
    for i in 0..3 {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("flush-{i}")),
        );
    }
    world.wait_lines(&["to=<someone@far.example>", "status=deferred"], 3);
    let sink = Sink::start_on(&world.env.root, port, &[]);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.messages(), 0, "not retried before its time");
    assert_eq!(world.queue().len(), 3);

    let asked = Instant::now();
    world.run_ok(&["postqueue", "-f"]);
    let arrived = poll_for(PROMPT, || sink.messages() >= 3);
    assert!(
        arrived,
        "flushed mail did not arrive within {PROMPT:?}; log:\n{}",
        tail(&world.env.log(), 20)
    );
    eprintln!(
        "postqueue -f: 3 messages delivered {:?} after the flush",
        asked.elapsed()
    );
    world.env.wait_queue_empty();
    assert_eq!(world.lines_with(&["flush requested"]).len(), 1);
    assert_eq!(
        world
            .lines_with(&["to=<someone@far.example>", "status=sent"])
            .len(),
        3
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages(), 3, "each once");
}

#[test]
fn sendmail_q_flushes_too() {
    let peer = Peer::start_with(
        OnConnect::Greet,
        rcpt_reply("421 4.3.2 Service shutting down, come back later"),
    );
    let world = World::builder().smtp().peer(&peer).config(BACKOFF).start();
    world.submit(
        "sender@test.example",
        &["someone@far.example"],
        &message("sendmail-q"),
    );
    world.wait_lines(&["to=<someone@far.example>", "status=deferred"], 1);
    peer.set_rcpt(accept_all());
    std::thread::sleep(Duration::from_millis(1000));
    assert!(peer.messages().is_empty(), "not retried before its time");

    let out = world.env.sendmail(&["-q"], b"");
    assert_success(&out, "sendmail -q");
    assert!(
        poll_for(PROMPT, || peer.messages().len() == 1),
        "sendmail -q did not flush; log:\n{}",
        tail(&world.env.log(), 20)
    );
    world.env.wait_queue_empty();
}

/// Two sites, both down (so both are marked dead), two messages each; then both come back.
/// Returns the world, the sinks of a.example and b.example, and the queue IDs of b's mail.
fn two_dead_sites() -> (World, Sink, Sink, Vec<String>) {
    let (pa, pb) = (free_port(), free_port());
    let probe = TestEnv::new();
    let transport = probe.root.join("transport");
    std::fs::write(
        &transport,
        format!("a.example smtp:[127.0.0.1]:{pa}\nb.example smtp:[127.0.0.1]:{pb}\n"),
    )
    .unwrap();
    let world = World::started(&format!(
        "transport_maps = [\"{}\"]\n{BACKOFF}",
        transport.display()
    ));
    for site in ["a", "b"] {
        for i in 0..2 {
            let rcpt = format!("someone@{site}.example");
            world.submit(
                "sender@test.example",
                &[&rcpt],
                &message(&format!("{site}-{i}")),
            );
        }
    }
    world.wait_lines(&["status=deferred"], 4);
    let sink_a = Sink::start_on(&world.env.root, pa, &[]);
    let sink_b = Sink::start_on(&world.env.root, pb, &[]);
    let b_ids = world
        .queue()
        .into_iter()
        .filter(|(_, _, r)| r.iter().any(|a| a.ends_with("@b.example")))
        .map(|(_, id, _)| id)
        .collect();
    (world, sink_a, sink_b, b_ids)
}

#[test]
fn postqueue_s_and_i_flush_one_site_or_one_message_even_when_marked_dead() {
    let (world, sink_a, sink_b, b_ids) = two_dead_sites();
    assert_eq!(b_ids.len(), 2);
    world.run_ok(&["postqueue", "-s", "a.example"]);
    assert!(
        poll_for(PROMPT, || sink_a.messages() >= 2),
        "a.example was not flushed; log:\n{}",
        tail(&world.env.log(), 20)
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink_b.messages(), 0, "only the site asked for");

    world.run_ok(&["postqueue", "-i", &b_ids[0]]);
    assert!(
        poll_for(PROMPT, || sink_b.messages() >= 1),
        "the message was not flushed; log:\n{}",
        tail(&world.env.log(), 20)
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink_b.messages(), 1, "only the message asked for");
    // The sink counts a message before the daemon has removed it from the queue.
    world.wait_lines(&[": removed"], 3);
    let left = world.queue();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].1, b_ids[1]);
}

#[test]
fn sendmail_qr_and_qi_narrow_the_flush_the_same_way() {
    let (world, sink_a, sink_b, b_ids) = two_dead_sites();
    let out = world.env.sendmail(&["-qRa.example"], b"");
    assert_success(&out, "sendmail -qRa.example");
    assert!(poll_for(PROMPT, || sink_a.messages() >= 2));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink_b.messages(), 0, "only the site asked for");
    let out = world.env.sendmail(&[&format!("-qI{}", b_ids[1])], b"");
    assert_success(&out, "sendmail -qI");
    assert!(poll_for(PROMPT, || sink_b.messages() >= 1));
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(sink_b.messages(), 1, "only the message asked for");
    world.wait_lines(&[": removed"], 3);
    assert_eq!(world.queue().len(), 1);
}
