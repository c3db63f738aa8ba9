//! Issue 4, "bounced" and "mixed recipients": one message to three recipients at the same
//! relay, which answers 550 for one of them. Only that one bounces — an RFC 3464 report to
//! the (local) sender, read field by field with Python's `email` module — and the other two
//! are delivered, once.

use std::sync::Arc;

use testkit::*;

const BAD: &str = "bad@far.example";
const REJECT: &str = "550 5.1.1 <bad@far.example>: Recipient address rejected: User unknown";

/// Runs the scenario; returns the world, the peer and the one bounce, parsed.
fn mixed_recipients() -> (World, Peer, serde_json::Value, MboxMessage) {
    let peer = Peer::start_with(
        OnConnect::Greet,
        Arc::new(|rcpt: &str| match rcpt {
            BAD => REJECT.to_string(),
            _ => "250 2.1.5 Ok".to_string(),
        }),
    );
    let world = World::builder().smtp().peer(&peer).start();
    world.submit(
        "sender@test.example",
        &["good1@far.example", BAD, "good2@far.example"],
        &message("three-recipients"),
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();
    let bounces = world.env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1, "exactly one bounce");
    let dsn = parse_dsn(&bounces[0].raw);
    (world, peer, dsn, bounces[0].clone())
}

#[test]
fn only_the_rejected_recipient_bounces_and_the_others_are_delivered_once() {
    let (world, peer, dsn, bounce) = mixed_recipients();

    // The two good recipients, each once.
    let mut delivered = peer.delivered_to();
    delivered.sort();
    assert_eq!(delivered, ["good1@far.example", "good2@far.example"]);
    assert_eq!(peer.rcpt_attempts().iter().filter(|r| *r == BAD).count(), 1);
    assert_eq!(world.lines_with(&["status=sent", "@far.example>"]).len(), 2);
    assert_eq!(
        world
            .lines_with(&["to=<sender@test.example>", "status=sent"])
            .len(),
        1,
        "the bounce itself is delivered locally, once"
    );
    let bounced = world.lines_with(&["status=bounced"]);
    assert_eq!(bounced.len(), 1, "{bounced:?}");
    assert!(bounced[0].contains("to=<bad@far.example>") && bounced[0].contains("dsn=5.1.1"));

    // The bounce: null sender, a multipart/report with the three standard parts.
    assert!(
        bounce.from_line.starts_with("MAILER-DAEMON "),
        "null sender: {:?}",
        bounce.from_line
    );
    assert_eq!(dsn["content_type"], "multipart/report", "{dsn}");
    assert_eq!(dsn["report_type"], "delivery-status", "{dsn}");
    assert_eq!(
        dsn["parts"],
        serde_json::json!(["text/plain", "message/delivery-status", "message/rfc822"]),
        "{dsn}"
    );
    assert_eq!(dsn["to"], "sender@test.example", "{dsn}");
    assert!(
        field(&dsn, "human").contains("<bad@far.example>"),
        "the human part names the failed recipient: {dsn}"
    );

    // Per-message fields.
    let per_message = &dsn["per_message"];
    assert_eq!(
        field(per_message, "Reporting-MTA"),
        "dns; test.example",
        "{dsn}"
    );
    let arrival = field(per_message, "Arrival-Date");
    let parsed = python(
        "import sys, email.utils; print(email.utils.parsedate_to_datetime(sys.argv[1]).year)",
        &[arrival],
        b"",
    );
    assert!(
        String::from_utf8_lossy(&parsed)
            .trim()
            .parse::<u32>()
            .unwrap()
            >= 2024,
        "Arrival-Date is an RFC 5322 date: {arrival:?}"
    );

    // Exactly one recipient block: the rejected one.
    let blocks = dsn["recipients"].as_array().expect("recipient blocks");
    assert_eq!(
        blocks.len(),
        1,
        "only the rejected recipient is reported: {dsn}"
    );
    let block = &blocks[0];
    assert_eq!(field(block, "Final-Recipient"), "rfc822; bad@far.example");
    assert_eq!(field(block, "Action"), "failed");
    assert_eq!(field(block, "Status"), "5.1.1");
    let diagnostic = field(block, "Diagnostic-Code");
    assert!(
        diagnostic.contains("550 5.1.1") && diagnostic.contains("User unknown"),
        "the diagnostic quotes the remote reply: {diagnostic:?}"
    );

    // The original comes back whole (it is far below bounce_size_limit).
    let returned = field(&dsn, "returned");
    assert!(
        returned.contains("Subject: three-recipients")
            && returned.contains("body of three-recipients"),
        "{dsn}"
    );
}

#[test]
fn the_bounce_names_the_remote_mta_with_an_smtp_diagnostic() {
    let (_world, _peer, dsn, _) = mixed_recipients();
    let block = &dsn["recipients"][0];
    assert_eq!(field(block, "Remote-MTA"), "dns; 127.0.0.1", "{dsn}");
    assert!(
        field(block, "Diagnostic-Code").starts_with("smtp;")
            && field(block, "Diagnostic-Code").contains("550 5.1.1"),
        "RFC 3464 diagnostic type smtp with the remote reply: {dsn}"
    );
}
