//! The disk never fills because of us (DESIGN invariants 2 and 3): `maildrop/` has caps of
//! its own that `sendmail` checks while the daemon is down, and below `queue_minfree`
//! submission is refused with exit 75 and one line, leaving no partial file, while the
//! daemon keeps delivering what is queued.

use std::fs;

use testkit::*;

fn assert_refused(out: &std::process::Output, mentions: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "exit status; stderr: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "exactly one stderr line: {stderr:?}"
    );
    assert!(stderr.starts_with("sendmail: fatal: "), "{stderr:?}");
    assert!(
        stderr.contains(mentions),
        "{stderr:?} should mention {mentions}"
    );
    assert!(stderr.contains("not queued"), "{stderr:?}");
}

fn maildrop_bytes(env: &TestEnv) -> u64 {
    env.maildrop_files()
        .iter()
        .map(|n| fs::metadata(env.maildrop_dir().join(n)).unwrap().len())
        .sum()
}

#[test]
fn maildrop_count_cap_refuses_the_fourth_submission_while_the_daemon_is_down() {
    let env = TestEnv::with_config("maildrop_count_limit = 3\n");
    for i in 0..3 {
        env.send_ok(
            &["-i", "alice@localhost"],
            format!("Subject: capped-{i}\n\nx\n").as_bytes(),
        );
    }
    let before = env.maildrop_files();
    assert_eq!(before.len(), 3);
    let out = env.sendmail(&["-i", "alice@localhost"], b"Subject: one too many\n\nx\n");
    assert_refused(&out, "maildrop_count_limit");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("daemon down"),
        "says why it may be full"
    );
    assert_eq!(
        env.maildrop_files(),
        before,
        "no file left behind, temp or final"
    );

    // Once the daemon drains maildrop, submission works again.
    let _daemon = env.start();
    env.wait_mbox("alice", 3);
    env.wait_queue_empty();
    env.send_ok(&["-i", "alice@localhost"], b"Subject: capped-3\n\nx\n");
    env.wait_mbox("alice", 4);
}

#[test]
fn maildrop_size_cap_refuses_before_the_cap_is_passed() {
    const LIMIT: u64 = 20_000;
    let env = TestEnv::with_config(&format!(
        "message_size_limit = 10000\nmaildrop_size_limit = {LIMIT}\n"
    ));
    let body = "y".repeat(5990) + "\n";
    let mut accepted = 0;
    let refused = loop {
        let out = env.sendmail(
            &["-i", "alice@localhost"],
            format!("Subject: big-{accepted}\n\n{body}").as_bytes(),
        );
        if !out.status.success() {
            break out;
        }
        accepted += 1;
        assert!(accepted < 10, "maildrop_size_limit never refused");
    };
    assert!(accepted >= 2, "refused too early, after {accepted}");
    assert_refused(&refused, "maildrop_size_limit");
    assert_eq!(env.maildrop_files().len(), accepted, "no file left behind");
    assert!(
        maildrop_bytes(&env) <= LIMIT,
        "maildrop holds {} > {LIMIT}",
        maildrop_bytes(&env)
    );
}

#[test]
fn below_queue_minfree_sendmail_exits_75_and_delivery_keeps_draining() {
    let env = TestEnv::with_config("queue_minfree = \"20M\"\n");
    // The whole queue directory is a 32 MiB file system.
    let tmpfs = match Tmpfs::mount(&env.queue_dir(), "32m") {
        Ok(t) => t,
        Err(why) => {
            eprintln!(
                "SKIPPED below_queue_minfree_sendmail_exits_75_and_delivery_keeps_draining: {why}"
            );
            return;
        }
    };
    env.send_ok(&["-i", "alice@localhost"], b"Subject: queued-before\n\nx\n");

    // Fill the file system to below queue_minfree.
    let filler = env.queue_dir().join("filler");
    fs::write(&filler, vec![0u8; 16 << 20]).unwrap();
    let before = env.maildrop_files();
    let out = env.sendmail(&["-i", "alice@localhost"], b"Subject: refused\n\nx\n");
    assert_refused(&out, "queue_minfree");
    assert_eq!(env.maildrop_files(), before, "nothing partial left");

    // The daemon still delivers what is queued while intake is refused.
    let daemon = env.start();
    env.wait_mbox("alice", 1);
    env.wait_queue_empty();
    let out = env.sendmail(&["-i", "alice@localhost"], b"Subject: still refused\n\nx\n");
    assert_refused(&out, "queue_minfree");

    // Room again: submission works and is delivered.
    fs::remove_file(&filler).unwrap();
    env.send_ok(
        &["-i", "alice@localhost"],
        b"Subject: accepted-after\n\nx\n",
    );
    env.wait_mbox("alice", 2);
    env.wait_queue_empty();
    let subjects: Vec<String> = env
        .mbox_messages("alice")
        .into_iter()
        .filter_map(|m| m.subject)
        .collect();
    assert_eq!(subjects, ["queued-before", "accepted-after"]);
    drop(daemon); // before the unmount
    drop(tmpfs);
}
