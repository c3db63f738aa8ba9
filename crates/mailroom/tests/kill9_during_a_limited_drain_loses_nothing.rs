//! `qmgr_message_active_limit` keeps the waiting mail in the store, not in memory: `kill -9`
//! in the middle of the drain of a flushed backlog (limit 20), then a restart and another
//! flush, and every message reaches Postfix's smtp-sink; a message arrives twice only if it
//! was in the active queue at the kill, so at most 20 duplicates.

use std::time::Duration;

use testkit::*;

const BACKLOG: usize = 200;
const LIMIT: usize = 20;

#[test]
fn kill_dash_nine_mid_drain_then_a_restart_delivers_every_message() {
    let port = free_port(); // down for now: everything is deferred
    let config = format!(
        "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n\
         qmgr_message_active_limit = {LIMIT}\n"
    );
    let mut world = World::builder().smtp().peer(&port).config(&config).start();
    for i in 0..BACKLOG {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("backlog-{i}")),
        );
    }
    world.wait_lines(&["to=<someone@far.example>", "status=deferred"], BACKLOG);

    let (sink, dumps) = Sink::start_dumping(
        &world.env.root,
        std::net::Ipv4Addr::LOCALHOST,
        port,
        &["-w", "1"],
    );
    world.run_ok(&["postqueue", "-f"]);
    wait_until("the first deliveries of the drain", || {
        sink.messages() >= 2 * LIMIT
    });
    world.daemon.take().expect("the daemon").kill9();
    sink.wait_sessions_closed();
    let at_kill = messages_by_line(&dumps, "Subject: ").len();
    assert!(
        at_kill < BACKLOG,
        "all {BACKLOG} were delivered before the kill: the test proves nothing"
    );
    eprintln!("{at_kill} of {BACKLOG} at the sink at the kill");

    // Restarted, the deferred mail keeps its retry time (an hour away): flush again.
    world.start();
    world.run_ok(&["postqueue", "-f"]);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(500));
    sink.wait_sessions_closed();

    let got = messages_by_line(&dumps, "Subject: ");
    let missing: Vec<usize> = (0..BACKLOG)
        .filter(|i| !got.contains_key(&format!("backlog-{i}")))
        .collect();
    assert!(missing.is_empty(), "lost: {missing:?}");
    let duplicates: usize = got.values().map(|n| n - 1).sum();
    eprintln!("{duplicates} duplicates after the kill");
    assert!(
        duplicates <= LIMIT,
        "{duplicates} duplicates: more than the {LIMIT} messages the active queue may hold"
    );
}
