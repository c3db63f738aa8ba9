//! Killing the root local delivery helper in the middle of a delivery loses nothing: the
//! delivery is deferred (4.3.0), the daemon — which cannot start a root process any more —
//! stops and exits 75 for its supervisor, and after the restart the message is delivered,
//! once.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use testkit::privsep::*;
use testkit::*;

#[test]
fn killed_helper_defers_and_the_restarted_daemon_delivers() {
    let Some(p) = setup("") else { return };
    let out = user_dir(&p, "out");
    // The first attempt hangs (until the helper is killed); the second delivers.
    user_aliases(
        &p,
        &format!(
            "slow: \"|if [ -e {o}/started ]; then cat >> {o}/delivered; else touch {o}/started; sleep 20; fi\"\n",
            o = out.display()
        ),
    );
    let mut daemon = p.env.start();
    send_smtp(p.port, "slow@localhost", "survives-the-helper-5");
    wait_until("the first delivery attempt", || {
        out.join("started").exists()
    });

    let helper = helper_pid(daemon.pid()).expect("helper pid");
    // A pid just read from /proc: our daemon's child.
    sys::kill(helper as u32, sys::Signal::SIGKILL).expect("kill the helper");

    let status = daemon.wait_exit(DEADLINE).expect("the daemon stops");
    assert_eq!(status.code(), Some(75), "{status:?} {}", daemon.output());
    assert_eq!(status.signal(), None);
    let deferred = p.env.wait_log("status=deferred", 1);
    assert!(
        deferred[0].contains("to=<slow@localhost>")
            && deferred[0].contains("dsn=4.3.0")
            && deferred[0].contains("local delivery helper"),
        "{deferred:?}"
    );
    assert!(daemon
        .output()
        .contains("the local delivery helper is gone"));

    let _restarted = p.env.start();
    wait_until("the retried delivery", || out.join("delivered").exists());
    p.env.wait_log("status=sent", 1);
    let delivered = fs::read_to_string(out.join("delivered")).unwrap();
    assert_eq!(
        delivered.matches("survives-the-helper-5").count(),
        1,
        "{delivered}"
    );
    assert!(p.env.log_lines("status=bounced").is_empty());
}
