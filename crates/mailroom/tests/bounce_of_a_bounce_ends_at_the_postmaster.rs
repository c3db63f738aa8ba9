//! Issue 4, "a bounce to a bouncing sender" (DESIGN invariant 5: no loops, no bounce
//! storms). A relay that answers 550 to every recipient: the message bounces, its bounce
//! (null sender) to the sender's remote domain bounces too, and that ends as one notice to
//! the postmaster — nothing loops, the queue empties. If even the postmaster notice cannot be
//! delivered, it is dropped: there is no third level.

use std::sync::Arc;
use std::time::Duration;

use testkit::*;

fn reject_everything() -> Peer {
    Peer::start_with(
        OnConnect::Greet,
        Arc::new(|rcpt: &str| {
            format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        }),
    )
}

#[test]
fn a_bounce_that_bounces_ends_at_the_postmaster_once() {
    let peer = reject_everything();
    let world = World::builder().smtp().peer(&peer).start();
    world.submit(
        "victim@bouncing.example",
        &["someone@far.example"],
        &message("doomed"),
    );
    world.env.wait_mbox("postmaster", 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1500)); // a loop would show by now

    assert_eq!(
        peer.rcpt_attempts(),
        ["someone@far.example", "victim@bouncing.example"],
        "the message, then its bounce, each tried once"
    );
    assert!(peer.messages().is_empty());
    let bounced = world.lines_with(&["status=bounced"]);
    assert_eq!(bounced.len(), 2, "{bounced:?}");
    assert_eq!(
        world
            .lines_with(&["sender non-delivery notification"])
            .len(),
        2
    );

    let notices = world.env.mbox_messages("postmaster");
    assert_eq!(notices.len(), 1, "one postmaster notice");
    assert!(notices[0].from_line.starts_with("MAILER-DAEMON "));
    let dsn = parse_dsn(&notices[0].raw);
    assert_eq!(dsn["content_type"], "multipart/report", "{dsn}");
    let blocks = dsn["recipients"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{dsn}");
    assert_eq!(
        field(&blocks[0], "Final-Recipient"),
        "rfc822; victim@bouncing.example"
    );
    assert_eq!(field(&blocks[0], "Action"), "failed");
    assert_eq!(field(&blocks[0], "Status"), "5.1.1");
    // The notice returns the failed bounce, which itself names the original recipient.
    let returned = field(&dsn, "returned");
    assert!(returned.contains("someone@far.example"), "{dsn}");
    assert_eq!(world.env.mailq().trim(), "Mail queue is empty");
}

#[test]
fn a_postmaster_notice_that_fails_too_is_dropped_not_bounced() {
    let peer = reject_everything();
    let world = World::builder()
        .smtp()
        .peer(&peer)
        .config("2bounce_notice_recipient = \"pm@bouncing.example\"\n")
        .start();
    world.submit(
        "victim@bouncing.example",
        &["someone@far.example"],
        &message("doomed-twice"),
    );
    world.wait_lines(&["postmaster notice undeliverable"], 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        peer.rcpt_attempts(),
        [
            "someone@far.example",
            "victim@bouncing.example",
            "pm@bouncing.example"
        ],
        "message, bounce, postmaster notice: once each, then nothing"
    );
    assert_eq!(world.lines_with(&["status=bounced"]).len(), 3);
    assert_eq!(world.env.mailq().trim(), "Mail queue is empty");
}

/// A regression: the postmaster's alias pointed at an address that fails. The postmaster
/// notice was forwarded as ordinary mail, its failure made a new notice to the postmaster,
/// which was forwarded again — dozens of bounces a second, without end. A forwarded notice
/// is still a notice: when it fails it is dropped.
#[test]
fn a_postmaster_notice_forwarded_by_an_alias_to_a_failing_address_does_not_loop() {
    let peer = reject_everything();
    let mut world = World::builder().smtp().peer(&peer).build();
    std::fs::write(
        world.env.aliases_file(),
        "postmaster: pm@bouncing.example\n",
    )
    .unwrap();
    world.start();
    world.submit(
        "victim@bouncing.example",
        &["someone@far.example"],
        &message("doomed-forwarded"),
    );
    world.wait_lines(&["postmaster notice undeliverable"], 1);
    world.env.wait_queue_empty();
    std::thread::sleep(Duration::from_millis(2000)); // a loop would show by now
    assert_eq!(
        peer.rcpt_attempts(),
        [
            "someone@far.example",
            "victim@bouncing.example",
            "pm@bouncing.example"
        ],
        "message, bounce, forwarded postmaster notice: once each, then nothing"
    );
    assert_eq!(
        world.lines_with(&["postmaster notice undeliverable"]).len(),
        1
    );
    assert_eq!(world.env.mailq().trim(), "Mail queue is empty");
}
