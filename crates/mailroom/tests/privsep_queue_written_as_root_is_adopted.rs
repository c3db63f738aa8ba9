//! Upgrading from a daemon that ran everything as root: its queue files are root's. The
//! separated daemon gives them to `mail_owner` before it drops root (only root-owned,
//! singly-linked files, never through a link), starts, and delivers what was queued. A
//! root-owned queue_directory that holds something else is refused, not given away.

use std::fs;
use std::process::Stdio;
use testkit::privsep::*;
use testkit::*;

#[test]
fn queue_of_a_root_daemon_is_given_to_mail_owner_and_delivered() {
    let Some(p) = setup("") else { return };
    let out = user_dir(&p, "out");
    let listen = format!(
        "smtpd_listen = [\"127.0.0.1:{}\"]\nlocal_recipient_maps = []\n",
        p.port
    );
    // First, one process as root (mail_owner root), whose command defers the message.
    p.env
        .write_config(&format!("mail_owner = \"root\"\n{listen}"));
    chown(&p.env.queue_dir(), (0, 0));
    user_aliases(&p, "x: \"|exit 75\"\n");
    let mut daemon = p.env.start();
    assert_eq!(status_field(daemon.pid(), "Uid"), "0 0 0 0");
    send_smtp(p.port, "x@localhost", "queued-by-root-7");
    p.env.wait_log("status=deferred", 1);
    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).and_then(|s| s.code()), Some(0));
    let store = p.env.queue_dir().join("store");
    assert_eq!(owner_of(&store.join("lock")), 0);

    // Then separated: the queue becomes mail_owner's and the message is delivered.
    p.env
        .write_config(&format!("mail_owner = \"{OWNER}\"\n{listen}"));
    user_aliases(&p, &format!("x: \"|cat > {}/x\"\n", out.display()));
    let _daemon = p.env.start();
    // The shell creates the file before cat writes to it: wait for the words, not the file.
    wait_until("the queued message's delivery", || {
        fs::read_to_string(out.join("x")).is_ok_and(|s| s.contains("queued-by-root-7"))
    });
    for entry in fs::read_dir(&store).unwrap().flatten() {
        assert_eq!(
            owner_of(&entry.path()),
            p.owner.0,
            "{}",
            entry.path().display()
        );
    }
    assert_eq!(owner_of(&p.env.queue_dir()), p.owner.0);
    assert!(p
        .env
        .log()
        .contains(&format!("written by root to mail_owner {OWNER}")));
}

#[test]
fn root_owned_directory_that_is_not_a_queue_is_refused() {
    let Some(p) = setup("") else { return };
    chown(&p.env.queue_dir(), (0, 0));
    fs::write(p.env.queue_dir().join("passwd"), "not mail\n").unwrap();
    let out = p
        .env
        .command()
        .arg("serve")
        .stdin(Stdio::null())
        .output()
        .expect("serve");
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not part of a mailroom queue"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(owner_of(&p.env.queue_dir()), 0);
    assert_eq!(owner_of(&p.env.queue_dir().join("passwd")), 0);
}
