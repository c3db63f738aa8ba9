//! Issue 13, the rest of part 1: access table results REDIRECT and BCC (the message goes to
//! that address instead, or to it as well), `smtpd_restriction_classes` (a named list used
//! as a table result or in a list: its permit permits, its end is DUNNO, a loop answers
//! 451 4.3.5), a table result written as restriction words, and `smtpd_data_restrictions`
//! at the first BDAT (Postfix 3.4+). 127.0.0.1 is in `mynetworks`; 127.0.0.2-4 are not.

use std::net::Ipv4Addr;
use std::path::Path;

use testkit::*;

fn world(extra: impl Fn(&Path) -> String) -> World {
    let mut w = World::builder().smtp().build();
    let config = extra(&w.env.root);
    w.configure(&config);
    w.start();
    w
}

fn table(root: &Path, name: &str, text: &str) -> String {
    let path = root.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn send(w: &World, sender: &str, to: &str) {
    let mut c = w.client();
    c.start_transaction(sender, &[to]);
    c.ok("DATA", 354);
    c.send(format!("Subject: from {sender}\r\n\r\nbody\r\n.\r\n").as_bytes());
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
}

#[test]
fn access_redirect_and_bcc_change_the_recipients() {
    let w = world(|root| {
        let senders = table(
            root,
            "senders",
            "redir@example.org REDIRECT carol@test.example\n\
             copy@example.org BCC audit@test.example\n\
             broken@example.org BCC nobody\n",
        );
        format!("smtpd_recipient_restrictions = \"check_sender_access hash:{senders}, permit_mynetworks, reject\"\n")
    });
    send(&w, "redir@example.org", "alice@test.example");
    send(&w, "copy@example.org", "bob@test.example");
    send(&w, "broken@example.org", "dave@test.example");
    w.env.wait_mbox("carol", 1);
    w.env.wait_mbox("audit", 1);
    w.env.wait_mbox("bob", 1);
    w.env.wait_mbox("dave", 1);
    assert!(
        !w.env.mbox("alice").exists(),
        "the redirected recipient got it"
    );
    let audit = w.env.mbox_messages("audit");
    assert_eq!(audit.len(), 1, "only the BCC'd message");
    assert_eq!(audit[0].subject.as_deref(), Some("from copy@example.org"));
    w.env.wait_log("NOQUEUE: redirect: RCPT from unknown[127.0.0.1]: <redir@example.org>: Sender address triggers REDIRECT carol@test.example; from=<redir@example.org> to=<alice@test.example> proto=ESMTP helo=<client.test>", 1);
    w.env.wait_log("NOQUEUE: bcc: RCPT from unknown[127.0.0.1]: <copy@example.org>: Sender address triggers BCC audit@test.example;", 1);
    w.env
        .wait_log("entry \"BCC nobody\" requires user@domain target", 1);
}

fn stranger(w: &World, last: u8, helo: &str) -> Client {
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, last), w.port);
    c.expect(220, "");
    c.ok(&format!("EHLO {helo}"), 250);
    c
}

fn rcpt(c: &mut Client, from: &str) -> String {
    c.ok(&format!("MAIL FROM:<{from}>"), 250);
    let reply = c.cmd("RCPT TO:<alice@test.example>");
    c.ok("RSET", 250);
    reply.text()
}

#[test]
fn restriction_classes_as_table_results_and_in_lists() {
    let w = world(|root| {
        let clients = table(
            root,
            "clients",
            "127.0.0.2 strict\n127.0.0.3 reject_non_fqdn_sender\n127.0.0.4 loop\n",
        );
        format!(
            "smtpd_restriction_classes = [\
               {{ name = \"strict\", restrictions = \"reject_non_fqdn_helo_hostname, permit\" }}, \
               {{ name = \"loop\", restrictions = \"loop\" }}, \
               {{ name = \"local_only\", restrictions = \"permit_mynetworks, reject\" }}]\n\
             smtpd_recipient_restrictions = \"check_client_access cidr:{clients}, local_only\"\n"
        )
    });
    // The class refuses a bare HELO name, and its permit ends the list (local_only's
    // reject is not reached).
    let mut c = stranger(&w, 2, "localhost");
    assert_eq!(
        rcpt(&mut c, "a@example.org"),
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
    );
    c.ok("EHLO mail.example.org", 250);
    assert!(rcpt(&mut c, "a@example.org").starts_with("250"));
    // Restriction words as a result: they refuse, or say nothing and the list goes on.
    let mut c = stranger(&w, 3, "mail.example.org");
    assert_eq!(
        rcpt(&mut c, "nodomain"),
        "504 5.5.2 <nodomain>: Sender address rejected: need fully-qualified address"
    );
    assert_eq!(
        rcpt(&mut c, "a@example.org"),
        "554 5.7.1 <alice@test.example>: Recipient address rejected: Access denied"
    );
    // A class naming itself never opens the door.
    let mut c = stranger(&w, 4, "mail.example.org");
    assert_eq!(
        rcpt(&mut c, "a@example.org"),
        "451 4.3.5 Server configuration error"
    );
    w.env.wait_log("restriction classes nested more than", 1);
    // The class in the list itself: mynetworks passes.
    send(&w, "a@example.org", "alice@test.example");
    w.env.wait_mbox("alice", 1);
}

/// `BDAT n [LAST]` and the chunk.
fn chunk(bytes: &[u8], last: bool) -> Vec<u8> {
    let last = if last { " LAST" } else { "" };
    let mut out = format!("BDAT {}{last}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out
}

#[test]
fn data_restrictions_apply_at_the_first_bdat() {
    let w = world(|root| {
        let senders = table(
            root,
            "data",
            "nodata@example.org 554 5.7.1 No data from you\n",
        );
        format!("smtpd_data_restrictions = \"check_sender_access hash:{senders}\"\n")
    });
    let mut c = w.client();
    c.expect(220, "");
    c.ok("EHLO client.example.org", 250);
    c.ok("MAIL FROM:<nodata@example.org>", 250);
    c.ok("RCPT TO:<alice@test.example>", 250);
    c.send(&chunk(b"Subject: x\r\n\r\nbody\r\n", true));
    c.expect(
        554,
        "5.7.1 <nodata@example.org>: Sender address rejected: No data from you",
    );
    // The session goes on; another sender's BDAT message is queued.
    c.ok("MAIL FROM:<fine@example.org>", 250);
    c.ok("RCPT TO:<alice@test.example>", 250);
    c.send(&chunk(b"Subject: ", false));
    c.expect(250, "");
    c.send(&chunk(b"ok\r\n\r\nbody\r\n", true));
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    w.env.wait_log(": reject: DATA from unknown[127.0.0.1]: 554 5.7.1 <nodata@example.org>: Sender address rejected: No data from you; from=<nodata@example.org> proto=ESMTP", 1);
    w.env.wait_mbox("alice", 1);
    let got = w.env.mbox_messages("alice");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].subject.as_deref(), Some("ok"));
}
