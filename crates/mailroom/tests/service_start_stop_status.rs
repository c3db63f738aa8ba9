//! Service control as `postfix start/status/reload/stop/abort` do it: `mailroom start`
//! detaches and returns once the daemon is ready, a second start says who runs, `status`
//! answers with its exit code, `stop` waits for the exit, and `stop` with nothing running
//! says so in one line and exits 1.

use std::fs;
use testkit::*;

/// Kills the detached daemon (found by its pid file) if a test ends with it still running.
struct Detached<'a>(&'a TestEnv);

impl Detached<'_> {
    fn pid(&self) -> Option<i32> {
        let text = fs::read_to_string(self.0.queue_dir().join("pid/master.pid")).ok()?;
        text.trim().parse().ok()
    }
}

impl Drop for Detached<'_> {
    fn drop(&mut self) {
        if self.0.run(&["status"], b"").status.code() == Some(0) {
            if let Some(pid) = self.pid() {
                let _ = sys::kill(pid as u32, sys::Signal::SIGKILL);
            }
        }
    }
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Running, not a zombie: a detached daemon's parent is whoever adopts it, which may be
/// slow to reap (or never do so in a container).
fn alive(pid: i32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) S ...`: the state follows the last ')'.
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    !state.starts_with('Z') && !state.starts_with('X')
}

/// The lock is released while the process exits; it is gone a moment later.
fn wait_gone(pid: i32) {
    wait_until(&format!("pid {pid} to be gone"), || !alive(pid));
}

#[test]
fn start_detaches_then_status_reload_and_stop_follow_it() {
    let env = TestEnv::new();
    let guard = Detached(&env);
    let status = env.run(&["status"], b"");
    assert_eq!(status.status.code(), Some(1), "{}", stderr(&status));
    assert_eq!(
        stderr(&status),
        "mailroom: the mail system is not running\n"
    );

    let started = env.run(&["start"], b"");
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    // Ready means ready: the control socket answers as soon as start returned.
    assert!(env.queue_dir().join("control.sock").exists());
    let pid = guard.pid().expect("pid file written");
    assert!(alive(pid));

    let status = env.run(&["status"], b"");
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert_eq!(
        stderr(&status),
        format!("mailroom: the mail system is running: PID: {pid}\n")
    );

    let again = env.run(&["start"], b"");
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(
        stderr(&again).contains(&format!("already running, pid {pid}")),
        "{}",
        stderr(&again)
    );
    // The foreground daemon is refused the same way: one daemon per queue.
    let serve = env.run(&["serve"], b"");
    assert_eq!(serve.status.code(), Some(1), "{}", stderr(&serve));
    assert!(stderr(&serve).contains(&format!("already running, pid {pid}")));

    let reloaded = env.run(&["reload"], b"");
    assert_eq!(reloaded.status.code(), Some(0), "{}", stderr(&reloaded));
    env.wait_log("reload -- configuration and aliases re-read", 1);
    // start's readiness socket is gone: the daemon must not keep notifying it.
    assert!(
        !env.log().contains("cannot notify the service manager"),
        "{}",
        env.log()
    );

    // Mail still flows through the detached daemon.
    env.send_ok(
        &["-f", "a@localhost", "root@localhost"],
        b"Subject: s\n\nx\n",
    );
    env.wait_mbox("root", 1);

    let stopped = env.run(&["stop"], b"");
    assert_eq!(stopped.status.code(), Some(0), "{}", stderr(&stopped));
    // stop returns once the daemon has finished, not merely been signalled.
    assert!(env.log().contains("terminating"));
    wait_gone(pid);

    let again = env.run(&["stop"], b"");
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        "mailroom: fatal: the mail system is not running\n"
    );
    assert_eq!(env.run(&["status"], b"").status.code(), Some(1));
}

#[test]
fn start_prints_the_daemons_fatal_error_and_exits_with_its_code() {
    let env = TestEnv::with_config("");
    let _guard = Detached(&env);
    // A log file in a directory that does not exist: serve exits 78 (EX_CONFIG).
    let text = fs::read_to_string(&env.config).unwrap().replace(
        &format!("maillog_file = \"{}/mail.log\"", env.root.display()),
        &format!(
            "maillog_file = \"{}/no/such/dir/mail.log\"",
            env.root.display()
        ),
    );
    fs::write(&env.config, text).unwrap();
    let out = env.run(&["start"], b"");
    assert_eq!(out.status.code(), Some(78), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot open maillog_file"),
        "{}",
        stderr(&out)
    );
    assert_eq!(env.run(&["status"], b"").status.code(), Some(1));
}

#[test]
fn abort_stops_at_once_and_the_queue_survives_for_the_next_start() {
    let env = TestEnv::new();
    let guard = Detached(&env);
    let out = env.run(&["start"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let pid = guard.pid().unwrap();
    let out = env.run(&["abort"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    wait_gone(pid);
    assert!(env.log().contains("abort -- stopping at once"));
    // The control sockets went with it, and the next start is clean.
    assert!(!env.queue_dir().join("control.sock").exists());
    env.send_ok(
        &["-f", "a@localhost", "root@localhost"],
        b"Subject: s\n\nx\n",
    );
    let out = env.run(&["start"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    env.wait_mbox("root", 1);
    let out = env.run(&["stop"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn a_stale_pid_file_of_a_killed_daemon_is_not_running() {
    let env = TestEnv::new();
    let daemon = env.start();
    let status = env.run(&["status"], b"");
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    daemon.kill9();
    // The file is still there, naming a dead pid; its lock died with the daemon.
    assert!(env.queue_dir().join("pid/master.pid").exists());
    let status = env.run(&["status"], b"");
    assert_eq!(status.status.code(), Some(1), "{}", stderr(&status));
    // (The killed daemon's control socket is still there: wait for the new one's lock.)
    let _daemon = env.start();
    wait_until("the restarted daemon to hold the pid lock", || {
        env.run(&["status"], b"").status.code() == Some(0)
    });
}

#[test]
fn postfix_argv0_runs_the_service_commands() {
    let env = TestEnv::new();
    let _guard = Detached(&env);
    let link = env.root.join("postfix");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let postfix =
        |word: &str| run_with_input(command_with_config(&link, &env.config).arg(word), b"");
    assert_eq!(postfix("status").status.code(), Some(1));
    let out = postfix("start");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(postfix("status").status.code(), Some(0));
    let out = postfix("flush");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = postfix("stop");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = postfix("bogus");
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
}
