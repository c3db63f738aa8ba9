//! With privileges separated, the admin signals the daemon's pid as before: SIGHUP reloads
//! the aliases in the root helper too (it is asked over its socket: the unprivileged daemon
//! cannot signal root), and SIGTERM or a killed daemon leave no root process behind.

use std::fs;
use std::path::Path;
use testkit::privsep::*;
use testkit::*;

fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| s.contains("State:\tZ"))
}

#[test]
fn sighup_reloads_the_helpers_aliases_and_sigterm_ends_both() {
    let Some(p) = setup("") else { return };
    let out = user_dir(&p, "out");
    user_aliases(&p, "");
    let mut daemon = p.env.start();
    let helper = helper_pid(daemon.pid()).expect("helper pid");

    // An alias added after the start works only if the helper re-read the file.
    user_aliases(&p, &format!("late: \"|cat > {}/late\"\n", out.display()));
    daemon.signal(libc::SIGHUP);
    p.env.wait_log("local delivery helper reloaded", 1);
    send_smtp(p.port, "late@localhost", "after-the-reload-6");
    // The shell creates the file before cat writes to it: wait for the words, not the file.
    wait_until("the new alias's delivery", || {
        fs::read_to_string(out.join("late")).is_ok_and(|s| s.contains("after-the-reload-6"))
    });

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit(DEADLINE).expect("the daemon stops");
    assert_eq!(status.code(), Some(0), "{}", daemon.output());
    wait_until("the helper to exit", || gone(helper));
}

#[test]
fn killed_daemon_leaves_no_root_helper_behind() {
    let Some(p) = setup("") else { return };
    let daemon = p.env.start();
    let helper = helper_pid(daemon.pid()).expect("helper pid");
    daemon.kill9();
    wait_until("the helper to exit", || gone(helper));
    let log = p.env.log();
    assert!(
        log.contains("the daemon closed the connection; exiting"),
        "{log}"
    );
}
