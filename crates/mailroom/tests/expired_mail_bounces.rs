//! Issue 4, "expired then bounced": a destination that always answers 4xx. The message is
//! retried on schedule (several `status=deferred` lines), and once it is older than
//! `maximal_queue_lifetime` (seconds here) the sender gets a bounce with a 4.x.x status,
//! the word "expired" and the last error. A null-sender message uses
//! `bounce_queue_lifetime` instead and ends at the postmaster, never bounced to `<>`.

use std::time::Duration;

use testkit::*;

const TEMPFAIL: &str = "451 4.3.0 <someone@far.example>: Temporary lookup failure";

#[test]
fn a_message_past_maximal_queue_lifetime_bounces_with_a_4xx_status() {
    let peer = Peer::start_with(OnConnect::Greet, rcpt_reply(TEMPFAIL));
    let world = World::builder()
        .smtp()
        .peer(&peer)
        // Retries come 1-2 s apart: 8 s leaves room for two deferrals before the expiry
        // even when a loaded box starts an attempt seconds late (3 s did not).
        .config("maximal_queue_lifetime = \"8s\"\n")
        .start();
    world.submit(
        "sender@test.example",
        &["someone@far.example"],
        &message("never-arrives"),
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();

    let deferred = world.lines_with(&["to=<someone@far.example>", "status=deferred"]);
    assert!(
        deferred.len() >= 2,
        "retried on schedule before expiring: {deferred:?}"
    );
    let expired = world.lines_with(&["to=<someone@far.example>", "status=expired"]);
    assert_eq!(expired.len(), 1, "{}", tail(&world.env.log(), 20));
    assert!(peer.messages().is_empty());

    let bounces = world.env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1, "one bounce");
    assert!(bounces[0].from_line.starts_with("MAILER-DAEMON "));
    let dsn = parse_dsn(&bounces[0].raw);
    assert_eq!(dsn["content_type"], "multipart/report", "{dsn}");
    assert_eq!(dsn["report_type"], "delivery-status", "{dsn}");
    assert_eq!(
        field(&dsn["per_message"], "Reporting-MTA"),
        "dns; test.example"
    );
    assert!(!field(&dsn["per_message"], "Arrival-Date").is_empty());
    let blocks = dsn["recipients"].as_array().unwrap();
    assert_eq!(blocks.len(), 1, "{dsn}");
    let block = &blocks[0];
    assert_eq!(
        field(block, "Final-Recipient"),
        "rfc822; someone@far.example"
    );
    assert_eq!(field(block, "Action"), "failed");
    let status = field(block, "Status");
    assert!(
        status.starts_with("4.") && status.split('.').count() == 3,
        "an expired deferral keeps a 4.x.x status: {dsn}"
    );
    let diagnostic = field(block, "Diagnostic-Code");
    assert!(
        diagnostic.contains("expired") && diagnostic.contains("451 4.3.0"),
        "says it expired and gives the last error: {diagnostic:?}"
    );
    assert!(field(&dsn, "returned").contains("Subject: never-arrives"));

    // Gone for good: no more attempts after the bounce.
    let attempts = peer.rcpt_attempts().len();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        peer.rcpt_attempts().len(),
        attempts,
        "no retry after expiry"
    );
    assert_eq!(world.env.count_mbox("sender"), 1, "one bounce, not two");
}

#[test]
fn a_null_sender_message_expires_at_bounce_queue_lifetime_to_the_postmaster() {
    let peer = Peer::start_with(OnConnect::Greet, rcpt_reply(TEMPFAIL));
    let world = World::builder()
        .smtp()
        .peer(&peer)
        .config("maximal_queue_lifetime = \"1h\"\nbounce_queue_lifetime = \"2s\"\n")
        .start();
    world.submit("", &["someone@far.example"], &message("a-bounce-itself"));
    world.env.wait_mbox("postmaster", 1);
    world.env.wait_queue_empty();
    assert_eq!(
        world
            .lines_with(&["to=<someone@far.example>", "status=expired"])
            .len(),
        1
    );
    let notices = world.env.mbox_messages("postmaster");
    assert_eq!(notices.len(), 1, "one postmaster notice");
    let dsn = parse_dsn(&notices[0].raw);
    let block = &dsn["recipients"][0];
    assert_eq!(
        field(block, "Final-Recipient"),
        "rfc822; someone@far.example"
    );
    assert!(field(block, "Status").starts_with("4."), "{dsn}");
    assert!(field(block, "Diagnostic-Code").contains("expired"), "{dsn}");
}
