//! No loops, no bounce storms (DESIGN invariant 5): an alias loop and a message over the
//! hop count bounce to the sender with status 5.4.6 instead of looping; a bounce that
//! cannot be delivered (null sender, or an unknown sender) ends as one notice to the
//! postmaster and nothing more.

use testkit::*;

/// The one recipient block of a bounce, checked for the common fields.
fn single_failure(dsn: &serde_json::Value) -> &serde_json::Value {
    assert_eq!(dsn["content_type"], "multipart/report", "{dsn}");
    assert_eq!(dsn["report_type"], "delivery-status", "{dsn}");
    let recipients = dsn["recipients"].as_array().expect("recipient blocks");
    assert_eq!(recipients.len(), 1, "{dsn}");
    assert_eq!(recipients[0]["Action"], "failed", "{dsn}");
    &recipients[0]
}

#[test]
fn an_alias_loop_bounces_with_5_4_6_instead_of_looping() {
    let env = TestEnv::new();
    std::fs::write(env.aliases_file(), "a: b\nb: a\n").unwrap();
    let _daemon = env.start();
    env.send_ok(
        &["-i", "-f", "owner@test.example", "a@localhost"],
        b"Subject: round and round\n\nwho gets this?\n",
    );
    env.wait_mbox("owner", 1);
    env.wait_queue_empty();

    let bounces = env.mbox_messages("owner");
    assert_eq!(bounces.len(), 1, "exactly one bounce");
    assert!(
        bounces[0].from_line.starts_with("MAILER-DAEMON "),
        "null sender: {:?}",
        bounces[0].from_line
    );
    let dsn = parse_dsn(&bounces[0].raw);
    let failure = single_failure(&dsn);
    assert_eq!(failure["Status"], "5.4.6", "{dsn}");
    assert_eq!(failure["Final-Recipient"], "rfc822; a@localhost", "{dsn}");
    let diagnostic = failure["Diagnostic-Code"].as_str().unwrap_or_default();
    assert!(diagnostic.contains("loop"), "{dsn}");
    assert!(
        dsn["returned"]
            .as_str()
            .unwrap()
            .contains("Subject: round and round"),
        "{dsn}"
    );
    // Nothing was delivered to the looping names, and it happened once.
    assert_eq!(env.count_mbox("a") + env.count_mbox("b"), 0);
    assert_eq!(
        env.log_lines("status=bounced").len(),
        1,
        "log:\n{}",
        env.log()
    );
    assert_eq!(
        env.log_lines("status=sent").len(),
        1,
        "only the bounce is delivered:\n{}",
        env.log()
    );
}

#[test]
fn a_message_already_delivered_to_an_address_is_not_delivered_there_again() {
    let env = TestEnv::new();
    let _daemon = env.start();
    env.send_ok(
        &["-i", "-f", "owner@test.example", "carol@localhost"],
        b"Delivered-To: carol@localhost\nSubject: been here\n\nloop\n",
    );
    env.wait_mbox("owner", 1);
    env.wait_queue_empty();
    assert_eq!(env.count_mbox("carol"), 0);
    let dsn = parse_dsn(&env.mbox_messages("owner")[0].raw);
    assert_eq!(single_failure(&dsn)["Status"], "5.4.6", "{dsn}");
}

#[test]
fn too_many_received_headers_bounce_as_too_many_hops() {
    let env = TestEnv::with_config("hopcount_limit = 5\n");
    let _daemon = env.start();
    let received = |n: usize| -> String {
        (0..n)
            .map(|i| format!("Received: from hop{i}.example by hop{}.example; Mon, 1 Jan 2024 00:00:0{i} +0000\n", i + 1))
            .collect()
    };
    // Under the limit (4 + our own = 5 hops): delivered.
    let ok = format!("{}Subject: few hops\n\nfine\n", received(4));
    env.send_ok(
        &["-i", "-f", "owner@test.example", "dave@localhost"],
        ok.as_bytes(),
    );
    // More Received: headers than hopcount_limit: bounced, never delivered.
    let looping = format!("{}Subject: many hops\n\nlooping\n", received(6));
    env.send_ok(
        &["-i", "-f", "owner@test.example", "dave@localhost"],
        looping.as_bytes(),
    );
    env.wait_mbox("dave", 1);
    env.wait_mbox("owner", 1);
    env.wait_queue_empty();

    let delivered = env.mbox_messages("dave");
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].subject.as_deref(), Some("few hops"));
    let bounces = env.mbox_messages("owner");
    assert_eq!(bounces.len(), 1);
    let dsn = parse_dsn(&bounces[0].raw);
    let failure = single_failure(&dsn);
    assert_eq!(failure["Status"], "5.4.6", "{dsn}");
    assert_eq!(
        failure["Final-Recipient"], "rfc822; dave@localhost",
        "{dsn}"
    );
    assert!(
        failure["Diagnostic-Code"]
            .as_str()
            .unwrap_or_default()
            .contains("too many hops"),
        "{dsn}"
    );
    assert!(
        dsn["returned"]
            .as_str()
            .unwrap()
            .contains("Subject: many hops"),
        "{dsn}"
    );
}

#[test]
fn undeliverable_bounces_end_at_the_postmaster_once() {
    // Only passwd users are known; the postmaster is the user running the test.
    let postmaster = current_user();
    let env = TestEnv::with_config("local_recipient_maps = [\"unix:passwd.byname\"]\n");
    std::fs::write(env.aliases_file(), format!("postmaster: {postmaster}\n")).unwrap();
    let _daemon = env.start();

    // (1) A null-sender message to an unknown user: no bounce to <>, one postmaster notice.
    env.send_ok(
        &["-i", "-f", "", "nosuchuser@localhost"],
        b"Subject: from nobody\n\nx\n",
    );
    env.wait_mbox(&postmaster, 1);
    env.wait_queue_empty();
    let notices = env.mbox_messages(&postmaster);
    assert_eq!(notices.len(), 1, "one postmaster notice");
    let dsn = parse_dsn(&notices[0].raw);
    let failure = single_failure(&dsn);
    assert_eq!(
        failure["Final-Recipient"], "rfc822; nosuchuser@localhost",
        "{dsn}"
    );
    assert_eq!(failure["Status"], "5.1.1", "{dsn}");
    assert!(
        dsn["subject"].as_str().unwrap().contains("Postmaster"),
        "{dsn}"
    );

    // (2) An unknown sender: its bounce is undeliverable too, so the postmaster gets one
    // notice about that bounce, and that is the end of it.
    env.send_ok(
        &["-i", "-f", "ghost@test.example", "nosuchuser@localhost"],
        b"Subject: from a ghost\n\ny\n",
    );
    env.wait_mbox(&postmaster, 2);
    env.wait_queue_empty();
    let notices = env.mbox_messages(&postmaster);
    assert_eq!(notices.len(), 2, "exactly one more notice");
    let dsn = parse_dsn(&notices[1].raw);
    assert_eq!(
        single_failure(&dsn)["Final-Recipient"],
        "rfc822; ghost@test.example",
        "{dsn}"
    );
    assert!(env.maildrop_files().is_empty());
    assert_eq!(env.mailq().trim(), "Mail queue is empty");
    // Two failed originals and one failed bounce; nothing bounced to <>.
    let bounced = env.log_lines("status=bounced");
    assert_eq!(bounced.len(), 3, "log:\n{}", env.log());
}
