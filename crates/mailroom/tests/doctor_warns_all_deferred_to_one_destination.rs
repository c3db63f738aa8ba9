//! Issue 8, defect 14, seed 004's picture: the relayhost is dead, the whole queue is
//! deferred to it, and `mailroom doctor` said `status: ok` with the reason cut mid-text.
//! Now doctor warns (exit 1), naming the destination and the reason in full.

use testkit::*;

#[test]
fn doctor_warns_when_all_deferred_mail_waits_on_a_dead_relayhost() {
    let closed = free_port();
    let env = TestEnv::with_config(&format!("relayhost = \"[127.0.0.1]:{closed}\"\n"));
    for to in ["a@one.example", "b@two.example", "c@three.example"] {
        env.send_ok(&["-i", to], b"Subject: to a dead relayhost\n\nbody\n");
    }
    let _daemon = env.start();
    env.wait_log("status=deferred", 3);

    let out = env.run(&["doctor"], b"");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "a warning, not ok:\n{text}");
    assert!(text.contains("status: WARN"), "{text}");
    let destination = format!("all 3 deferred messages wait on relayhost [127.0.0.1]:{closed}: ");
    let line = text
        .lines()
        .find(|l| l.contains(&destination))
        .unwrap_or_else(|| panic!("no line naming the relayhost:\n{text}"));
    // The reason as the log has it, not cut: compare with the deferred log line's text.
    let logged = env.log_lines("status=deferred");
    let reason = logged[0]
        .rsplit_once(" (")
        .map(|(_, r)| r.trim_end_matches(')'))
        .unwrap();
    assert!(reason.len() > 20, "{reason}");
    let shown = line.split_once(&destination).unwrap().1;
    let shown = shown
        .strip_prefix("delivery temporarily suspended: ")
        .unwrap_or(shown);
    let reason = reason
        .strip_prefix("delivery temporarily suspended: ")
        .unwrap_or(reason);
    assert_eq!(shown, reason, "the reason in full:\n{text}");
}
