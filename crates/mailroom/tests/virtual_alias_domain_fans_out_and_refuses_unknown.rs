//! Virtual alias domains as a Postfix site runs them (virtual(5)): `info@example.org` fans
//! out to two local mailboxes, `@catch.example` catches a whole domain, an unknown address
//! in a virtual alias domain is refused at RCPT with Postfix's text, a relocated user gets
//! "User has moved to", a virtual alias loop bounces 5.4.6 instead of looping, and a
//! virtual alias domain is no relay hole for a client outside `mynetworks`.

use std::fs;
use std::net::Ipv4Addr;
use testkit::*;

const VIRTUAL: &str = "\
example.org        virtual alias domain
catch.example      virtual alias domain
info@example.org   alice, bob@localhost
@catch.example     carol@localhost
loop1@example.org  loop2@example.org
loop2@example.org  loop1@example.org
";

/// A world whose SMTP client (127.0.0.2) is outside `mynetworks`: only our destinations.
fn world() -> World {
    let world = World::new("");
    let root = world.env.root.display().to_string();
    fs::write(world.env.root.join("virtual"), VIRTUAL).unwrap();
    fs::write(
        world.env.root.join("virtual.re"),
        "/^sales-(.*)@example\\.org$/  ${1}@localhost\n",
    )
    .unwrap();
    fs::write(
        world.env.root.join("relocated"),
        "old@localhost  new@example.com\n",
    )
    .unwrap();
    world.configure(&format!(
        "virtual_alias_maps = [\"{root}/virtual\", \"regexp:{root}/virtual.re\"]\n\
         relocated_maps = [\"{root}/relocated\"]"
    ));
    world
}

fn outside_client(world: &World) -> Client {
    Client::connect_from(Ipv4Addr::new(127, 0, 0, 2), world.port)
}

#[test]
fn virtual_alias_fans_out_to_two_local_mailboxes_and_catches_a_domain() {
    let mut world = world();
    world.start();
    let mut c = outside_client(&world);
    c.start_transaction(
        "someone@far.example",
        &[
            "info@example.org",
            "anyone@catch.example",
            "sales-dave@example.org",
        ],
    );
    c.ok("DATA", 354);
    c.send(b"Subject: fan-out\r\nTo: info@example.org\r\n\r\nhello\r\n.\r\n");
    c.expect(250, "queued as");
    c.ok("QUIT", 221);
    for user in ["alice", "bob", "carol", "dave"] {
        world.env.wait_mbox(user, 1);
    }
    let lines = world.wait_lines(&["status=sent"], 4);
    let line_for = |user: &str| {
        lines
            .iter()
            .find(|l| l.contains(&format!("to=<{user}@")))
            .unwrap_or_else(|| panic!("no line for {user}:\n{}", lines.join("\n")))
            .clone()
    };
    assert!(
        line_for("alice").contains("orig_to=<info@example.org>"),
        "{lines:?}"
    );
    assert!(
        line_for("bob").contains("orig_to=<info@example.org>"),
        "{lines:?}"
    );
    assert!(
        line_for("carol").contains("orig_to=<anyone@catch.example>"),
        "{lines:?}"
    );
    assert!(
        line_for("dave").contains("orig_to=<sales-dave@example.org>"),
        "{lines:?}"
    );
    let alice = world.env.mbox_messages("alice");
    assert_eq!(alice[0].subject.as_deref(), Some("fan-out"));
}

#[test]
fn unknown_virtual_and_relocated_recipients_are_refused_at_rcpt_with_postfix_texts() {
    let mut world = world();
    world.start();
    let mut c = outside_client(&world);
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@far.example>", 250);
    let r = c.cmd("RCPT TO:<nobody@example.org>");
    assert_eq!(
        r.lines[0],
        "5.1.1 <nobody@example.org>: Recipient address rejected: User unknown in virtual alias table",
        "{r:?}"
    );
    assert_eq!(r.code, 550);
    let r = c.cmd("RCPT TO:<old@localhost>");
    assert_eq!(r.code, 550, "{r:?}");
    assert_eq!(
        r.lines[0],
        "5.1.6 <old@localhost>: Recipient address rejected: User has moved to new@example.com"
    );
    // Not a relay hole: any other domain is still refused to this client.
    let r = c.cmd("RCPT TO:<x@elsewhere.example>");
    assert_eq!(r.code, 454, "{r:?}");
    c.ok("RCPT TO:<info@example.org>", 250);
    c.ok("QUIT", 221);
    // The log line is written before the reply, but through the log writer: wait for it.
    let rejects = world.wait_lines(
        &["reject: RCPT from", "User unknown in virtual alias table"],
        1,
    );
    assert_eq!(rejects.len(), 1, "{rejects:?}");
}

