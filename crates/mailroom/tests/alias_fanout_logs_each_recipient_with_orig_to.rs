//! An alias that fans out to several users is logged as Postfix logs it: one delivery line
//! per final recipient, `to=<member>, orig_to=<alias>`, each with its own status — not one
//! line for the alias that hides who got the mail. A plain user keeps its single line
//! without `orig_to`.

use std::fs;
use testkit::*;

#[test]
fn alias_fanout_logs_one_line_per_member_with_orig_to() {
    let env = TestEnv::new();
    fs::write(env.aliases_file(), "team: alice, bob, carol\n").unwrap();
    let _daemon = env.start();
    env.send_ok(
        &["-f", "a@localhost", "team@localhost"],
        b"Subject: all\n\nx\n",
    );
    env.send_ok(
        &["-f", "a@localhost", "dave@localhost"],
        b"Subject: one\n\nx\n",
    );
    for user in ["alice", "bob", "carol", "dave"] {
        env.wait_mbox(user, 1);
    }
    let lines = env.wait_log("status=sent", 4);
    for user in ["alice", "bob", "carol"] {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("to=<{user}@")))
            .unwrap_or_else(|| panic!("no line for {user}:\n{}", lines.join("\n")));
        assert!(
            line.contains(", orig_to=<team@localhost>, relay=local,"),
            "{line}"
        );
        assert!(
            line.contains("status=sent (delivered to mailbox)"),
            "{line}"
        );
    }
    let dave = lines.iter().find(|l| l.contains("to=<dave@")).unwrap();
    assert!(!dave.contains("orig_to="), "{dave}");
    // No line claims the alias itself was delivered.
    assert!(
        !lines.iter().any(|l| l.contains(": to=<team@localhost>")),
        "{}",
        lines.join("\n")
    );
}

#[test]
fn a_member_that_fails_is_logged_with_its_own_status() {
    let env = TestEnv::new();
    // ":include:" of a file that does not exist: that member fails, alice still gets it.
    let missing = env.root.join("no-such-list");
    fs::write(
        env.aliases_file(),
        format!("team: alice, :include:{}\n", missing.display()),
    )
    .unwrap();
    let _daemon = env.start();
    env.send_ok(
        &["-f", "a@localhost", "team@localhost"],
        b"Subject: all\n\nx\n",
    );
    env.wait_mbox("alice", 1);
    let lines = env.wait_log("orig_to=<team@localhost>", 2);
    let alice = lines.iter().find(|l| l.contains("to=<alice@")).unwrap();
    assert!(alice.contains("status=sent"), "{alice}");
    assert!(
        lines.iter().any(|l| !l.contains("status=sent")),
        "the failed member is not logged apart:\n{}",
        lines.join("\n")
    );
}
