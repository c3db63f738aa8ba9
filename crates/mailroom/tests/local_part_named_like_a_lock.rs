//! Issue 8 defect 3: mail to `alice.lock@localhost` created `mail/alice.lock` — alice's
//! dotlock, the name mutt and s-nail use for `/var/mail/alice`. Alice's mail then deferred
//! ("dotlock held by another process"), and five minutes later the daemon removed the
//! "stale lock": an acknowledged message deleted. Now no mailbox name may end in `.lock`:
//! SMTP refuses it at RCPT (550 5.1.1, no backscatter), a local submission (`sendmail`,
//! which has no RCPT stage) bounces it, and in neither case does a file of that name
//! appear, so alice's mail keeps flowing.

use testkit::*;

/// `swaks` from the trusted 127.0.0.1 to `to`; returns its transcript.
fn swaks_to(smtp: &World, to: &str, subject: &str) -> (bool, String) {
    let out = smtp.swaks(&[
        "--from",
        "sender@example.org",
        "--to",
        to,
        "--header",
        &format!("Subject: {subject}"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success(), text)
}

#[test]
fn mail_to_user_dot_lock_is_refused_at_rcpt_and_never_becomes_a_dotlock() {
    let smtp = World::started("");
    let (ok, text) = swaks_to(&smtp, "alice@localhost", "first");
    assert!(ok, "{text}");
    smtp.env.wait_mbox("alice", 1);

    for lock_name in ["alice.lock@localhost", "Alice.LOCK@localhost"] {
        let (ok, text) = swaks_to(&smtp, lock_name, "to the lock");
        assert!(!ok, "{lock_name} was accepted:\n{text}");
        assert!(
            text.contains("<** 550 5.1.1") && text.contains("User unknown in local recipient"),
            "{lock_name}: {text}"
        );
    }
    assert!(
        !smtp.env.mbox("alice.lock").exists(),
        "alice's dotlock was created"
    );

    // Alice's mail is not held up: it is delivered at once, not deferred behind a lock.
    let (ok, text) = swaks_to(&smtp, "alice@localhost", "second");
    assert!(ok, "{text}");
    smtp.env.wait_mbox("alice", 2);
    // Alice's real dotlock exists while a delivery runs; the log line comes after it is gone.
    smtp.env.wait_log("status=sent", 2);
    assert!(
        smtp.env.log_lines("dotlock").is_empty()
            && smtp.env.log_lines("status=deferred").is_empty(),
        "{}",
        tail(&smtp.env.log(), 20)
    );
    assert_eq!(list_dir(&smtp.env.spool_dir()), ["alice"]);
}

#[test]
fn a_local_submission_to_user_dot_lock_bounces_without_touching_the_spool() {
    let smtp = World::started("");
    let me = current_user();
    smtp.env
        .send_ok(&["bob.lock"], b"Subject: to the lock\n\nx\n");
    let bounced = smtp.env.wait_log("to=<bob.lock@", 1);
    assert!(
        bounced[0].contains("status=bounced") && bounced[0].contains("dsn=5.1.3"),
        "{bounced:?}"
    );
    assert!(
        bounced[0].contains(".lock"),
        "the reason names the rule: {bounced:?}"
    );
    // The sender (the submitting user) gets the bounce; bob's mailbox works as before.
    smtp.env.wait_mbox(&me, 1);
    smtp.env.send_ok(&["bob"], b"Subject: to bob\n\nx\n");
    smtp.env.wait_mbox("bob", 1);
    smtp.env.wait_log("status=sent", 2);
    let mut expected = vec!["bob".to_string(), me];
    expected.sort();
    assert_eq!(list_dir(&smtp.env.spool_dir()), expected);
}
