//! Issue 4, "deferred then sent": the destination first answers 4xx (or is down), then
//! comes back. The log shows `status=deferred` and then `status=sent`, the message is
//! retried on its own (1 s backoff in the test configuration, no flush), and the peer
//! receives it exactly once.

use std::time::Duration;

use testkit::*;

#[test]
fn a_4xx_answer_defers_and_the_retry_delivers_once() {
    let peer = Peer::start_with(
        OnConnect::Greet,
        rcpt_reply("450 4.2.0 <someone@far.example>: try again later"),
    );
    let world = World::builder().smtp().peer(&peer).start();
    world.submit(
        "sender@test.example",
        &["someone@far.example"],
        &message("retry-me"),
    );

    let deferred = world.wait_lines(&["to=<someone@far.example>", "status=deferred"], 1);
    assert!(
        deferred[0].contains("said: 450 4.2.0") && deferred[0].contains("dsn=4.2.0"),
        "the deferral quotes the peer: {}",
        deferred[0]
    );
    let queue = world.queue();
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert!(
        matches!(queue[0].0.as_str(), "deferred" | "active"),
        "kept for the next retry: {queue:?}"
    );
    assert!(peer.messages().is_empty());

    peer.set_rcpt(accept_all());
    let sent = world.wait_lines(&["to=<someone@far.example>", "status=sent"], 1);
    world.env.wait_queue_empty();
    let log = world.env.log();
    let first_deferral = log.find("status=deferred").unwrap();
    let first_sent = log.find("status=sent").unwrap();
    assert!(first_deferral < first_sent, "deferred, then sent");
    assert!(sent[0].contains(&format!("relay=127.0.0.1[127.0.0.1]:{}", peer.port)));

    std::thread::sleep(Duration::from_millis(1500)); // a duplicate would show up by now
    let got = peer.messages();
    assert_eq!(got.len(), 1, "delivered exactly once");
    assert_eq!(got[0].recipients, ["someone@far.example"]);
    assert_eq!(got[0].sender, "sender@test.example");
    assert_eq!(got[0].header("Subject").as_deref(), Some("retry-me"));
    assert_eq!(world.lines_with(&["status=sent"]).len(), 1);
    assert!(world.lines_with(&["status=bounced"]).is_empty());
}

#[test]
fn a_destination_that_is_down_then_up_gets_the_message_once() {
    let port = free_port(); // nothing listens here yet
    let world = World::builder().smtp().peer(&port).start();
    world.submit(
        "sender@test.example",
        &["someone@far.example"],
        &message("down-then-up"),
    );
    let deferred = world.wait_lines(&["to=<someone@far.example>", "status=deferred"], 1);
    assert!(
        deferred[0].contains(&format!("connect to 127.0.0.1[127.0.0.1]:{port}"))
            && deferred[0].contains("Connection refused"),
        "Postfix's wording for a refused connection: {}",
        deferred[0]
    );

    let sink = Sink::start_on(&world.env.root, port, &[]);
    world.wait_lines(&["to=<someone@far.example>", "status=sent"], 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(sink.messages(), 1, "delivered exactly once");
    assert_eq!(world.lines_with(&["status=sent"]).len(), 1);
}
