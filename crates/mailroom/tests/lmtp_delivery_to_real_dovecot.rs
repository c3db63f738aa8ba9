//! Issue 11 part 4: mail handed to a real Dovecot over LMTP (Debian's dovecot-lmtpd, its own
//! configuration under a temp dir, see `testkit::dovecot`). Local users through
//! `mailbox_transport` on Dovecot's unix socket; a virtual mailbox domain through
//! `virtual_transport` on its TCP port, with one recipient over quota in the same LMTP
//! session (552 after the dot: bounced with a DSN, the other delivered); a 451 from Dovecot
//! and a stopped Dovecot defer, and everything arrives once Dovecot is back.

use testkit::dovecot::{skip_unless_dovecot, Dovecot, BROKEN_MAIL};
use testkit::*;

/// A body bigger than the 1K quota of the `full` user.
fn big_message(subject: &str) -> String {
    format!("Subject: {subject}\n\n{}\n", "quota-filler ".repeat(300))
}

#[test]
fn local_users_reach_dovecot_through_mailbox_transport_on_its_unix_socket() {
    if skip_unless_dovecot() {
        return;
    }
    let dovecot = Dovecot::start(&[("alice", "")]);
    let env = TestEnv::with_config(&format!(
        "mailbox_transport = \"lmtp:unix:{}\"\n",
        dovecot.socket.display()
    ));
    let _daemon = env.start();
    env.send_ok(
        &["-f", "sender@test.example", "alice@test.example"],
        message("to-dovecot").as_bytes(),
    );
    let text = dovecot.wait_messages("alice", 1);
    assert!(text.contains("Subject: to-dovecot"), "{text}");
    assert!(
        text.contains("Return-Path: <sender@test.example>"),
        "{text}"
    );
    let relay = format!("relay=test.example[{}]", dovecot.socket.display());
    let lines = env.wait_log("to=<alice@test.example>", 1);
    assert!(
        lines[0].contains(&relay)
            && lines[0].contains("status=sent")
            && lines[0].contains("mailroom/lmtp["),
        "logged like Postfix's lmtp(8): {lines:?}"
    );
    assert!(
        lines[0].contains("dsn=2.0.0") && lines[0].contains("Saved"),
        "{lines:?}"
    );
    assert!(
        !env.mbox("alice").exists(),
        "the local agent did not deliver it too"
    );
}

#[test]
fn one_lmtp_session_delivers_to_one_recipient_and_bounces_the_one_over_quota() {
    if skip_unless_dovecot() {
        return;
    }
    let dovecot = Dovecot::start(&[("alice", ""), ("full", "userdb_quota_rule=*:storage=1K")]);
    let env = TestEnv::with_config(&format!(
        "virtual_mailbox_domains = [\"virt.example\"]\n\
         virtual_transport = \"lmtp:inet:127.0.0.1:{}\"\n",
        dovecot.port
    ));
    let _daemon = env.start();
    env.send_ok(
        &[
            "-f",
            "sender@test.example",
            "alice@virt.example",
            "full@virt.example",
        ],
        big_message("two-recipients").as_bytes(),
    );
    let text = dovecot.wait_messages("alice", 1);
    assert!(text.contains("Subject: two-recipients"), "{text}");
    env.wait_mbox("sender", 1);
    let bounces = env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1, "one bounce");
    let dsn = parse_dsn(&bounces[0].raw);
    let blocks = dsn["recipients"].as_array().expect("recipient blocks");
    assert_eq!(blocks.len(), 1, "only the recipient over quota: {dsn}");
    assert_eq!(
        field(&blocks[0], "Final-Recipient"),
        "rfc822; full@virt.example"
    );
    assert_eq!(field(&blocks[0], "Status"), "5.2.2");
    let diagnostic = field(&blocks[0], "Diagnostic-Code");
    assert!(
        diagnostic.contains("552 5.2.2") && diagnostic.contains("Quota exceeded"),
        "{diagnostic}"
    );
    assert_eq!(dovecot.count("full"), 0);

    let relay = format!("relay=127.0.0.1[127.0.0.1]:{}", dovecot.port);
    let sent = env.log_lines("to=<alice@virt.example>");
    let bounced = env.log_lines("to=<full@virt.example>");
    assert!(
        sent.iter()
            .any(|l| l.contains(&relay) && l.contains("status=sent")),
        "{sent:?}"
    );
    assert!(
        bounced
            .iter()
            .any(|l| l.contains(&relay) && l.contains("status=bounced") && l.contains("dsn=5.2.2")),
        "{bounced:?}"
    );
    // Dovecot names each session (`lmtp(alice@…)<pid><SESSION>`) and each further recipient
    // of it (`<SESSION:R2>`).
    let log = dovecot.log();
    let session = log
        .lines()
        .find(|l| l.contains("lmtp(alice@virt.example)") && l.contains("saved mail"))
        .and_then(|l| l.split('<').nth(2))
        .and_then(|s| s.split('>').next())
        .unwrap_or_else(|| panic!("alice's delivery in Dovecot's log:\n{log}"));
    assert!(
        log.lines().any(|l| l.contains("lmtp(full@virt.example)")
            && l.contains(&format!("<{session}:R"))
            && l.contains("Quota exceeded")),
        "both recipients in one LMTP session {session}:\n{log}"
    );
}

#[test]
fn a_451_from_dovecot_and_a_stopped_dovecot_defer_and_nothing_is_lost() {
    if skip_unless_dovecot() {
        return;
    }
    let mut dovecot = Dovecot::start(&[("alice", ""), ("broken", BROKEN_MAIL)]);
    let env = TestEnv::new();
    let transport = env.root.join("transport");
    std::fs::write(
        &transport,
        format!("lmtp.example lmtp:[127.0.0.1]:{}\n", dovecot.port),
    )
    .unwrap();
    env.write_config(&format!("transport_maps = [\"{}\"]\n", transport.display()));
    let _daemon = env.start();

    env.send_ok(
        &["-f", "sender@test.example", "broken@lmtp.example"],
        message("tempfail").as_bytes(),
    );
    let lines = env.wait_log("to=<broken@lmtp.example>", 1);
    assert!(
        lines[0].contains("status=deferred") && lines[0].contains("451 4.2.0"),
        "Dovecot's 451 defers: {lines:?}"
    );

    dovecot.stop();
    env.send_ok(
        &["-f", "sender@test.example", "alice@lmtp.example"],
        message("while-down").as_bytes(),
    );
    // Refused, or held back by the dead mark that Dovecot's shutdown left (the retry of the
    // 451 may have met it mid-shutdown): deferred either way.
    let lines = env.wait_log("to=<alice@lmtp.example>", 1);
    assert!(
        lines[0].contains("status=deferred") && lines[0].contains("dsn=4."),
        "a stopped Dovecot defers: {lines:?}"
    );
    assert!(env.mailq().contains("alice@lmtp.example"), "still queued");

    dovecot.resume();
    let text = dovecot.wait_messages("alice", 1);
    assert!(text.contains("Subject: while-down"), "{text}");
    wait_until("alice's delivery logged as sent", || {
        env.log_lines("to=<alice@lmtp.example>")
            .iter()
            .any(|l| l.contains("status=sent"))
    });
    assert_eq!(dovecot.count("alice"), 1, "delivered once");
    let queue = env.mailq();
    assert!(!queue.contains("alice@lmtp.example"), "{queue}");
    assert!(
        queue.contains("broken@lmtp.example"),
        "the 451 is retried, not bounced: {queue}"
    );
    assert!(!env.mbox("sender").exists(), "no bounce for deferrals");
}
