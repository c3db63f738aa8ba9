//! `local_recipient_maps` at RCPT time: an unknown local user is refused with Postfix's
//! `550 5.1.1 ... User unknown in local recipient table` instead of being accepted and
//! bounced later (backscatter to forged senders, seed 003's spam flood), while aliases and
//! real users are accepted.

use testkit::*;

#[test]
fn unknown_local_users_are_refused_at_rcpt_and_known_ones_accepted() {
    let smtp = World::started(r#"local_recipient_maps = ["unix:passwd.byname", "$alias_maps"]"#);
    std::fs::write(smtp.env.root.join("aliases"), "helpdesk: root\n").unwrap();
    // The aliases file is read at start; make the daemon re-read it.
    let out = smtp.env.run(&["newaliases"], b"");
    assert!(out.status.success(), "{out:?}");
    // newaliases only asks for the reload; wait until the daemon has done it.
    smtp.env.wait_log("reload -- configuration", 1);
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    let r = c.cmd("RCPT TO:<no-such-user-4711@localhost>");
    assert_eq!(r.code, 550, "{:?}", r.lines);
    assert!(
        r.lines[0].contains("5.1.1")
            && r.lines[0].contains("User unknown in local recipient table"),
        "{:?}",
        r.lines
    );
    c.ok("RCPT TO:<root@localhost>", 250);
    c.ok("RCPT TO:<helpdesk@localhost>", 250);
    c.ok("QUIT", 221);
    let log = smtp.env.log();
    assert!(
        log.contains("reject: RCPT from") && log.contains("User unknown in local recipient table"),
        "{log}"
    );
}

#[test]
fn the_embedded_default_accepts_any_local_part() {
    let smtp = World::started("");
    let mut c = smtp.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    c.ok("RCPT TO:<anybody-at-all@localhost>", 250);
    c.ok("QUIT", 221);
}
