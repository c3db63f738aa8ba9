//! Issue 8 defect 7: odd local parts were accepted at RCPT and bounced later — backscatter
//! to whatever sender a spammer forged — and `"user@evil.invalid"@localhost` became a spool
//! file of that name. Now what can never be delivered is refused at RCPT with 550 5.1.1, and
//! sender-specified routing in the local part (`@`, `%`, `!`) is, from an untrusted client,
//! Postfix's `454 4.7.1 Relay access denied` (`allow_untrusted_routing = no`; 454 from the default
//! `smtpd_relay_restrictions`' `defer_unauth_destination`). Nothing is
//! queued, nothing bounces, no file appears in the spool.

use std::net::Ipv4Addr;

use testkit::*;

/// Local parts that can never name a mailbox: 550 5.1.1 from anyone.
const NEVER_MAILBOXES: [&str; 6] = [
    "\"|/bin/sh\"@localhost",
    "\"/etc/passwd\"@localhost",
    "\"..\"@localhost",
    "\".hidden\"@localhost",
    "\"../../../tmp/escaped\"@localhost",
    "\"a b\"@localhost",
];

/// Routing attempts: relay access denied from a stranger. The domain-less one is qualified
/// with `myorigin` like any bare name; its `@` is inside the quotes.
const ROUTED: [&str; 4] = [
    "\"user@evil.invalid\"@localhost",
    "\"user@evil.invalid\"",
    "user%evil.invalid@localhost",
    "evil.invalid!user@localhost",
];

fn assert_nothing_queued_or_bounced(smtp: &World) {
    assert_eq!(smtp.env.mailq().trim(), "Mail queue is empty");
    let log = smtp.env.log();
    assert!(
        !log.contains("status=bounced") && !log.contains("status=sent"),
        "{}",
        tail(&log, 20)
    );
    assert_eq!(list_dir(&smtp.env.spool_dir()), Vec::<String>::new());
    assert!(!std::path::Path::new("/tmp/escaped").exists());
}

#[test]
fn a_stranger_gets_550_for_impossible_mailboxes_and_454_for_routing() {
    let smtp = World::started("");
    // 127.0.0.2 is outside mynetworks (127.0.0.1/32): an untrusted client.
    let mut c = Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), smtp.port);
    c.expect(220, "");
    c.ok("EHLO stranger.test", 250);
    c.ok("MAIL FROM:<forged@victim.example>", 250);
    for address in NEVER_MAILBOXES {
        let r = c.cmd(&format!("RCPT TO:<{address}>"));
        assert!(
            r.code == 550 && r.text().contains("5.1.1"),
            "{address}: {}",
            r.text()
        );
    }
    for address in ROUTED {
        let r = c.cmd(&format!("RCPT TO:<{address}>"));
        assert!(
            r.code == 454 && r.text().contains("4.7.1") && r.text().contains("Relay access denied"),
            "{address}: {}",
            r.text()
        );
    }
    let r = c.cmd("DATA");
    assert_eq!(r.code, 554, "DATA with no accepted recipient: {}", r.text());
    c.ok("QUIT", 221);
    let rejects = smtp
        .env
        .log_lines("NOQUEUE: reject: RCPT from unknown[127.0.0.2]");
    assert_eq!(
        rejects.len(),
        NEVER_MAILBOXES.len() + ROUTED.len(),
        "{rejects:?}"
    );
    assert_nothing_queued_or_bounced(&smtp);
}

#[test]
fn a_trusted_client_gets_550_for_routing_too_and_nothing_is_relayed() {
    let smtp = World::started("");
    // Python's smtplib from 127.0.0.1 (in mynetworks). mailroom honours no routing in local
    // parts (Postfix with allow_percent_hack = no, swap_bangpath = no): no such user.
    let script = r#"
s = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=30)
s.ehlo("trusted.test")
s.mail("sender@example.org")
for address in sys.argv[2:]:
    code, text = s.docmd("RCPT TO:<%s>" % address)
    print(code, text.decode())
s.quit()
"#;
    let port = smtp.port.to_string();
    let mut args = vec![port.as_str()];
    args.extend(ROUTED);
    args.extend(NEVER_MAILBOXES);
    let out = smtplib(script, &args);
    let replies: Vec<&str> = out.lines().collect();
    assert_eq!(replies.len(), ROUTED.len() + NEVER_MAILBOXES.len(), "{out}");
    for (reply, address) in replies.iter().zip(ROUTED.iter().chain(&NEVER_MAILBOXES)) {
        assert!(
            reply.starts_with("550 5.1.1") && reply.contains("User unknown"),
            "{address}: {reply}"
        );
    }
    assert_nothing_queued_or_bounced(&smtp);
}
