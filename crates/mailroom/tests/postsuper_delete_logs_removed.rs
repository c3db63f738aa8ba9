//! `postsuper -d ID` leaves Postfix's line in the mail log, `postsuper[PID]: ID: removed`
//! (and the `Deleted: N messages` summary), whether the daemon ran the deletion or the
//! tool did it itself with the daemon down — so the log says where a message went.

use testkit::*;

const EXTRA: &str = "relayhost = \"[127.0.0.1]:9\"\n";

fn queued_id(env: &TestEnv) -> String {
    let mut id = None;
    wait_until("a queued message", || {
        id = env
            .queue_json()
            .first()
            .and_then(|m| m["queue_id"].as_str().map(str::to_string));
        id.is_some()
    });
    id.unwrap()
}

fn delete_and_check_log(env: &TestEnv, id: &str) {
    let out = env.run(&["postsuper", "-d", id], b"");
    assert_success(&out, "postsuper -d");
    let lines = env.log_lines(&format!("{id}: removed"));
    assert_eq!(lines.len(), 1, "log:\n{}", env.log());
    assert!(lines[0].contains(" mailroom/postsuper["), "{}", lines[0]);
    assert!(env.log().contains("mailroom/postsuper"), "{}", env.log());
    assert!(
        env.log_lines("postsuper[")
            .iter()
            .any(|l| l.ends_with(": Deleted: 1 message")),
        "{}",
        env.log()
    );
}

#[test]
fn postsuper_d_logs_id_removed_with_the_daemon_up_and_down() {
    let env = TestEnv::with_config(EXTRA);
    let mut daemon = env.start();
    env.send_ok(
        &["-f", "a@localhost", "far@elsewhere.example"],
        b"Subject: 1\n\nx\n",
    );
    env.wait_log("status=deferred", 1);
    let first = queued_id(&env);
    delete_and_check_log(&env, &first);

    daemon.signal(libc::SIGTERM);
    daemon.wait_exit(DEADLINE).expect("daemon stopped");
    env.send_ok(
        &["-f", "a@localhost", "far@elsewhere.example"],
        b"Subject: 2\n\nx\n",
    );
    let second = queued_id(&env);
    assert_ne!(first, second);
    let out = env.run(&["postsuper", "-d", &second, "maildrop"], b"");
    assert_success(&out, "postsuper -d maildrop (daemon down)");
    assert_eq!(
        env.log_lines(&format!("{second}: removed")).len(),
        1,
        "{}",
        env.log()
    );
}
