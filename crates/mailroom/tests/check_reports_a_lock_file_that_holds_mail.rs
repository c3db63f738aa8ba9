//! README's known gap, seed 003's picture: an old spool holds `alice.lock` that is mail (an
//! mbox named so before mailbox names were checked). Local delivery rightly keeps it — it is
//! never removed as a stale lock — but every delivery to alice waits behind it, and `check`
//! and `doctor` said nothing. Now `check` names the file and what to do (move it, never
//! delete it), `doctor` is critical, and after the operator's `mv` alice's mail flows again
//! with the old mail kept byte for byte.

use std::fs;

use testkit::*;

#[test]
fn a_lock_file_holding_mail_is_reported_and_moving_it_unblocks_the_mailbox() {
    let env = TestEnv::new();
    let daemon = env.start();
    let lock = env.spool_dir().join("alice.lock");
    let old_mail =
        b"From old@example.org Mon Nov 30 10:00:00 2026\nSubject: from the old spool\n\nkept\n";
    fs::write(&lock, old_mail).unwrap();

    env.send_ok(&["-i", "alice"], b"Subject: new\n\nwaits behind the lock\n");
    let deferred = env.wait_log("status=deferred", 1);
    assert!(deferred[0].contains("to=<alice@"), "{deferred:?}");

    let out = env.run(&["check", "--json"], b"");
    assert!(
        !out.status.success(),
        "check passed with alice.lock holding mail"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let problems = report["problems"].as_array().unwrap();
    let problem = problems
        .iter()
        .find(|p| p["path"] == lock.display().to_string())
        .unwrap_or_else(|| panic!("alice.lock not reported: {report:#}"));
    assert_eq!(problem["severity"], "error", "{problem:#}");
    let what = problem["what"].as_str().unwrap();
    assert!(
        what.contains(&format!("holds {} bytes", old_mail.len())) && what.contains("alice"),
        "{what}"
    );

    let doctor = env.run(&["doctor"], b"");
    let text = String::from_utf8_lossy(&doctor.stdout).into_owned();
    assert_eq!(doctor.status.code(), Some(2), "critical:\n{text}");
    assert!(
        text.contains("alice.lock") && text.contains("mailroom check says how to fix it"),
        "{text}"
    );

    // check --fix changes modes only: the mail stays where it is.
    let out = env.run(&["check", "--fix"], b"");
    assert!(!out.status.success());
    assert_eq!(fs::read(&lock).unwrap(), old_mail);

    // The operator runs the command check gave, as a shell would.
    let fix = problem["fix"].as_str().unwrap();
    let command = fix.split(" (").next().unwrap();
    assert!(command.starts_with("mv -n "), "{fix}");
    let status = std::process::Command::new("sh")
        .args(["-c", command])
        .status()
        .unwrap();
    assert!(status.success(), "{command}");
    let saved = env.spool_dir().join("alice.held-mail");
    assert_eq!(fs::read(&saved).unwrap(), old_mail, "the old mail is kept");

    assert_success(&env.run(&["postqueue", "-f"], b""), "postqueue -f");
    env.wait_mbox("alice", 1);
    let messages = env.mbox_messages("alice");
    assert_eq!(messages[0].subject.as_deref(), Some("new"));
    assert_success(&env.run(&["check"], b""), "check after the move");
    drop(daemon);
}
