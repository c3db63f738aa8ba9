//! `smtpd_helo_required` (Postfix default `no`): a client may send MAIL without HELO/EHLO,
//! and its mail is queued with `Received: from unknown`; with `yes`, MAIL first gets
//! `503 5.5.1 Error: send HELO/EHLO first`.

use testkit::*;

#[test]
fn mail_without_helo_is_accepted_by_default() {
    let smtp = World::started("");
    let out = smtplib(
        r#"
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
print(s.mail("a@example.org")[0])
print(s.rcpt("alice@localhost")[0])
print(s.data(b"Subject: no helo\r\n\r\nhi\r\n")[0])
s.quit()
"#,
        &[&smtp.port.to_string()],
    );
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["250", "250", "250"],
        "{out}"
    );
    smtp.env.wait_mbox("alice", 1);
    let message = &smtp.env.mbox_messages("alice")[0];
    let received = message.header("Received").unwrap_or_default();
    assert!(
        received.starts_with("from unknown (unknown [127.0.0.1])"),
        "{received}"
    );
}

#[test]
fn helo_required_refuses_mail_before_helo() {
    let smtp = World::started("smtpd_helo_required = true");
    let mut c = smtp.client();
    c.expect(220, "");
    let reply = c.cmd("MAIL FROM:<a@example.org>");
    assert_eq!(
        reply.text(),
        "503 5.5.1 Error: send HELO/EHLO first",
        "{}",
        reply.text()
    );
    c.ok("HELO client.example", 250);
    c.ok("MAIL FROM:<a@example.org>", 250);
    c.ok("QUIT", 221);
}
