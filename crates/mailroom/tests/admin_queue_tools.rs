//! The queue tools end to end, with the daemon down (lock-free snapshot, store opened by the
//! tool) and up (everything through the control socket): Postfix's `mailq` layout, `postqueue
//! -j` fields, the `postqueue -j` → `postsuper -d -` round trip, hold/release marks, selectors,
//! qshape and postcat.

use testkit::*;

/// Deferred mail: remote recipients go to a relay that refuses connections; an hour of
/// backoff keeps it deferred (no retry in flight) while the tools look at it with the daemon
/// up — with the base's 1-2 s a retry could make a message active under a hold or a count.
const EXTRA: &str = "relayhost = \"[127.0.0.1]:9\"\nsmtpd_listen = []\n\
                     minimal_backoff_time = \"1h\"\nmaximal_backoff_time = \"2h\"\n";

fn submit(env: &TestEnv, n: usize, sender: &str, rcpt: &str) {
    for i in 0..n {
        let msg = format!("Subject: tools-{i}\n\nbody {i}\n");
        env.send_ok(&["-f", sender, rcpt], msg.as_bytes());
    }
}

/// Runs the daemon until every message has been tried once, then stops it cleanly.
fn defer_all(env: &TestEnv, n: usize) {
    let mut daemon = env.start();
    wait_until("every message deferred once", || {
        let rows = env.queue_json();
        rows.len() == n
            && rows
                .iter()
                .all(|r| r["recipients"][0]["delay_reason"].is_string())
    });
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit(DEADLINE).is_some(), "daemon did not stop");
}

fn ids(env: &TestEnv) -> Vec<String> {
    env.queue_json()
        .iter()
        .map(|r| r["queue_id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn mailq_layout_matches_postfix() {
    let env = TestEnv::with_config(EXTRA);
    assert_eq!(env.mailq(), "Mail queue is empty\n");
    submit(&env, 3, "cron@test.example", "root@remote.example");
    defer_all(&env, 3);
    let text = env.mailq();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------"
    );
    // "%-17s %8ld %19.19s %s": ID, size, asctime without the year, sender.
    let first = lines[1];
    assert_eq!(
        first.len(),
        17 + 1 + 8 + 1 + 19 + 1 + "cron@test.example".len(),
        "{first:?}"
    );
    assert!(first.ends_with(" cron@test.example"), "{first:?}");
    assert_eq!(&first[16..18], "  ", "no status mark on a deferred message");
    // "%*s(%s)" padded to 76, then the recipient at column 48.
    assert!(
        lines[2].trim_start().starts_with('(') && lines[2].ends_with(')'),
        "{:?}",
        lines[2]
    );
    assert_eq!(
        lines[2].len(),
        78.max(lines[2].trim_start().len()),
        "{:?}",
        lines[2]
    );
    assert_eq!(lines[3], format!("{}root@remote.example", " ".repeat(47)));
    assert_eq!(lines[4], "");
    assert!(
        lines.last().unwrap().starts_with("-- ")
            && lines.last().unwrap().ends_with(" Kbytes in 3 Requests."),
        "{text}"
    );
    assert_eq!(lines[lines.len() - 2], "");

    let json = env.queue_json();
    let keys: Vec<&str> = json[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "queue_name",
        "queue_id",
        "arrival_time",
        "message_size",
        "forced_expire",
        "sender",
        "recipients",
    ] {
        assert!(keys.contains(&k), "missing {k} in {}", json[0]);
    }
    assert_eq!(json[0]["queue_name"], "deferred");
    assert_eq!(json[0]["forced_expire"], false);
    // Postfix's spacing: `{"queue_name": "deferred", "queue_id": …`.
    let raw = String::from_utf8(env.run(&["postqueue", "-j"], b"").stdout).unwrap();
    assert!(
        raw.starts_with("{\"queue_name\": \"deferred\", \"queue_id\": \""),
        "{raw}"
    );

    // The same listing through the daemon (its in-memory index).
    let _daemon = env.start();
    let live = env.queue_json();
    assert_eq!(live.len(), 3);
    let shape = String::from_utf8(env.run(&["qshape", "all"], b"").stdout).unwrap();
    assert!(
        shape
            .lines()
            .nth(1)
            .unwrap()
            .trim_start()
            .starts_with("TOTAL  3"),
        "{shape}"
    );
    assert!(shape.contains("remote.example  3"), "{shape}");
}

#[test]
fn postqueue_j_into_postsuper_d_dash_round_trip() {
    let env = TestEnv::with_config(EXTRA);
    submit(&env, 5, "a@test.example", "x@remote.example");
    defer_all(&env, 5);
    // Daemon down: the tool opens the store itself.
    let all = ids(&env);
    let two = format!("{}\n{}\n", all[0], all[1]);
    let out = env.run(&["postsuper", "-d", "-"], two.as_bytes());
    assert_success(&out, "postsuper -d - (daemon down)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("postsuper: {}: removed", all[0])),
        "{err}"
    );
    assert!(err.ends_with("postsuper: Deleted: 2 messages\n"), "{err}");
    assert_eq!(ids(&env), all[2..]);

    // Daemon up: everything goes through the control socket.
    let _daemon = env.start();
    let listed: String = ids(&env).iter().map(|i| format!("{i}\n")).collect();
    let out = env.run(&["postsuper", "-d", "-"], listed.as_bytes());
    assert_success(&out, "postsuper -d - (daemon up)");
    assert!(String::from_utf8_lossy(&out.stderr).ends_with("postsuper: Deleted: 3 messages\n"));
    assert_eq!(env.mailq(), "Mail queue is empty\n");
    let out = env.run(&["postsuper", "-d", "not-a-queue-id"], b"");
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("warning: invalid mail queue id: not-a-queue-id"));
}

