//! `qmgr_message_active_limit`: 300 deferred messages flushed at once with the limit at 20
//! enter the active queue at most 20 at a time (the `/metrics` active gauge, sampled all
//! through the drain, never shows more), every one reaches Postfix's smtp-sink exactly
//! once, and a message submitted during the drain is delivered long before the backlog is
//! done (new mail takes turns with the deferred backlog, as Postfix's qmgr alternates its
//! incoming and deferred scans).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use testkit::*;

const BACKLOG: usize = 300;
const LIMIT: usize = 20;

#[test]
fn a_flushed_backlog_enters_the_active_queue_twenty_at_a_time_and_new_mail_goes_first() {
    let api = HttpApi::new();
    let port = free_port(); // down for now: everything is deferred
    let config = format!(
        "minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n\
         qmgr_message_active_limit = {LIMIT}\n\
         smtp_destination_concurrency_limit = 50\n{}",
        api.config()
    );
    let world = World::builder().smtp().peer(&port).config(&config).start();
    for i in 0..BACKLOG {
        world.submit(
            "sender@test.example",
            &["someone@far.example"],
            &message(&format!("backlog-{i}")),
        );
    }
    world.wait_lines(&["to=<someone@far.example>", "status=deferred"], BACKLOG);
    assert_eq!(world.queue().len(), BACKLOG);

    // The sink answers each DATA after a second: the drain takes long enough to watch.
    let (sink, dumps) = Sink::start_dumping(
        &world.env.root,
        std::net::Ipv4Addr::LOCALHOST,
        port,
        &["-w", "1"],
    );
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (api_port, done) = (api.port, done.clone());
        std::thread::spawn(move || {
            let (mut peak, mut samples) = (0.0f64, 0);
            while !done.load(Ordering::Relaxed) {
                let text = http_request(api_port, "GET", "/metrics", None, None).body;
                if let Some(v) = metric_value(&text, "postfix_showq_queue_depth{queue=\"active\"}")
                {
                    peak = peak.max(v);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            (peak, samples)
        })
    };

    world.run_ok(&["postqueue", "-f"]);
    assert!(
        poll_for(DEADLINE, || sink.messages() >= LIMIT),
        "the flush did not start the drain; log:\n{}",
        tail(&world.env.log(), 20)
    );
    // New mail while 280 flushed messages still wait for room.
    world.submit(
        "sender@test.example",
        &["fresh@far.example"],
        &message("fresh"),
    );
    world.wait_lines(&["to=<fresh@far.example>", "status=sent"], 1);
    let backlog_sent = world
        .lines_with(&["to=<someone@far.example>", "status=sent"])
        .len();
    eprintln!("new mail delivered after {backlog_sent} of {BACKLOG} flushed messages");
    assert!(
        backlog_sent <= BACKLOG / 2,
        "new mail waited behind the backlog: {backlog_sent} of {BACKLOG} went first"
    );

    world.env.wait_queue_empty();
    done.store(true, Ordering::Relaxed);
    let (peak, samples) = sampler.join().expect("sampler");
    eprintln!("active queue: peak {peak} over {samples} samples of /metrics");
    assert!(samples >= 20, "too few samples of /metrics: {samples}");
    assert!(
        peak <= LIMIT as f64,
        "{peak} messages active, qmgr_message_active_limit = {LIMIT}"
    );
    assert!(
        peak >= (LIMIT / 2) as f64,
        "the active queue never filled (peak {peak}): the test saw no drain"
    );

    // Each message exactly once at the sink, and logged sent once.
    sink.wait_sessions_closed();
    let got = messages_by_line(&dumps, "Subject: ");
    let twice: Vec<_> = got.iter().filter(|(_, &n)| n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(got.len(), BACKLOG + 1, "messages at the sink");
    assert!(got.contains_key("fresh"));
    let sent = world.lines_with(&["to=<someone@far.example>", "status=sent"]);
    assert_eq!(sent.len(), BACKLOG);
}
