//! Submission never needs the daemon: with `serve` stopped, `sendmail` exits 0, the mail
//! waits in `maildrop/` (visible to `mailq`), and once `serve` starts every message is
//! delivered exactly once and the queue drains.

use testkit::*;

const N: usize = 12;

#[test]
fn mail_submitted_while_the_daemon_is_down_is_delivered_once_it_starts() {
    let env = TestEnv::new();
    // sendmail creates the store layout itself: serve has never run here.
    assert!(!env.queue_dir().exists());
    for i in 0..N {
        let msg = format!("Subject: down-{i}\nFrom: sender@test.example\n\nbody of message {i}\n");
        let out = env.sendmail(&["-i", "alice@localhost"], msg.as_bytes());
        assert_success(&out, "sendmail with the daemon down");
        assert!(
            out.stderr.is_empty(),
            "sendmail printed: {:?}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // mailq lists them all, from maildrop.
    let listed = env.mailq();
    assert!(
        listed.contains(&format!("in {N} Requests.")),
        "mailq:\n{listed}"
    );
    assert_eq!(
        listed.matches("alice@localhost").count(),
        N,
        "mailq:\n{listed}"
    );
    let json = env.queue_json();
    assert_eq!(json.len(), N);
    for entry in &json {
        assert_eq!(entry["queue_name"], "maildrop", "{entry}");
        assert_eq!(
            entry["recipients"][0]["address"], "alice@localhost",
            "{entry}"
        );
    }
    assert_eq!(env.maildrop_files().len(), N);
    assert_eq!(env.count_mbox("alice"), 0);

    let _daemon = env.start();
    env.wait_mbox("alice", N);
    env.wait_queue_empty();
    assert_eq!(env.mailq().trim(), "Mail queue is empty");

    let messages = env.mbox_messages("alice");
    let subjects = multiset(
        messages
            .iter()
            .map(|m| m.subject.clone().unwrap_or_default()),
    );
    for i in 0..N {
        assert_eq!(
            subjects.get(&format!("down-{i}")),
            Some(&1),
            "subjects: {subjects:?}"
        );
    }
    assert_eq!(messages.len(), N, "subjects: {subjects:?}");
    let sender = format!("{}@test.example ", current_user());
    for (i, m) in messages.iter().enumerate() {
        assert!(
            m.from_line.starts_with(&sender),
            "separator {:?}",
            m.from_line
        );
        assert_eq!(m.header("Delivered-To").as_deref(), Some("alice@localhost"));
        assert!(
            m.header("Received").is_some(),
            "message {i} has no Received header"
        );
    }
    let sent = env.log_lines("status=sent");
    assert_eq!(sent.len(), N, "log:\n{}", env.log());
    assert!(sent
        .iter()
        .all(|l| l.contains("to=<alice@localhost>") && l.contains("relay=local")));
    assert!(env.maildrop_files().is_empty());
}
