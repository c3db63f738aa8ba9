//! A routing setting the daemon cannot use (`mailbox_transport = "smtp:…"`) stops `serve`
//! with exit 78 and the reason, and the log never says the daemon started (it used to log
//! "daemon started" and then exit).

use testkit::*;

#[test]
fn an_unusable_mailbox_transport_exits_78_before_daemon_started_is_logged() {
    let env = TestEnv::with_config("mailbox_transport = \"smtp:[127.0.0.1]:25\"\n");
    let out = env.run(&["serve"], b"");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(
        err.contains("mailbox_transport: unsupported transport"),
        "{err}"
    );
    let log = env.log();
    assert!(!log.contains("daemon started"), "{log}");
}
