//! `smtpd_forbid_unauth_pipelining` (Postfix 3.9, default yes): a client that sends more
//! than it may before the server's reply — message content after DATA before the 354 (the
//! hannob/smtpsmug "pipelining" test), anything before the greeting — gets
//! `554 5.5.0 Error: SMTP protocol synchronization` and is disconnected, while RFC 2920
//! pipelining (MAIL, RCPT, DATA in one packet) keeps working.

use testkit::*;

const SYNC: &str = "5.5.0 Error: SMTP protocol synchronization";

fn message(subject: &str) -> String {
    format!("From: a@example.org\r\nSubject: {subject}\r\n\r\nbody\r\n")
}

/// smtpsmug's sequence: message 1 ends, and the whole second transaction, message
/// content included, follows in the same write.
#[test]
fn content_pipelined_after_data_is_refused_as_smtpsmug_tests() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.start_transaction("a@example.org", &["alice@localhost"]);
    c.ok("DATA", 354);
    let mut burst = message("one");
    burst.push_str(".\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n");
    burst.push_str(&message("two"));
    burst.push_str(".\r\n");
    c.send(burst.as_bytes());
    c.expect(250, "queued as");
    c.expect(250, "2.1.0");
    c.expect(250, "2.1.5");
    c.expect(554, SYNC);
    assert!(c.is_closed(), "the client is disconnected");
    smtp.env.wait_log(
        "improper command pipelining after DATA from unknown[127.0.0.1]: From: a@example.org",
        1,
    );
    smtp.env.wait_mbox("alice", 1);
    let subjects: Vec<_> = smtp
        .env
        .mbox_messages("alice")
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    assert_eq!(
        subjects,
        ["one"],
        "the smuggled second message is not queued"
    );
}

/// Talking before the greeting: caught before the 220 (`after CONNECT`), or, should the
/// bytes arrive just after it, at the EHLO that has a NOOP behind it.
#[test]
fn a_client_that_talks_first_is_disconnected() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.send(b"EHLO early.example\r\nNOOP\r\n");
    let mut reply = c.reply();
    if reply.code == 220 {
        reply = c.reply();
    }
    assert_eq!(reply.code, 554, "{}", reply.text());
    assert!(reply.text().contains(SYNC), "{}", reply.text());
    assert!(c.is_closed());
    let log = smtp.env.log();
    assert!(
        log.contains(
            "improper command pipelining after CONNECT from unknown[127.0.0.1]: EHLO early.example"
        ) || log.contains("improper command pipelining after EHLO from unknown[127.0.0.1]: NOOP"),
        "{}",
        tail(&log, 10)
    );
}

/// RFC 2920 pipelining is not a violation: MAIL, RCPT and DATA in one write, and QUIT
/// right behind the end of data. swaks --pipeline too.
#[test]
fn rfc2920_pipelining_still_works() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO client.example", 250);
    c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n");
    c.expect(250, "2.1.0");
    c.expect(250, "2.1.5");
    c.expect(250, "2.1.5");
    c.expect(354, "");
    c.send(format!("{}.\r\nQUIT\r\n", message("pipelined")).as_bytes());
    c.expect(250, "queued as");
    c.expect(221, "");
    let out = smtp.swaks(&[
        "--pipeline",
        "--to",
        "carol@localhost",
        "--from",
        "a@example.org",
    ]);
    assert_success(&out, "swaks --pipeline");
    for user in ["alice", "bob", "carol"] {
        smtp.env.wait_mbox(user, 1);
    }
    assert!(smtp.env.log_lines("improper command pipelining").is_empty());
}

/// `smtpd_forbid_unauth_pipelining = no` turns the check off (Postfix before 3.9).
#[test]
fn the_check_can_be_turned_off() {
    let smtp = World::started("smtpd_forbid_unauth_pipelining = false");
    let mut c = smtp.client();
    c.expect(220, "");
    c.send(b"EHLO x\r\nNOOP\r\n");
    c.expect(250, "");
    c.expect(250, "2.0.0");
    c.ok("QUIT", 221);
}
