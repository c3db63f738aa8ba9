//! header_checks and body_checks (regexp: tables) on mail from SMTP and from sendmail:
//! REJECT (550 at the end of DATA; a bounce for sendmail mail, as Postfix's pickup does),
//! HOLD (hold queue), DISCARD (accepted, never delivered), WARN (a log line), IGNORE (header
//! removed), PREPEND (header added), REDIRECT (delivered elsewhere); each logged in
//! Postfix's cleanup format.

use std::fs;

use testkit::*;

const HEADER_CHECKS: &str = "\
/^Subject:.*cheap pills/ REJECT
/^Subject:.*hold me/ HOLD held for review
/^Subject:.*drop me/ DISCARD
/^Subject:.*warn me/ WARN looks odd
/^Subject:.*send elsewhere/ REDIRECT other@test.example
/^X-Secret:/ IGNORE
/^X-Tag:/ PREPEND X-Tagged: yes
";
const BODY_CHECKS: &str = "/^buy viagra/ REJECT no spam here\n";

fn world() -> World {
    let mut world = World::new("");
    let root = world.env.root.clone();
    fs::write(root.join("header_checks"), HEADER_CHECKS).unwrap();
    fs::write(root.join("body_checks"), BODY_CHECKS).unwrap();
    world.configure(&format!(
        "header_checks = [\"regexp:{0}/header_checks\"]\nbody_checks = [\"regexp:{0}/body_checks\"]",
        root.display()
    ));
    world.start();
    world
}

/// One message over SMTP; returns the reply to the end of DATA.
fn smtp(world: &World, to: &str, message: &str) -> Reply {
    world.data_reply("a@test.example", to, message)
}

fn queued_id(reply: &Reply) -> String {
    assert_eq!(reply.code, 250, "{}", reply.text());
    reply.text().rsplit(' ').next().unwrap().to_string()
}

/// Waits for the delivery's log line, written once the mbox is complete (a message's
/// separator line appears in the mbox before the rest of it).
fn delivered(world: &World, user: &str) {
    world.wait_lines(&[&format!("to=<{user}@test.example>"), "status=sent"], 1);
}

fn mbox(world: &World, user: &str) -> String {
    fs::read_to_string(world.env.mbox(user)).unwrap_or_default()
}

#[test]
fn each_action_on_mail_from_smtp() {
    let world = world();
    let from = "from unknown[127.0.0.1]; from=<a@test.example>";
    let reply = smtp(&world, "alice@test.example", "Subject: cheap pills\n\nhi\n");
    assert_eq!(reply.text(), "550 5.7.1 message content rejected");
    world.env.wait_log(&format!("reject: header Subject: cheap pills {from} to=<alice@test.example> proto=ESMTP helo=<client.test>: 5.7.1 message content rejected"), 1);
    let reply = smtp(
        &world,
        "alice@test.example",
        "Subject: fine\n\nbuy viagra now\n",
    );
    assert_eq!(reply.text(), "550 5.7.1 no spam here");
    world
        .env
        .wait_log("reject: body buy viagra now from unknown[127.0.0.1];", 1);

    let held = queued_id(&smtp(&world, "bob@test.example", "Subject: hold me\n\nx\n"));
    let queue = world.queue();
    assert!(
        queue.iter().any(|(q, id, _)| q == "hold" && *id == held),
        "{queue:?}"
    );
    world
        .env
        .wait_log(&format!("{held}: hold: header Subject: hold me {from}"), 1);

    let dropped = queued_id(&smtp(&world, "bob@test.example", "Subject: drop me\n\nx\n"));
    world.env.wait_log(
        &format!("{dropped}: discard: header Subject: drop me {from}"),
        1,
    );
    assert!(!world.queue().iter().any(|(_, id, _)| *id == dropped));

    let edited = "Subject: warn me\nX-Secret: s3cret\nX-Tag: t\n\nbody\n";
    queued_id(&smtp(&world, "carol@test.example", edited));
    delivered(&world, "carol");
    let carol = mbox(&world, "carol");
    assert!(carol.contains("\nX-Tagged: yes\nX-Tag: t\n"), "{carol}");
    assert!(!carol.contains("X-Secret"), "{carol}");
    world.env.wait_log(&format!("warning: header Subject: warn me {from} to=<carol@test.example> proto=ESMTP helo=<client.test>: looks odd"), 1);
    world
        .env
        .wait_log("prepend: header X-Tag: t from unknown[127.0.0.1];", 1);

    queued_id(&smtp(
        &world,
        "dave@test.example",
        "Subject: send elsewhere\n\nx\n",
    ));
    delivered(&world, "other");
    assert!(
        !world.env.mbox("dave").exists(),
        "the redirected recipient got it too"
    );
    world.env.wait_log(
        "redirect: header Subject: send elsewhere from unknown[127.0.0.1];",
        1,
    );
    // Bob's mail was held or discarded: nothing reached him.
    assert!(!world.env.mbox("bob").exists());
}

#[test]
fn each_action_on_mail_from_sendmail() {
    let world = world();
    let send = |to: &str, message: &str| {
        world
            .env
            .send_ok(&["-f", "a@test.example", to], message.as_bytes())
    };
    send("alice@test.example", "Subject: cheap pills\n\nhi\n");
    world.env.wait_log("reject: header Subject: cheap pills from local; from=<a@test.example> to=<alice@test.example>: 5.7.1 message content rejected", 1);
    // The sender gets the bounce, alice nothing.
    delivered(&world, "a");
    assert!(mbox(&world, "a").contains("message content rejected"));
    assert!(!world.env.mbox("alice").exists());

    send("bob@test.example", "Subject: hold me\n\nx\n");
    world
        .env
        .wait_log("hold: header Subject: hold me from local;", 1);
    wait_until("the message in the hold queue", || {
        world
            .queue()
            .iter()
            .any(|(q, _, r)| q == "hold" && r == &["bob@test.example"])
    });
    send("bob@test.example", "Subject: drop me\n\nx\n");
    world
        .env
        .wait_log("discard: header Subject: drop me from local;", 1);

    send(
        "carol@test.example",
        "Subject: warn me\nX-Secret: s\nX-Tag: t\n\nbody\n",
    );
    delivered(&world, "carol");
    let carol = mbox(&world, "carol");
    assert!(carol.contains("\nX-Tagged: yes\nX-Tag: t\n"), "{carol}");
    assert!(!carol.contains("X-Secret"), "{carol}");
    world.env.wait_log("warning: header Subject: warn me from local; from=<a@test.example> to=<carol@test.example>: looks odd", 1);
    // The delivered ones leave the queue; the held one stays, and bob never got mail.
    wait_until("only the held message left in the queue", || {
        world.queue().len() == 1
    });
    assert!(!world.env.mbox("bob").exists());
}
