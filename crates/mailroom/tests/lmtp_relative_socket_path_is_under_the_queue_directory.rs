//! Postfix's `mailbox_transport = lmtp:unix:private/dovecot-lmtp`: a relative LMTP socket
//! path is under `queue_directory` (Postfix's daemons run there), whatever the daemon's
//! working directory. A real Dovecot (Debian's dovecot-lmtpd, `testkit::dovecot`) listens
//! on a socket in its own directory; `QUEUE/private/dovecot-lmtp` is a symbolic link to it
//! (the test harness places Dovecot's listener, so the link stands in for a `unix_listener`
//! configured under the queue directory — connect(2) follows it). The relay is logged as
//! written, as Postfix logs `relay=myhost[private/dovecot-lmtp]`.

use testkit::dovecot::{skip_unless_dovecot, Dovecot};
use testkit::*;

#[test]
fn mailbox_transport_on_a_relative_socket_reaches_dovecot_under_the_queue_directory() {
    if skip_unless_dovecot() {
        return;
    }
    let dovecot = Dovecot::start(&[("alice", "")]);
    let env = TestEnv::with_config("mailbox_transport = \"lmtp:unix:private/dovecot-lmtp\"\n");
    let private = env.queue_dir().join("private");
    std::fs::create_dir_all(&private).unwrap();
    std::os::unix::fs::symlink(&dovecot.socket, private.join("dovecot-lmtp")).unwrap();
    assert_ne!(
        std::env::current_dir().unwrap(),
        env.queue_dir(),
        "the daemon's working directory (the test's) is not the queue directory"
    );
    let _daemon = env.start();
    env.send_ok(
        &["-f", "sender@test.example", "alice@test.example"],
        message("relative-socket").as_bytes(),
    );
    let text = dovecot.wait_messages("alice", 1);
    assert!(text.contains("Subject: relative-socket"), "{text}");
    let lines = env.wait_log("to=<alice@test.example>", 1);
    assert!(
        lines[0].contains("relay=test.example[private/dovecot-lmtp]")
            && lines[0].contains("status=sent")
            && lines[0].contains("mailroom/lmtp["),
        "logged as Postfix's lmtp(8) logs it: {lines:?}"
    );
    assert!(
        !env.mbox("alice").exists(),
        "the local agent did not deliver it"
    );
}