#[test]
fn hold_release_selectors_and_postcat_through_the_daemon() {
    let env = TestEnv::with_config(EXTRA);
    submit(&env, 2, "cron@test.example", "root@remote.example");
    submit(&env, 2, "alice@test.example", "bob@other.example");
    defer_all(&env, 4);
    let _daemon = env.start();
    let out = env.run(
        &["postsuper", "-h", "ALL", "--from", "cron@test.example"],
        b"",
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "postsuper: Placed on hold: 2 messages\n"
    );
    let text = env.mailq();
    assert_eq!(text.matches("! ").count(), 2, "{text}");
    let held: Vec<_> = env
        .queue_json()
        .into_iter()
        .filter(|r| r["queue_name"] == "hold")
        .collect();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|r| r["sender"] == "cron@test.example"));

    let dry = env.run(&["postsuper", "-d", "ALL", "--to", "bob", "--dry-run"], b"");
    assert_eq!(String::from_utf8_lossy(&dry.stdout).lines().count(), 2);
    assert!(String::from_utf8_lossy(&dry.stderr).contains("dry run"));
    assert_eq!(env.queue_json().len(), 4, "a dry run changes nothing");

    let out = env.run(&["postsuper", "-H", "ALL"], b"");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "postsuper: Released from hold: 2 messages\n"
    );
    let id = env.queue_json()[0]["queue_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cat = env.run(&["postcat", "-q", &id], b"");
    assert_success(&cat, "postcat -q");
    let cat = String::from_utf8_lossy(&cat.stdout);
    assert!(cat.starts_with("*** ENVELOPE RECORDS "), "{cat}");
    assert!(cat.contains("Subject: tools-0"), "{cat}");
    let body = env.run(&["postcat", "-b", "-q", &id], b"");
    assert_eq!(String::from_utf8_lossy(&body.stdout), "body 0\n");
    let out = env.run(
        &["postsuper", "-d", "ALL", "deferred", "--older-than", "1h"],
        b"",
    );
    assert!(
        out.stderr.is_empty(),
        "nothing is an hour old: {:?}",
        String::from_utf8_lossy(&out.stderr)
    );
}
