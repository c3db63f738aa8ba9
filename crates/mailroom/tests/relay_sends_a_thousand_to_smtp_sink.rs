//! Issue 4, "sent": the issue's own example. `relayhost = "[127.0.0.1]:PORT"` (brackets: no
//! MX lookup) pointing at Postfix's `smtp-sink`; `smtp-source` pushes 1,000 messages into
//! mailroom's SMTP listener; the queue empties, every recipient has a `status=sent` log line,
//! and the sink counted exactly 1,000 messages.

use std::process::Command;

use testkit::*;

#[test]
fn a_thousand_messages_relayed_to_smtp_sink() {
    let root = TestEnv::new(); // only a directory for the sink's counters
    let sink = Sink::start(&root.root, &[]);
    let world = World::builder().smtp().peer(&sink).start();

    let out = run_with_input(
        Command::new("smtp-source").args([
            "-s",
            "5",
            "-m",
            "1000",
            "-t",
            "someone@example.net",
            &format!("127.0.0.1:{}", world.port),
        ]),
        b"",
    );
    assert_success(&out, "smtp-source");

    wait_until("smtp-sink to count 1000 messages", || {
        sink.messages() >= 1000
    });
    world.env.wait_queue_empty();
    let sent = world.wait_lines(&["to=<someone@example.net>", "status=sent"], 1000);
    assert_eq!(sent.len(), 1000, "one status=sent line per message");
    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", sink.port);
    assert!(
        sent.iter()
            .all(|l| l.contains(&relay) && l.contains("dsn=2.0.0")),
        "every line names the sink as relay: {}",
        sent[0]
    );
    assert!(
        world.lines_with(&["status=deferred"]).is_empty()
            && world.lines_with(&["status=bounced"]).is_empty(),
        "nothing deferred or bounced:\n{}",
        tail(&world.env.log(), 20)
    );
    // Nothing more arrives later: exactly 1,000, not one duplicate.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(sink.messages(), 1000, "the sink counted exactly 1,000");
    assert_eq!(world.env.mailq().trim(), "Mail queue is empty");
}
