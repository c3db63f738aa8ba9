//! RFC 5321 section 4.5.1: `RCPT TO:<postmaster>` (no domain) must be accepted from any
//! client and reach this host's postmaster, even when `myorigin` is a domain delivered
//! elsewhere (the usual `myorigin = $mydomain`), where qualifying it would make it a relay
//! attempt (`454 4.7.1 Relay access denied` with the default `smtpd_relay_restrictions`).

use std::net::Ipv4Addr;

use testkit::*;

#[test]
fn bare_postmaster_from_a_stranger_reaches_the_local_postmaster() {
    let smtp = World::new("myorigin = \"example.org\"");
    std::fs::write(smtp.env.aliases_file(), "postmaster: alice@localhost\n").expect("aliases");
    let mut smtp = smtp;
    smtp.start();
    // 127.0.0.2 is outside mynetworks.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), smtp.port);
    c.expect(220, "");
    c.ok("EHLO stranger.example", 250);
    c.ok("MAIL FROM:<someone@stranger.example>", 250);
    let other = c.cmd("RCPT TO:<webmaster>");
    assert_eq!(
        other.code,
        454,
        "an unqualified non-postmaster is still qualified with myorigin: {}",
        other.text()
    );
    c.ok("RCPT TO:<Postmaster>", 250);
    c.ok("DATA", 354);
    c.send(b"Subject: to the postmaster\r\n\r\nhello\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    smtp.env.wait_mbox("alice", 1);
    let message = &smtp.env.mbox_messages("alice")[0];
    assert_eq!(message.subject.as_deref(), Some("to the postmaster"));
    smtp.env.wait_log("to=<postmaster@test.example>", 1);
}
