//! Issue 13 part 1: Postfix's restriction lists on the real daemon, each class refusing
//! with Postfix's reply and its `NOQUEUE: reject:` log line: HELO syntax, sender and
//! recipient syntax, access tables (text, `cidr:`, `regexp:`) and their results, `permit`,
//! `reject`, `defer`, `warn_if_reject`, `reject_unauth_pipelining`, `permit_mynetworks`,
//! DATA and end-of-data restrictions, `smtpd_delay_reject = no`, HOLD, DISCARD, PREPEND,
//! and a restriction that is misspelt (451 4.3.5, never an open door).
//! 127.0.0.1 is in `mynetworks`; 127.0.0.2 and 127.0.0.3 are strangers.

use std::net::Ipv4Addr;
use std::path::Path;

use testkit::*;

const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A started world whose configuration may name files under its root.
fn world(extra: impl Fn(&Path) -> String) -> World {
    let mut w = World::builder().smtp().build();
    let config = extra(&w.env.root);
    w.configure(&config);
    w.start();
    w
}

fn stranger(w: &World, helo: &str) -> Client {
    let mut c = Client::connect_from(STRANGER, w.port);
    c.expect(220, "");
    c.ok(&format!("EHLO {helo}"), 250);
    c
}

/// MAIL then RCPT; the RCPT reply.
fn try_rcpt(c: &mut Client, from: &str, to: &str) -> Reply {
    c.ok(&format!("MAIL FROM:<{from}>"), 250);
    let reply = c.cmd(&format!("RCPT TO:<{to}>"));
    c.ok("RSET", 250);
    reply
}

fn assert_reply(reply: &Reply, expected: &str) {
    assert_eq!(reply.text(), expected);
}

#[test]
fn helo_restrictions_refuse_invalid_and_unqualified_names_at_rcpt() {
    let w = world(|_| {
        "smtpd_helo_required = true\n\
         smtpd_helo_restrictions = \"reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\"\n"
            .into()
    });
    let mut c = Client::connect_from(STRANGER, w.port);
    c.expect(220, "");
    c.ok("MAIL FROM:<a@example.org>", 503);
    c.ok("EHLO -bad.example", 250);
    let r = try_rcpt(&mut c, "a@example.org", "alice@test.example");
    assert_reply(
        &r,
        "501 5.5.2 <-bad.example>: Helo command rejected: Invalid name",
    );
    c.ok("EHLO localhost", 250);
    let r = try_rcpt(&mut c, "a@example.org", "alice@test.example");
    assert_reply(
        &r,
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname",
    );
    c.ok("EHLO [127.0.0.2]", 250);
    assert_eq!(
        try_rcpt(&mut c, "a@example.org", "alice@test.example").code,
        250
    );
    c.ok("EHLO mail.example.org", 250);
    assert_eq!(
        try_rcpt(&mut c, "a@example.org", "alice@test.example").code,
        250
    );
    c.ok("QUIT", 221);
    let lines = w
        .env
        .wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]", 2);
    assert_eq!(
        lines[1].split_once("smtpd[").map(|(_, l)| l.split_once("]: ").unwrap().1),
        Some("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname; from=<a@example.org> to=<alice@test.example> proto=ESMTP helo=<localhost>")
    );
}

