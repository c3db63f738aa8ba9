//! Hostile and broken clients: each gets the right reply code, nothing it sent is queued by
//! mistake, and the daemon keeps serving everyone else. Oversized messages, a 10,000-byte
//! line, NUL bytes, the published SMTP smuggling sequences (under both bare-newline
//! policies), open-relay attempts from outside `mynetworks`, error limits.

use std::net::Ipv4Addr;

use testkit::*;

/// A well-behaved client still gets its mail through.
fn still_serving(smtp: &World, user: &str) {
    let before = smtp.env.count_mbox(user);
    let mut c = smtp.client();
    c.start_transaction("good@example.org", &[&format!("{user}@localhost")]);
    c.ok("DATA", 354);
    c.send(b"Subject: good\r\n\r\nfine\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    smtp.env.wait_mbox(user, before + 1);
}

/// Every Subject: in `user`'s mbox.
fn subjects(smtp: &World, user: &str) -> Vec<String> {
    smtp.env
        .mbox_messages(user)
        .into_iter()
        .filter_map(|m| m.subject)
        .collect()
}

#[test]
fn message_size_limits() {
    let smtp = World::started("message_size_limit = 2000");
    let mut c = smtp.client();
    c.expect(220, "");
    let ehlo = c.cmd("EHLO big.test");
    assert!(
        ehlo.lines.contains(&"SIZE 2000".to_string()),
        "{:?}",
        ehlo.lines
    );
    c.ok("MAIL FROM:<big@example.org> SIZE=5000", 552);
    c.ok("MAIL FROM:<big@example.org> SIZE=1500", 250);
    c.ok("RCPT TO:<alice@localhost>", 250);
    c.ok("DATA", 354);
    let line = "x".repeat(500);
    for _ in 0..8 {
        c.send(format!("{line}\r\n").as_bytes());
    }
    c.send(b".\r\n");
    c.expect(552, "5.3.4");
    // BDAT over the limit: the chunk is read, refused, the transaction is over.
    c.ok("MAIL FROM:<big@example.org>", 250);
    c.ok("RCPT TO:<alice@localhost>", 250);
    let chunk = format!("{}\r\n", "y".repeat(98)).repeat(30);
    c.send(format!("BDAT {}\r\n", chunk.len()).as_bytes());
    c.send(chunk.as_bytes());
    c.expect(552, "5.3.4");
    c.ok("RCPT TO:<alice@localhost>", 503);
    c.ok("QUIT", 221);
    still_serving(&smtp, "alice");
    assert_eq!(subjects(&smtp, "alice"), ["good"]);
}

#[test]
fn long_lines_and_nul_bytes() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.expect(220, "");
    c.send(format!("NOOP {}\r\n", "a".repeat(10_000)).as_bytes());
    c.expect(500, "5.5.2 Error: line too long");
    c.send(b"NOOP\0\r\n");
    c.expect(500, "5.5.2");
    c.ok("EHLO nul.test", 250);
    c.ok("MAIL FROM:<n@example.org>", 250);
    c.ok("RCPT TO:<alice@localhost>", 250);
    c.ok("DATA", 354);
    c.send(
        format!(
            "Subject: long\r\n\r\n{}\r\nafter\r\n.\r\n",
            "b".repeat(10_000)
        )
        .as_bytes(),
    );
    // A long text line is content, as in Postfix (issue 8 defect 13): kept, not refused.
    c.expect(250, "queued as");
    smtp.env.wait_mbox("alice", 1);
    c.ok("MAIL FROM:<n@example.org>", 250);
    c.ok("RCPT TO:<alice@localhost>", 250);
    c.ok("DATA", 354);
    c.send(b"Subject: nul\r\n\r\nbefore\0after\r\n.\r\n");
    c.expect(550, "5.6.0");
    c.ok("NOOP", 250);
    c.ok("QUIT", 221);
    still_serving(&smtp, "alice");
    assert_eq!(subjects(&smtp, "alice"), ["long", "good"]);
}

/// The published smuggling sequences (SEC Consult, 2023) and their mirror images. Each is
/// followed by a smuggled transaction for bob, then the real end of data.
const SEQUENCES: [&[u8]; 6] = [
    b"\n.\n", b"\n.\r\n", b"\r.\r\n", b"\r\n.\n", b"\r\n.\r", b"\r.\n",
];

fn smuggle(c: &mut Client, sequence: &[u8]) {
    c.ok("MAIL FROM:<a@example.org>", 250);
    c.ok("RCPT TO:<alice@localhost>", 250);
    c.ok("DATA", 354);
    let mut data = b"Subject: carrier\r\n\r\nhello".to_vec();
    data.extend_from_slice(sequence);
    data.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nevil\r\n.\r\n");
    c.send(&data);
}

#[test]
fn smuggling_is_refused_under_reject() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO smuggler.test", 250);
    for sequence in SEQUENCES {
        smuggle(&mut c, sequence);
        let reply = c.reply();
        assert!(
            reply.code == 550 && reply.text().contains("5.5.2"),
            "{sequence:?}: {}",
            reply.text()
        );
        // One reply for the whole DATA: the smuggled commands were never commands.
        c.ok("NOOP", 250);
    }
    c.ok("QUIT", 221);
    // A bare LF ending a command line: 550, then the connection is closed (as Postfix does).
    let mut c = smtp.client();
    c.expect(220, "");
    c.send(b"EHLO lf.test\n");
    c.expect(550, "bare <LF>");
    assert!(c.is_closed());
    still_serving(&smtp, "carol");
    assert_eq!(smtp.env.count_mbox("bob"), 0);
    assert_eq!(smtp.env.count_mbox("alice"), 0);
}

