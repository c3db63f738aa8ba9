//! Suspensions under privilege separation: root's CLI and the daemon running as
//! `mail_owner` share `<queue_directory>/suspended`. Through the daemon it is written as
//! `mail_owner`; by root's CLI with the daemon down it is written as the queue directory's
//! owner (mail_owner too), so the separated daemon reads it at its next start.

use testkit::privsep::*;
use testkit::*;

#[test]
fn root_and_mail_owner_both_change_the_suspension_file() {
    let sink_port = free_port();
    let relay =
        format!("relayhost = \"[127.0.0.1]:{sink_port}\"\nmynetworks = [\"127.0.0.1/32\"]\n");
    let Some(p) = setup(&relay) else { return };
    let sink = Sink::start_on(&p.env.root, sink_port, &[]);
    let file = p.env.queue_dir().join("suspended");

    let daemon = p.env.start();
    assert_success(
        &p.env
            .run(&["suspend", "example.net", "--reason", "pause"], b""),
        "suspend",
    );
    assert_eq!(
        owner_of(&file),
        p.owner.0,
        "written by the daemon as mail_owner"
    );
    send_smtp(p.port, "a@example.net", "held-1");
    p.env.wait_log(
        "held in the queue: delivery suspended by the operator until resumed: pause",
        1,
    );
    assert_eq!(sink.sessions(), 0);

    // Daemon down: root's CLI rewrites the file, which stays mail_owner's.
    daemon.kill9();
    assert_success(&p.env.run(&["resume", "example.net"], b""), "resume");
    assert_success(
        &p.env.run(&["suspend", "other.example", "--for", "1d"], b""),
        "suspend",
    );
    assert_eq!(
        owner_of(&file),
        p.owner.0,
        "root kept the queue directory's owner"
    );
    let doctor = p.env.run(&["doctor"], b"");
    assert!(String::from_utf8_lossy(&doctor.stdout).contains("other.example: delivery suspended"));

    let _daemon = p.env.start();
    wait_until("the resumed message at the sink", || sink.messages() == 1);
    assert!(!p
        .env
        .log()
        .contains("cannot read the suspended destinations"));
}
