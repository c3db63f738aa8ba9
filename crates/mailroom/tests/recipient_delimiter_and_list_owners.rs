//! `recipient_delimiter = "+"`: `user+news@` is accepted at RCPT when `user` is a known
//! user (`local_recipient_maps = unix:passwd.byname`) and reaches that user's mailbox.
//! `owner-LIST` aliases: mail expanded by the list `LIST` goes on with `owner-LIST` as its
//! envelope sender, so a member's bounce reaches the list owner, not the writer.

use std::sync::Arc;

use testkit::privsep::local_user;
use testkit::*;

#[test]
fn an_extension_of_a_known_user_is_accepted_at_rcpt_and_reaches_the_user() {
    let Some((user, _)) = local_user() else {
        return;
    };
    let world = World::started(
        "local_recipient_maps = [\"unix:passwd.byname\"]\nrecipient_delimiter = \"+\"\n",
    );
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    c.ok(&format!("RCPT TO:<{user}+news@localhost>"), 250);
    let r = c.cmd("RCPT TO:<no-such-user-4711+news@localhost>");
    assert_eq!(r.code, 550, "{:?}", r.lines);
    c.ok("QUIT", 221);

    world.submit(
        "someone@example.org",
        &[&format!("{user}+news@localhost")],
        &message("ext"),
    );
    world.env.wait_mbox(&user, 1);
    let messages = world.env.mbox_messages(&user);
    let text = String::from_utf8_lossy(&messages[0].raw).into_owned();
    assert!(
        text.contains(&format!("Delivered-To: {user}+news@localhost")),
        "{text}"
    );
    assert!(!world.env.mbox(&format!("{user}+news")).exists());
}

#[test]
fn without_a_delimiter_an_extension_is_an_unknown_user() {
    let Some((user, _)) = local_user() else {
        return;
    };
    let world = World::started("local_recipient_maps = [\"unix:passwd.byname\"]\n");
    let mut c = world.client();
    c.expect(220, "");
    c.ok("EHLO client.test", 250);
    c.ok("MAIL FROM:<someone@example.org>", 250);
    let r = c.cmd(&format!("RCPT TO:<{user}+news@localhost>"));
    assert_eq!(r.code, 550, "{:?}", r.lines);
}

#[test]
fn a_list_members_bounce_goes_to_the_list_owner() {
    let peer = Peer::start_with(
        OnConnect::Greet,
        Arc::new(|rcpt: &str| format!("550 5.1.1 <{rcpt}>: User unknown")),
    );
    let mut world = World::builder().smtp().peer(&peer).build();
    std::fs::write(
        world.env.aliases_file(),
        "list: member@far.example, local-member\nowner-list: listowner\n",
    )
    .unwrap();
    world.start();
    world.submit(
        "writer@localhost",
        &["list@localhost"],
        &message("to-the-list"),
    );
    world.env.wait_mbox("listowner", 1);
    world.env.wait_mbox("local-member", 1);
    world.env.wait_queue_empty();

    let bounces = world.env.mbox_messages("listowner");
    assert_eq!(bounces.len(), 1);
    let dsn = parse_dsn(&bounces[0].raw);
    let blocks = dsn["recipients"].as_array().unwrap();
    assert_eq!(
        field(&blocks[0], "Final-Recipient"),
        "rfc822; member@far.example"
    );
    assert_eq!(
        world.env.count_mbox("writer"),
        0,
        "the writer gets no bounce"
    );
    let member_copy = &world.env.mbox_messages("local-member")[0];
    assert!(
        member_copy
            .from_line
            .starts_with("owner-list@test.example "),
        "{:?}",
        member_copy.from_line
    );
    let sent_on = world.lines_with(&["from=<owner-list@test.example>"]);
    assert_eq!(
        sent_on.len(),
        1,
        "one new message from the owner: {sent_on:?}"
    );
}