#[test]
fn access_tables_and_address_syntax_decide_per_sender_recipient_and_client() {
    let w = world(|root| {
        std::fs::write(
            root.join("sender_access"),
            "spammer@example.net REJECT Go away\n\
             example.com 550 5.7.0 Not from there\n\
             boss@example.org OK\n",
        )
        .unwrap();
        std::fs::write(
            root.join("recipient_access"),
            "/^blocked-/ REJECT 5.7.2 No such luck\n/^later@/ 450 Try later\n",
        )
        .unwrap();
        std::fs::write(root.join("client_access"), "127.0.0.3/32 REJECT\n").unwrap();
        format!(
            "smtpd_sender_restrictions = \"reject_non_fqdn_sender, check_sender_access hash:{r}/sender_access\"\n\
             smtpd_recipient_restrictions = \"reject_non_fqdn_recipient, check_recipient_access regexp:{r}/recipient_access, check_client_access cidr:{r}/client_access\"\n",
            r = root.display()
        )
    });
    let mut c = stranger(&w, "client.example.org");
    let cases = [
        (
            "user",
            "alice@test.example",
            "504 5.5.2 <user>: Sender address rejected: need fully-qualified address",
        ),
        (
            "spammer@example.net",
            "alice@test.example",
            "554 5.7.1 <spammer@example.net>: Sender address rejected: Go away",
        ),
        (
            "a@sub.example.com",
            "alice@test.example",
            "550 5.7.0 <a@sub.example.com>: Sender address rejected: Not from there",
        ),
        (
            "a@example.org",
            "bob",
            "504 5.5.2 <bob>: Recipient address rejected: need fully-qualified address",
        ),
        (
            "a@example.org",
            "blocked-1@test.example",
            "554 5.7.2 <blocked-1@test.example>: Recipient address rejected: No such luck",
        ),
        (
            "a@example.org",
            "later@test.example",
            "450 4.7.1 <later@test.example>: Recipient address rejected: Try later",
        ),
    ];
    for (from, to, expected) in cases {
        assert_reply(&try_rcpt(&mut c, from, to), expected);
    }
    // OK ends the sender list only: the recipient list still refuses.
    let r = try_rcpt(&mut c, "boss@example.org", "blocked-2@test.example");
    assert_eq!(r.code, 554, "{}", r.text());
    assert_eq!(try_rcpt(&mut c, "", "alice@test.example").code, 250);
    c.ok("QUIT", 221);
    let mut other = Client::connect_from(Ipv4Addr::new(127, 0, 0, 3), w.port);
    other.expect(220, "");
    other.ok("EHLO client.example.org", 250);
    let r = try_rcpt(&mut other, "a@example.org", "alice@test.example");
    assert_reply(
        &r,
        "554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied",
    );
    other.ok("QUIT", 221);
    w.env.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.3]: 554 5.7.1 <unknown[127.0.0.3]>: Client host rejected: Access denied; from=<a@example.org> to=<alice@test.example> proto=ESMTP helo=<client.example.org>", 1);
    w.env.wait_log("NOQUEUE: reject: RCPT from unknown[127.0.0.2]: 554 5.7.1 <spammer@example.net>: Sender address rejected: Go away; from=<spammer@example.net> to=<alice@test.example> proto=ESMTP helo=<client.example.org>", 1);
}

#[test]
fn generic_restrictions_permit_reject_defer_and_warn_if_reject() {
    let w = world(|_| {
        "smtpd_forbid_unauth_pipelining = false\n\
         smtpd_client_restrictions = \"permit_mynetworks, warn_if_reject, reject_unauth_pipelining, warn_if_reject, reject\"\n\
         smtpd_recipient_restrictions = \"permit_mynetworks, reject_unauth_pipelining, defer\"\n"
            .into()
    });
    // From mynetworks the client list permits; so does the recipient list.
    let mut trusted = w.client();
    trusted.start_transaction("a@example.org", &["alice@test.example"]);
    trusted.ok("QUIT", 221);
    // A stranger: the client list only warns; the recipient list defers.
    let mut c = stranger(&w, "client.example.org");
    let r = try_rcpt(&mut c, "a@example.org", "alice@test.example");
    assert_reply(
        &r,
        "450 4.7.1 <alice@test.example>: Recipient address rejected: Access denied",
    );
    c.ok("QUIT", 221);
    w.env.wait_log("NOQUEUE: reject_warning: RCPT from unknown[127.0.0.2]: 554 5.7.1 <unknown[127.0.0.2]>: Client host rejected: Access denied; from=<a@example.org> to=<alice@test.example>", 1);
    // HELO, then commands sent ahead of their replies: improper pipelining.
    let mut p = Client::connect_from(STRANGER, w.port);
    p.expect(220, "");
    p.ok("HELO client.example.org", 250);
    p.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<alice@test.example>\r\nQUIT\r\n");
    assert_eq!(p.reply().code, 250);
    let r = p.reply();
    assert_eq!(
        r.text(),
        "503 5.5.0 <alice@test.example>: Recipient address rejected: Improper use of SMTP command pipelining"
    );
    assert_eq!(p.reply().code, 221);
    w.env.wait_log("reject_warning: RCPT from unknown[127.0.0.2]: 503 5.5.0 <unknown[127.0.0.2]>: Client host rejected: Improper use of SMTP command pipelining", 1);
}

