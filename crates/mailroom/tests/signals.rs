//! Signals: SIGTERM during delivery stops the daemon cleanly and quickly (no loss, nothing
//! delivered twice); SIGHUP and `mailroom newaliases` make new aliases take effect without
//! a restart; SIGHUP or SIGUSR1 while the daemon starts does not kill it.

use std::fs;
use std::time::{Duration, Instant};

use testkit::*;

const MESSAGES: usize = 2000;
const USERS: usize = 5;

#[test]
fn sigterm_during_delivery_exits_zero_quickly_and_a_restart_delivers_the_rest() {
    let env = TestEnv::with_config("default_process_limit = 20\n");
    let users = users(USERS);
    let per_session = MESSAGES / 4;
    env.stage_messages(4, per_session, |k, i| {
        let n = k * per_session + i;
        (
            format!("{}@localhost", users[n % USERS]),
            format!("Subject: term-{n}\n\nmessage {n}\n"),
        )
    });

    let mut daemon = env.start();
    wait_until("the first deliveries", || {
        env.count_all(&users) >= MESSAGES / 10
    });
    let signalled = Instant::now();
    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(DEADLINE);
    let took = signalled.elapsed();
    let at_stop = env.count_all(&users);
    let status = status.unwrap_or_else(|| {
        panic!(
            "serve still running {DEADLINE:?} after SIGTERM; log:\n{}",
            tail(&env.log(), 20)
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "exit status after SIGTERM; output:\n{}",
        daemon.output()
    );
    // 5 s on an idle box; stretched by the load (the in-flight deliveries finish first).
    let limit = scaled_by_load(Duration::from_secs(5));
    assert!(
        took < limit,
        "SIGTERM took {took:?} (limit {limit:?} at this load)"
    );
    assert!(
        at_stop < MESSAGES,
        "everything was delivered before SIGTERM: the test proves nothing"
    );
    eprintln!("SIGTERM: exited 0 after {took:.1?} with {at_stop} of {MESSAGES} delivered");
    assert!(
        env.log().contains("terminating"),
        "log:\n{}",
        tail(&env.log(), 10)
    );
    // A clean stop releases every mailbox lock.
    let locks: Vec<String> = list_dir(&env.spool_dir())
        .into_iter()
        .filter(|n| n.ends_with(".lock"))
        .collect();
    assert!(
        locks.is_empty(),
        "dotlocks left after a clean stop: {locks:?}"
    );

    let _daemon = env.start();
    env.wait_all(&users, MESSAGES);
    env.wait_queue_empty();
    let subjects = env
        .mboxes(&users)
        .into_iter()
        .flatten()
        .map(|m| m.subject.unwrap_or_default());
    let counts = multiset(subjects);
    let twice: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "delivered twice across a clean stop: {twice:?}"
    );
    let missing: Vec<usize> = (0..MESSAGES)
        .filter(|n| !counts.contains_key(&format!("term-{n}")))
        .collect();
    assert!(missing.is_empty(), "lost across SIGTERM: {missing:?}");
    assert_eq!(counts.len(), MESSAGES);
}

#[test]
fn sighup_and_newaliases_reload_the_aliases_without_a_restart() {
    let env = TestEnv::new();
    fs::write(env.aliases_file(), "alpha: u1\n").unwrap();
    let daemon = env.start();
    let send = |to: &str, subject: &str| {
        env.send_ok(&["-i", to], format!("Subject: {subject}\n\nx\n").as_bytes());
    };
    send("alpha@localhost", "to-alpha");
    env.wait_mbox("u1", 1);

    // SIGHUP after editing the aliases file.
    fs::write(env.aliases_file(), "alpha: u1\nbeta: u2\n").unwrap();
    // The daemon's own line (smtpd logs a `reload -- …` line of its own after it, so a
    // count of "reload --" could be met by the first reload's second line).
    const RELOADED: &str = "reload -- configuration and aliases re-read";
    let reloads = env.log_lines(RELOADED).len();
    daemon.signal(libc::SIGHUP);
    env.wait_log(RELOADED, reloads + 1);
    send("beta@localhost", "to-beta");
    env.wait_mbox("u2", 1);
    assert_eq!(
        env.count_mbox("beta"),
        0,
        "beta must be the new alias, not a mailbox"
    );

    // newaliases: checks the file, reports the count, and makes the daemon reload.
    fs::write(
        env.aliases_file(),
        "alpha: u1\nbeta: u2\n# a comment\ngamma: u3, u1\n",
    )
    .unwrap();
    let out = env.run(&["newaliases"], b"");
    assert_success(&out, "mailroom newaliases");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "newaliases: 3 aliases"
    );
    env.wait_log(RELOADED, reloads + 2);
    send("gamma@localhost", "to-gamma");
    env.wait_mbox("u3", 1);
    env.wait_mbox("u1", 2);
    env.wait_queue_empty();
    assert_eq!(env.count_mbox("gamma"), 0);
    assert_eq!(
        env.mbox_messages("u3")[0].subject.as_deref(),
        Some("to-gamma")
    );

    // A bad aliases file: newaliases says where, and the daemon keeps the old table.
    fs::write(env.aliases_file(), "alpha: u1\nthis line has no colon\n").unwrap();
    let out = env.run(&["newaliases"], b"");
    assert!(!out.status.success(), "newaliases accepted a bad file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:2", env.aliases_file().display())),
        "{stderr}"
    );
    drop(daemon);
}

/// `mailroom reload` (or logrotate's postrotate SIGUSR1) right after a start used to kill
/// the daemon: the pid file was written before the SIGHUP handler was in place, and SIGHUP
/// ends a process by default. SIGHUPs and SIGUSR1s sent from the moment the pid file names
/// the daemon until it is running must leave it running.
#[test]
fn sighup_during_the_start_does_not_kill_the_daemon() {
    let env = TestEnv::new();
    let mut child = env
        .command()
        .arg("serve")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn mailroom serve");
    let pid = child.id();
    let pid_file = env.queue_dir().join("pid/master.pid");
    wait_until("the pid file to name the daemon", || {
        fs::read_to_string(&pid_file).is_ok_and(|s| s.trim() == pid.to_string())
    });
    let mut sent = 0;
    while !env.log().contains("daemon started") || sent < 3 {
        let sig = if sent % 2 == 0 {
            sys::Signal::SIGHUP
        } else {
            sys::Signal::SIGUSR1
        };
        if sys::kill(pid, sig).is_err() {
            break;
        }
        sent += 1;
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!("the daemon died after {sent} signals while starting: {status:?}");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    wait_until("the control socket", || {
        env.queue_dir().join("control.sock").exists()
    });
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the daemon exited after {sent} signals; log:\n{}",
        tail(&env.log(), 20)
    );
    let _ = sys::kill(pid, sys::Signal::SIGTERM);
    let _ = child.wait();
    eprintln!("{sent} SIGHUP/SIGUSR1 sent while starting; the daemon survived them");
}