#[test]
fn a_virtual_alias_loop_bounces_5_4_6_and_ends() {
    let mut world = world();
    world.start();
    world.submit(
        "sender@localhost",
        &["loop1@example.org"],
        "Subject: loops\n\nx\n",
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();
    let bounces = world.env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1, "one bounce");
    let dsn = parse_dsn(&bounces[0].raw);
    let block = &dsn["recipients"][0];
    assert_eq!(field(block, "Status"), "5.4.6", "{dsn}");
    assert!(
        field(block, "Final-Recipient").contains("loop1@example.org"),
        "{dsn}"
    );
    let line = world.wait_lines(&["to=<loop1@example.org>", "status=bounced"], 1);
    assert!(line[0].contains("dsn=5.4.6"), "{line:?}");
    assert!(line[0].contains("virtual_alias_maps nesting"), "{line:?}");
}

#[test]
fn sendmail_to_relocated_and_unknown_virtual_recipients_bounces_with_the_rcpt_texts() {
    let mut world = world();
    world.start();
    world.env.send_ok(
        &[
            "-f",
            "sender@localhost",
            "old@localhost",
            "nobody@example.org",
        ],
        b"Subject: moved\n\nx\n",
    );
    world.env.wait_mbox("sender", 1);
    world.env.wait_queue_empty();
    let bounces = world.env.mbox_messages("sender");
    assert_eq!(bounces.len(), 1, "one bounce for both");
    let dsn = parse_dsn(&bounces[0].raw);
    let status_of = |rcpt: &str| {
        let blocks = dsn["recipients"].as_array().unwrap();
        let b = blocks
            .iter()
            .find(|b| field(b, "Final-Recipient").contains(rcpt))
            .unwrap_or_else(|| panic!("no block for {rcpt}: {dsn}"));
        (
            field(b, "Status").to_string(),
            field(b, "Diagnostic-Code").to_string(),
        )
    };
    let (status, diagnostic) = status_of("old@localhost");
    assert_eq!(status, "5.1.6");
    assert!(
        diagnostic.contains("User has moved to new@example.com"),
        "{diagnostic}"
    );
    let (status, diagnostic) = status_of("nobody@example.org");
    assert_eq!(status, "5.1.1");
    assert!(
        diagnostic.contains("User unknown in virtual alias table"),
        "{diagnostic}"
    );
}

#[test]
fn an_alias_forwarding_to_a_virtual_address_is_expanded_not_relayed() {
    let mut world = world();
    fs::write(world.env.aliases_file(), "helpdesk: info@example.org\n").unwrap();
    world.start();
    world.submit(
        "someone@far.example",
        &["helpdesk@localhost"],
        "Subject: via alias\n\nx\n",
    );
    world.env.wait_mbox("alice", 1);
    world.env.wait_mbox("bob", 1);
    // Relayed to example.org's MX instead, the copy would wait in the queue.
    world.env.wait_queue_empty();
    let alice = world.wait_lines(&["to=<alice@test.example>", "status=sent"], 1);
    assert!(alice[0].contains("orig_to=<info@example.org>"), "{alice:?}");
}

#[test]
fn a_bounce_to_a_virtual_alias_sender_reaches_the_expanded_mailboxes() {
    let mut world = world();
    world.start();
    // By sendmail: smtpd would refuse old@localhost at RCPT.
    world.env.send_ok(
        &["-f", "info@example.org", "old@localhost"],
        b"Subject: to a mover\n\nx\n",
    );
    world.env.wait_mbox("alice", 1);
    world.env.wait_mbox("bob", 1);
    world.env.wait_queue_empty();
    let dsn = parse_dsn(&world.env.mbox_messages("alice")[0].raw);
    assert_eq!(field(&dsn["recipients"][0], "Status"), "5.1.6", "{dsn}");
}