#[test]
fn data_and_end_of_data_restrictions_and_delay_reject_no() {
    let w = world(|root| {
        let table = |name: &str, text: &str| {
            let path = root.join(name);
            std::fs::write(&path, text).unwrap();
            format!("check_sender_access hash:{}", path.display())
        };
        format!(
            "smtpd_delay_reject = false\n\
             smtpd_sender_restrictions = \"{}\"\n\
             smtpd_data_restrictions = \"{}\"\n\
             smtpd_end_of_data_restrictions = \"{}\"\n",
            table("mail", "bad@example.org REJECT\n"),
            table("data", "nodata@example.org 554 5.7.1 No data from you\n"),
            table("eod", "noeod@example.org REJECT Too late\n"),
        )
    });
    let mut c = w.client();
    c.expect(220, "");
    c.ok("EHLO client.example.org", 250);
    // smtpd_delay_reject = no: the sender list answers MAIL itself.
    let r = c.cmd("MAIL FROM:<bad@example.org>");
    assert_reply(
        &r,
        "554 5.7.1 <bad@example.org>: Sender address rejected: Access denied",
    );
    c.ok("RCPT TO:<alice@test.example>", 503);
    c.ok("MAIL FROM:<nodata@example.org>", 250);
    c.ok("RCPT TO:<alice@test.example>", 250);
    let r = c.cmd("DATA");
    assert_reply(
        &r,
        "554 5.7.1 <nodata@example.org>: Sender address rejected: No data from you",
    );
    c.ok("RSET", 250);
    c.ok("MAIL FROM:<noeod@example.org>", 250);
    c.ok("RCPT TO:<alice@test.example>", 250);
    c.ok("DATA", 354);
    c.send(b"Subject: late\r\n\r\nbody\r\n.\r\n");
    c.expect(
        554,
        "5.7.1 <noeod@example.org>: Sender address rejected: Too late",
    );
    c.ok("QUIT", 221);
    w.env.wait_log(
        "NOQUEUE: reject: MAIL from unknown[127.0.0.1]: 554 5.7.1 <bad@example.org>",
        1,
    );
    // The queue ID exists since the first accepted RCPT, as in Postfix.
    w.env.wait_log(
        ": reject: DATA from unknown[127.0.0.1]: 554 5.7.1 <nodata@example.org>",
        1,
    );
    let eod = w.env.wait_log(
        ": reject: END-OF-MESSAGE from unknown[127.0.0.1]: 554 5.7.1 <noeod@example.org>",
        1,
    );
    assert!(
        !eod[0].contains("NOQUEUE"),
        "the message had a queue ID: {}",
        eod[0]
    );
    assert!(
        w.queue().is_empty(),
        "nothing refused was queued: {:?}",
        w.queue()
    );
}

#[test]
fn hold_discard_and_prepend_act_on_the_accepted_message() {
    let w = world(|root| {
        let path = root.join("actions");
        std::fs::write(
            &path,
            "held@example.org HOLD\ndropped@example.org DISCARD\ntagged@example.org PREPEND X-Tag: seen\n",
        )
        .unwrap();
        format!(
            "smtpd_recipient_restrictions = \"check_sender_access hash:{}\"\n",
            path.display()
        )
    });
    for sender in [
        "held@example.org",
        "dropped@example.org",
        "tagged@example.org",
    ] {
        let mut c = w.client();
        c.start_transaction(sender, &["alice@test.example"]);
        c.ok("DATA", 354);
        c.send(format!("Subject: from {sender}\r\n\r\nbody\r\n.\r\n").as_bytes());
        c.expect(250, "queued as");
        c.ok("QUIT", 221);
    }
    w.env.wait_mbox("alice", 1);
    let delivered = w.env.mbox_messages("alice");
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        delivered[0].subject.as_deref(),
        Some("from tagged@example.org")
    );
    let headers = delivered[0].headers();
    assert!(headers.lines().any(|l| l == "X-Tag: seen"), "{headers}");
    w.env.wait_log("NOQUEUE: hold: RCPT from unknown[127.0.0.1]: <held@example.org>: Sender address triggers HOLD action", 1);
    w.env.wait_log("NOQUEUE: discard: RCPT from unknown[127.0.0.1]: <dropped@example.org>: Sender address triggers DISCARD action", 1);
    // The delivered message leaves the queue a moment after its mbox append: wait for it.
    wait_until("only the held message left in the queue", || {
        w.queue().len() == 1
    });
    let queue = w.queue();
    assert_eq!(queue[0].0, "hold", "{queue:?}");
    assert_eq!(queue[0].2, ["alice@test.example"], "{queue:?}");
}

#[test]
fn a_misspelt_restriction_answers_451_and_opens_nothing() {
    let w = world(|_| "smtpd_recipient_restrictions = \"permit_mynetwork\"\n".into());
    let mut c = w.client();
    c.expect(220, "");
    c.ok("EHLO client.example.org", 250);
    c.ok("MAIL FROM:<a@example.org>", 250);
    let r = c.cmd("RCPT TO:<alice@test.example>");
    assert_reply(&r, "451 4.3.5 Server configuration error");
    c.ok("QUIT", 221);
    w.env
        .wait_log("unknown smtpd restriction: \"permit_mynetwork\"", 1);
    w.env.wait_log(
        "NOQUEUE: reject: RCPT from unknown[127.0.0.1]: 451 4.3.5 Server configuration error",
        1,
    );
    // `mailroom check` names it before any client meets it.
    let check = w.env.run(&["check"], b"");
    let out = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{out}");
    assert!(
        out.contains(
            "error: smtpd_recipient_restrictions: unknown smtpd restriction: \"permit_mynetwork\""
        ),
        "{out}"
    );
}
