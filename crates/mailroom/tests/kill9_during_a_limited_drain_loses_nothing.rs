//! `qmgr_message_active_limit` keeps the waiting mail in the store, not in memory: `kill -9`
//! in the middle of the drain of a flushed backlog (limit 20), then a restart and another
//! flush, and every message reaches Postfix's smtp-sink; a message arrives twice only if it
//! was in the active queue at the kill, so at most 20 duplicates.

use std::collections::BTreeMap;
use std::time::Duration;

use testkit::*;

const BACKLOG: usize = 200;
const LIMIT: usize = 20;

/// How many dumped messages carry each Subject.
fn subjects(dumps: &std::path::Path) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for name in list_dir(dumps) {
        let text = std::fs::read(dumps.join(name)).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if let Some(s) = text.lines().find_map(|l| l.strip_prefix("Subject: ")) {
            *by.entry(s.trim().to_string()).or_insert(0) += 1;
        }
    }
    by
}

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
    let at_kill = subjects(&dumps).len();
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

    let got = subjects(&dumps);
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