#[test]
fn smuggling_is_plain_content_under_normalize() {
    let smtp = World::started("smtpd_forbid_bare_newline = \"normalize\"");
    let mut c = smtp.client();
    c.expect(220, "");
    c.send(b"EHLO normal.test\n");
    c.expect(250, "");
    for sequence in SEQUENCES {
        smuggle(&mut c, sequence);
        let reply = c.reply();
        assert!(
            reply.code == 250 && reply.text().contains("queued as"),
            "{sequence:?}: {}",
            reply.text()
        );
    }
    c.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", SEQUENCES.len());
    for m in smtp.env.mbox_messages("alice") {
        let body = String::from_utf8_lossy(m.body()).into_owned();
        assert!(body.contains("MAIL FROM:<evil@example.org>\n"), "{body:?}");
        assert!(!m.raw.contains(&b'\r'), "a CR was stored: {body:?}");
    }
    still_serving(&smtp, "carol");
    assert_eq!(smtp.env.count_mbox("bob"), 0);
}

#[test]
fn no_open_relay_from_outside_mynetworks() {
    let smtp = World::started("relay_domains = [\"relayed.example\"]");
    let stranger = Ipv4Addr::new(127, 0, 0, 2);
    let mut c = Client::connect_from(stranger, smtp.port);
    c.expect(220, "");
    let ehlo = c.cmd("EHLO spam.test");
    assert!(
        !ehlo.lines.iter().any(|l| l.starts_with("AUTH")),
        "AUTH offered on smtp: {:?}",
        ehlo.lines
    );
    c.ok("MAIL FROM:<spammer@example.org>", 250);
    for victim in [
        "victim@elsewhere.example",
        "a%b@localhost",
        "a@[127.0.0.1]",
        "\"x!y\"@localhost",
        "v@localhost.evil.example",
    ] {
        let reply = c.cmd(&format!("RCPT TO:<{victim}>"));
        assert_eq!(reply.code, 454, "{victim}: {}", reply.text());
        assert!(
            reply.text().contains("4.7.1") && reply.text().contains("Relay access denied"),
            "{}",
            reply.text()
        );
    }
    c.ok("DATA", 554);
    c.ok("RCPT TO:<alice@localhost>", 250);
    c.ok("RCPT TO:<x@relayed.example>", 250);
    c.ok("RCPT TO:<x@sub.relayed.example>", 250);
    c.ok("QUIT", 221);
    let out = smtplib(
        r#"
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30, source_address=("127.0.0.2", 0))
try:
    s.sendmail("spammer@example.org", ["victim@elsewhere.example"], "Subject: spam\r\n\r\nx\r\n")
except smtplib.SMTPRecipientsRefused as e:
    print("refused", e.recipients["victim@elsewhere.example"][0])
s.quit()
"#,
        &[&smtp.port.to_string()],
    );
    assert_eq!(out.trim(), "refused 454");
    let rejects = smtp.env.wait_log("reject: RCPT from unknown[127.0.0.2]", 6);
    assert!(
        rejects[0].contains("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 454 4.7.1 <victim@elsewhere.example>: Relay access denied; from=<spammer@example.org> to=<victim@elsewhere.example> proto=ESMTP helo=<spam.test>"),
        "{}",
        rejects[0]
    );
    // From mynetworks the same recipient is relayed (queued).
    let mut c = smtp.client();
    c.start_transaction("local@example.org", &["victim@elsewhere.example"]);
    c.ok("QUIT", 221);
}

/// The 421 that ends a session reaches a client that pipelined far more than the server
/// read: the server closes its write side (a FIN) before it closes the socket, so the
/// unread input makes a RST only after the client has the replies and the end of stream.
#[test]
fn a_session_ended_with_input_unread_still_ends_with_its_421_and_a_clean_close() {
    let smtp = World::started(
        "smtpd_soft_error_limit = 100\nsmtpd_hard_error_limit = 3\nsmtpd_error_sleep_time = 0",
    );
    let mut c = smtp.client();
    c.expect(220, "");
    // 64 KiB of bad commands in one write: more than the server reads before it gives up.
    let _ = c.try_send("BOGUS\r\n".repeat(64 * 1024 / 7).as_bytes());
    for _ in 0..3 {
        c.expect(500, "");
    }
    c.expect(421, "4.7.0");
    assert!(c.is_closed(), "the session ended with a reset, not a close");
    still_serving(&smtp, "alice");
}

#[test]
fn error_limits_slow_down_then_disconnect() {
    let smtp = World::started(
        "smtpd_soft_error_limit = 2\nsmtpd_hard_error_limit = 4\nsmtpd_error_sleep_time = \"1s\"",
    );
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("BOGUS1", 500);
    c.ok("BOGUS2", 500);
    let started = std::time::Instant::now();
    c.ok("BOGUS3", 500);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "no delay past the soft limit"
    );
    c.ok("BOGUS4", 500);
    c.expect(421, "4.7.0");
    assert!(c.is_closed());
    smtp.env
        .wait_log("too many errors after UNKNOWN from unknown[127.0.0.1]", 1);
    still_serving(&smtp, "alice");
}
