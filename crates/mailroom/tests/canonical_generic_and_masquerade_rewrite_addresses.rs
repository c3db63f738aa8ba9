//! Address rewriting seen from outside: `sender_canonical_maps` and `masquerade_domains`
//! change the envelope sender (the delivered `Return-Path:`) and the `From:` header;
//! a `regexp:` `recipient_canonical_maps` sends `staff@` to dave and rewrites `To:`;
//! `smtp_generic_maps` changes what a real SMTP peer receives; and a map broken by an edit
//! keeps the previous one at reload (logging file:line) and refuses a start.

use std::fs;
use testkit::*;

#[test]
fn canonical_and_masquerade_show_in_return_path_and_headers() {
    let env = TestEnv::new();
    let root = env.root.display().to_string();
    fs::write(
        env.root.join("sender_canonical"),
        "admin  ops@web01.example.com\n",
    )
    .unwrap();
    fs::write(
        env.root.join("recipient_canonical"),
        "/^staff@(.*)$/  dave@localhost\n",
    )
    .unwrap();
    env.write_config(&format!(
        "sender_canonical_maps = [\"{root}/sender_canonical\"]\n\
         recipient_canonical_maps = [\"regexp:{root}/recipient_canonical\"]\n\
         masquerade_domains = [\"example.com\"]"
    ));
    let _daemon = env.start();
    env.send_ok(
        &["-f", "admin@test.example", "staff@localhost"],
        b"From: Admin <admin@test.example>\nTo: staff@localhost\nSubject: rewritten\n\nbody admin@test.example\n",
    );
    env.wait_mbox("dave", 1);
    let got = env.mbox_messages("dave");
    let headers = got[0].headers();
    assert!(
        got[0].from_line.starts_with("ops@example.com "),
        "{}",
        got[0].from_line
    );
    assert!(
        headers.contains("Return-Path: <ops@example.com>"),
        "{headers}"
    );
    assert!(
        headers.contains("From: Admin <ops@example.com>"),
        "{headers}"
    );
    assert!(headers.contains("To: dave@localhost"), "{headers}");
    // The body is not rewritten.
    let raw = String::from_utf8_lossy(&got[0].raw);
    assert!(raw.contains("body admin@test.example"), "{raw}");
    let line = env.wait_log("to=<dave@localhost>", 1);
    assert!(line[0].contains("orig_to=<staff@localhost>"), "{line:?}");
}

#[test]
fn generic_maps_rewrite_what_the_smtp_peer_receives() {
    let peer = Peer::start();
    let world = World::builder().smtp().peer(&peer).build();
    let root = world.env.root.display().to_string();
    fs::write(
        world.env.root.join("generic"),
        "root@web01.localdomain  ops@example.com\n",
    )
    .unwrap();
    world.configure(&format!("smtp_generic_maps = [\"{root}/generic\"]"));
    let mut world = world;
    world.start();
    world.submit(
        "root@web01.localdomain",
        &["someone@far.example"],
        "From: Root <root@web01.localdomain>\nTo: someone@far.example\nSubject: out\n\nx\n",
    );
    wait_until("the relayed copy", || !peer.messages().is_empty());
    let got = &peer.messages()[0];
    assert_eq!(got.sender, "ops@example.com");
    assert_eq!(got.recipients, ["someone@far.example"]);
    assert_eq!(
        got.header("From").as_deref(),
        Some("Root <ops@example.com>")
    );
    // The queue and the log keep the address as it was queued.
    let sent = world.wait_lines(&["to=<someone@far.example>", "status=sent"], 1);
    assert!(!sent[0].contains("ops@example.com"), "{sent:?}");
}

#[test]
fn a_broken_map_at_reload_keeps_the_old_one_and_refuses_a_start() {
    let env = TestEnv::new();
    let map = env.root.join("virtual.re");
    fs::write(&map, "/^info@example\\.org$/  alice@localhost\n").unwrap();
    env.write_config(&format!(
        "virtual_alias_maps = [\"regexp:{}\"]",
        map.display()
    ));
    let daemon = env.start();
    env.send_ok(
        &["-f", "s@localhost", "info@example.org"],
        b"Subject: one\n\nx\n",
    );
    env.wait_mbox("alice", 1);
    fs::write(
        &map,
        "/^info@example\\.org$/  bob@localhost\n/(unclosed/  x@localhost\n",
    )
    .unwrap();
    let out = env.run(&["reload"], b"");
    assert_success(&out, "mailroom reload");
    let warned = env.wait_log("reload failed, keeping the old configuration and maps", 1);
    assert!(
        warned[0].contains(&format!("{}:2", map.display())),
        "{warned:?}"
    );
    // Still the old map: alice, not bob.
    env.send_ok(
        &["-f", "s@localhost", "info@example.org"],
        b"Subject: two\n\nx\n",
    );
    env.wait_mbox("alice", 2);
    assert_eq!(env.count_mbox("bob"), 0);
    // `mailroom check` names the line; a new start refuses with it.
    let check = env.run(&["check"], b"");
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{}:2", map.display())), "{text}");
    drop(daemon);
    let out = env.run(&["serve"], b"");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains(&format!("{}:2", map.display())), "{err}");
}
