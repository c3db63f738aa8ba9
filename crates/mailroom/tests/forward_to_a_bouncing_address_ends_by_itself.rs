//! Seed 002: a user's `.forward` sends everything to an address that has stopped working,
//! and the user writes (or a machine writes as the user) to themselves. The forwarded copy
//! bounces back to the user; the user's `.forward` forwards the bounce; that fails too —
//! on the seed's server each round left one more bounce in the spool, until it filled.
//!
//! Here the forwarded bounce keeps its null sender, so its failure is not bounced again:
//! it ends as one notice to the postmaster, the user's mailbox stays empty, the queue
//! drains, and the dead address was tried exactly twice (the mail, then its bounce).

use std::fs;
use std::sync::Arc;

use testkit::privsep::{local_user, write_as};
use testkit::*;

fn dead_address() -> Peer {
    Peer::start_with(
        OnConnect::Greet,
        Arc::new(|rcpt: &str| {
            format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown")
        }),
    )
}

#[test]
fn a_forward_to_an_address_that_bounces_ends_at_the_postmaster_once() {
    let Some((user, ids)) = local_user() else {
        return;
    };
    let peer = dead_address();
    let mut world = World::builder().smtp().peer(&peer).build();
    let forward_dir = world.env.root.join("forward");
    world.configure(&format!(
        "forward_path = \"{}/$user\"\n",
        forward_dir.display()
    ));
    open_up(&world.env.root);
    fs::create_dir(&forward_dir).unwrap();
    open_up(&forward_dir);
    write_as(
        &forward_dir.join(&user),
        "gone@bouncing.example\n",
        ids,
        0o644,
    );
    world.start();

    let me = format!("{user}@localhost");
    world.submit(&me, &[&me], &message("seed-002"));
    world.env.wait_mbox("postmaster", 1);
    world.env.wait_queue_empty();

    assert_eq!(
        peer.rcpt_attempts(),
        ["gone@bouncing.example", "gone@bouncing.example"],
        "the forwarded mail, then the forwarded bounce: once each"
    );
    assert_eq!(
        world.env.count_mbox(&user),
        0,
        "no bounce piles up in the user's mailbox"
    );
    let notices = world.env.mbox_messages("postmaster");
    assert_eq!(notices.len(), 1, "one postmaster notice");
    let dsn = parse_dsn(&notices[0].raw);
    let blocks = dsn["recipients"].as_array().unwrap();
    assert_eq!(
        field(&blocks[0], "Final-Recipient"),
        "rfc822; gone@bouncing.example"
    );
    assert_eq!(field(&blocks[0], "Status"), "5.1.1");
    // The user's delivery was a forward both times, never a mailbox write.
    let forwarded = world.lines_with(&[&format!("to=<{me}>"), "forwarded as new message"]);
    assert_eq!(forwarded.len(), 2, "{forwarded:?}");
    assert_eq!(world.lines_with(&["status=bounced"]).len(), 2);
}
